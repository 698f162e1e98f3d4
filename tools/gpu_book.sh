#!/usr/bin/env bash
# The book's gpu profiles as one call of a GPU machine, after tools/gpu_check.sh has committed a CUDA
# benchmark and the profiles were sized from it (each chapter's compute section prints its packed time):
# every chapter's gpu runs in the book's order, 8 runs to a pack, until GPU_BOOK_SECONDS (default 480)
# have passed. A run cut off by the limit is lost (its checkpoint stays on the machine); every stored run
# comes back after each chapter: $OUT/runs.tgz (results/teachers, results/students) and the teachers'
# weights as $OUT/weights.tgz.part-* (15 MiB pieces: a file that comes back is at most 16 MiB).
# How to call it: tools/gpu_env.sh, with timeout_s at least GPU_BOOK_SECONDS + 60.
# Here: cat "$files_at"/weights.tgz.part-* | tar xzf - && tar xzf "$files_at"/runs.tgz
source tools/gpu_env.sh
profile=${GPU_BOOK_PROFILE:-gpu} device=${GPU_BOOK_DEVICE:-cuda}
end=$(( $(date +%s) + ${GPU_BOOK_SECONDS:-480} ))
send() {
  tar czf "$out/runs.tgz" results/teachers results/students 2>/dev/null
  rm -f "$out"/weights.tgz.part-*
  tar czf - results/weights 2>/dev/null | split -b 15M - "$out/weights.tgz.part-"
}
for chapter in $(python3 -c "from kdrepro import chapters
print(' '.join(n for n in chapters.CHAPTERS if '$profile' in chapters.profiles(n)))"); do
  left=$(( end - $(date +%s) ))
  (( left > 30 )) || { echo "gpu_book: out of time before $chapter"; break; }
  start=$(date +%s)
  timeout "$left" python3 -m kdrepro run "$chapter" --profile "$profile" --device "$device" --pack 8 \
    2>&1 | grep -v "it/s\]$" | tail -4
  echo "gpu_book: $chapter exit ${PIPESTATUS[0]}, $(( $(date +%s) - start )) s"
  send
done
ls -l "$out"
