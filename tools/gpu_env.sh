# Sourced by tools/gpu_check.sh and tools/gpu_book.sh: what a call of a GPU machine needs, which has only
# its own python3 and torch (no registry) and a copy of the checkout without its git folder.
# How to call them: carry .gpu/data (cifar10-jpeg.zip copied there). The zip is 59.3 MiB of the 64 MiB a
# call may carry, so make the call with book/ and results/ (but results/bench) moved aside, and with
# KDREPRO_SOURCE='{"git_commit": "<the clean commit>", "git_dirty": false}', since the copy cannot say
# its commit. What a script stores comes back under $OUT.
set -uo pipefail
export PYTHONPATH=$PWD KDREPRO_DATA=$PWD/.gpu/data KDREPRO_CACHE=${KDREPRO_CACHE:-$(mktemp -d)}
export PYTHONUNBUFFERED=1
out=${OUT:-/tmp}
