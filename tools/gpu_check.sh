#!/usr/bin/env bash
# The GPU measurements, as one call of a GPU machine that has only its own python3 and torch (no registry):
#   the throughput benchmark with 8 packed networks -> results/bench/cuda-<gpu>.json (README's GPU table), then
#   chapter 3's smoke plan trained on the GPU with --pack 4 (teachers, then students packed), timed.
# Carry .gpu/data (cifar10-jpeg.zip copied there); results come back as $OUT/results.tgz. About 6 min on an H100.
set -euo pipefail
export PYTHONPATH=$PWD KDREPRO_DATA=$PWD/.gpu/data KDREPRO_CACHE=$(mktemp -d) PYTHONUNBUFFERED=1
gpu=$(python3 -c "import torch; print(torch.cuda.get_device_name().split()[-1].lower())")
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
timeout 330 python3 -m kdrepro.bench --device cuda --cases preresnet20 preresnet56 --repeats 1 --pack 8 \
  --json "results/bench/cuda-$gpu.json"
# A throw-away store: smoke runs are a check of the packed GPU path, not results.
smoke=$(mktemp -d)
/usr/bin/time -f "smoke sweep: %e s" timeout 150 env KDREPRO_RESULTS="$smoke" \
  python3 -m kdrepro run self_vs_ensemble --profile smoke --device cuda --pack 4 | tail -25
tar czf "${OUT:-/tmp}/results.tgz" results/bench
