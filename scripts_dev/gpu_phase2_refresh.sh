#!/usr/bin/env bash
# Second prepared GPU session: phase 2 again, from the exported weights of scripts_dev/gpu_train_defaults.sh,
# for restore_small and sr4x_small side by side. Those exports had a fixed-0.999 EMA, which left the
# student prior mostly at its initial weights after a phase 2 of ~350 steps; the trainer now warms the
# EMA up from each phase start. Usage: bash scripts_dev/gpu_phase2_refresh.sh OUT_DIR BUDGET_MINUTES
set -u
OUT=${1:?}; BUDGET=${2:?}
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:.
for name in restore_small sr4x_small; do
    python3 -m unfoldldm train --config "$name" --init "unfoldldm/weights/$name.safetensors" --phases 2 \
        --data .data/bsds400 --out "runs/${name}_p2" --budget-minutes "$BUDGET" --cuda-graphs --no-progress \
        > "runs_${name}_p2.stdout" 2>&1 &
done
wait
for name in restore_small sr4x_small; do
    cp "runs/${name}_p2/model.safetensors" "$OUT/$name.safetensors"
    { cat "runs/${name}_p2/log.txt"; echo "# stdout:"; tail -n 20 "runs_${name}_p2.stdout"; } > "$OUT/${name}_p2_log.txt"
done
