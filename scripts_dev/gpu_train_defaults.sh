#!/usr/bin/env bash
# The prepared GPU session that trained the shipped weights (run by the device tool, repo root):
#   1. benchmarks/check_cuda_graphs.py: do CUDA-graph steps train like eager ones? (decides --cuda-graphs)
#   2. benchmarks/bench_train.py: training steps/s of `small` (eager, graphs) and the plain baseline
#   3. restore_small, its prior-free ablation and sr4x_small trained side by side (the step is bound
#      by launching kernels, so three processes share one GPU well), each for the same wall-clock
#      budget: whatever is left of DEADLINE seconds after steps 1-2.
# Needs .whl/ (diffusers and its missing dependencies) and .data/bsds400 carried along.
# Usage: bash scripts_dev/gpu_train_defaults.sh OUT_DIR [DEADLINE_S]
set -u
OUT=${1:?usage: gpu_train_defaults.sh OUT_DIR [DEADLINE_S]}
DEADLINE=${2:-570}
START=$(date +%s)
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:.
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; python3 -c "import torch; print('torch', torch.__version__)"; } > "$OUT/bench.txt" 2>&1

GRAPHS=""
if timeout 100 python3 benchmarks/check_cuda_graphs.py >> "$OUT/bench.txt" 2>&1; then GRAPHS="--cuda-graphs"; fi
echo "# training with: ${GRAPHS:-eager steps}" >> "$OUT/bench.txt"
timeout 100 python3 benchmarks/bench_train.py --device cuda --presets small --modes eager,graphs \
    --kinds plain,phase1,phase2 --steps 20 --repeats 3 >> "$OUT/bench.txt" 2>&1

# Leave 50 s for start-up (decoding the data), exporting and copying back.
BUDGET=$(python3 -c "print(round(($DEADLINE - ($(date +%s) - $START) - 50) / 60, 2))")
echo "# budget per run: $BUDGET min" >> "$OUT/bench.txt"
for name in restore_small restore_small_noprior sr4x_small; do
    python3 -m unfoldldm train --config "$name" --data .data/bsds400 --out "runs/$name" \
        --budget-minutes "$BUDGET" $GRAPHS --no-progress > "runs_$name.stdout" 2>&1 &
done
wait
for name in restore_small restore_small_noprior sr4x_small; do
    cp "runs/$name/model.safetensors" "$OUT/$name.safetensors"
    { cat "runs/$name/log.txt"; echo "# stdout:"; tail -n 20 "runs_$name.stdout"; } > "$OUT/${name}_log.txt"
done
echo "# total $(( $(date +%s) - START )) s" >> "$OUT/bench.txt"
