#!/usr/bin/env bash
# The GPU measurements, as one call of a GPU machine that has only its own python3 and torch (no registry):
#   the throughput benchmark with 8 packed networks -> results/bench/cuda-<gpu>.json (README's GPU table), then
#   chapter 3's smoke plan trained on the GPU with --pack 4 (teachers, then students packed), timed.
# Carry .gpu/data (cifar10-jpeg.zip copied there); results come back as $OUT/results.tgz. About 6 min on an H100.
set -uo pipefail
export PYTHONPATH=$PWD KDREPRO_DATA=$PWD/.gpu/data KDREPRO_CACHE=$(mktemp -d) PYTHONUNBUFFERED=1
out=${OUT:-/tmp}
# "NVIDIA H100 80GB HBM3" -> h100, "NVIDIA H200" -> h200
gpu=$(python3 -c "import re, torch; n = torch.cuda.get_device_name(); m = re.search(r'\b([A-Z]+\d+)\b', n); print((m.group(1) if m else 'gpu').lower())")
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
timeout 330 python3 -m kdrepro.bench --device cuda --cases preresnet20 preresnet56 --repeats 1 --pack 8 \
  --json "results/bench/cuda-$gpu.json"
tar czf "$out/results.tgz" results/bench  # now: whatever the smoke check below does, the benchmark comes back
# A throw-away store: smoke runs check the packed GPU path; they are not results.
start=$(date +%s)
timeout 150 env KDREPRO_RESULTS="$(mktemp -d)" \
  python3 -m kdrepro run self_vs_ensemble --profile smoke --device cuda --pack 4 2>&1 | tail -25
echo "smoke sweep: exit ${PIPESTATUS[0]}, $(( $(date +%s) - start )) s"
