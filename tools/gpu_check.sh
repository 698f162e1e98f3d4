#!/usr/bin/env bash
# The GPU measurements, as one call of a GPU machine that has only its own python3 and torch (no registry):
#   1. the throughput benchmark, eager, single and 8 packed networks, and a student of 5 teachers
#      -> results/bench/cuda-<gpu>.json (PreResNet-8, -20 and -56: the budget, gpu and capacity models);
#   2. PreResNet-20 with KDREPRO_COMPILE=1 (CUDA graphs) -> results/bench/cuda-<gpu>-compiled.json;
#   3. chapter 3's smoke plan trained on the GPU with --pack 4 (teachers, then students packed), timed.
# How to call it: tools/gpu_env.sh. Results come back as $OUT/results.tgz after each step, so a step that
# fails or runs out of time keeps what came before. About 5 minutes on an H200: call it with timeout_s 420.
source tools/gpu_env.sh
# "NVIDIA H100 80GB HBM3" -> h100, "NVIDIA H200" -> h200
gpu=$(python3 -c "import re, torch; n = torch.cuda.get_device_name(); m = re.search(r'\b([A-Z]+\d+)\b', n); print((m.group(1) if m else 'gpu').lower())")
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
mkdir -p results/bench
timeout 200 python3 -m kdrepro.bench --device cuda --cases preresnet8 preresnet20 preresnet56 --repeats 1 \
  --images 20000 --pack 8 --distill 5 --json "results/bench/cuda-$gpu.json"
tar czf "$out/results.tgz" results/bench
timeout 100 env KDREPRO_COMPILE=1 python3 -m kdrepro.bench --device cuda --cases preresnet20 --repeats 1 \
  --images 20000 --json "results/bench/cuda-$gpu-compiled.json"
tar czf "$out/results.tgz" results/bench
# A throw-away store: smoke runs check the packed GPU path; they are not results.
start=$(date +%s)
timeout 70 env KDREPRO_RESULTS="$(mktemp -d)" \
  python3 -m kdrepro run self_vs_ensemble --profile smoke --device cuda --pack 4 2>&1 | tail -12
echo "smoke sweep: exit ${PIPESTATUS[0]}, $(( $(date +%s) - start )) s"
