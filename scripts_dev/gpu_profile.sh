#!/usr/bin/env bash
# GPU check of the training step's cost (run by the device tool from the repo root; needs .whl/):
#   1. benchmarks/profile_train.py: device time per step by model part, operator and kernel (eager)
#   2. benchmarks/bench_train.py: steps/s of `small` with CUDA graphs, with and without torch.compile
# Usage: bash scripts_dev/gpu_profile.sh OUT_DIR
set -u
OUT=${1:?usage: gpu_profile.sh OUT_DIR}
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:.
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 -c "import torch; print('torch', torch.__version__)"; } > "$OUT/profile.md" 2>&1
timeout 150 python3 benchmarks/profile_train.py --device cuda --preset small --phases 1,2 >> "$OUT/profile.md" 2>&1
timeout ${BENCH_S:-240} python3 benchmarks/bench_train.py --device cuda --presets small --modes graphs,compile+graphs \
    --kinds phase1,phase2 --steps 20 --repeats 3 > "$OUT/bench.md" 2>&1
echo "# exit $?" >> "$OUT/bench.md"
