#!/usr/bin/env bash
# The GPU measurements, as one call of a GPU machine that has only its own python3 and torch (no registry):
#   1. the throughput benchmark, eager, with 8 packed networks and a student of 5 teachers -> results/bench/cuda-<gpu>.json;
#   2. the same with KDREPRO_COMPILE=1 (CUDA graphs), single networks -> results/bench/cuda-<gpu>-compiled.json;
#   3. chapter 3's smoke plan trained on the GPU with --pack 4 (teachers, then students packed), compiled, timed.
# Carry .gpu/data (cifar10-jpeg.zip copied there); results come back as $OUT/results.tgz after each step, so a step
# that fails or runs out of time keeps what came before. About 10 min on an H100: call it with timeout_s 600.
set -uo pipefail
export PYTHONPATH=$PWD KDREPRO_DATA=$PWD/.gpu/data KDREPRO_CACHE=$(mktemp -d) PYTHONUNBUFFERED=1
out=${OUT:-/tmp}
# "NVIDIA H100 80GB HBM3" -> h100, "NVIDIA H200" -> h200
gpu=$(python3 -c "import re, torch; n = torch.cuda.get_device_name(); m = re.search(r'\b([A-Z]+\d+)\b', n); print((m.group(1) if m else 'gpu').lower())")
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
timeout 300 python3 -m kdrepro.bench --device cuda --cases preresnet20 preresnet56 --repeats 1 --pack 8 --distill 5 \
  --json "results/bench/cuda-$gpu.json"
tar czf "$out/results.tgz" results/bench
timeout 180 env KDREPRO_COMPILE=1 python3 -m kdrepro.bench --device cuda --cases preresnet20 preresnet56 --repeats 1 \
  --json "results/bench/cuda-$gpu-compiled.json"
tar czf "$out/results.tgz" results/bench
# A throw-away store: smoke runs check the packed, compiled GPU path; they are not results.
start=$(date +%s)
timeout 90 env KDREPRO_RESULTS="$(mktemp -d)" KDREPRO_COMPILE=1 \
  python3 -m kdrepro run self_vs_ensemble --profile smoke --device cuda --pack 4 2>&1 | tail -25
echo "smoke sweep: exit ${PIPESTATUS[0]}, $(( $(date +%s) - start )) s"
