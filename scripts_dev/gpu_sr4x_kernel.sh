#!/usr/bin/env bash
# The prepared GPU session that continued sr4x_small with the supervised kernel loss (run by the
# device tool from the repo root; needs .whl/ and .data/bsds400 carried along):
#   phase 1 with `--compile --cuda-graphs` (also the end-to-end check of that mode in `train`),
#   then phase 2 from its export with `--cuda-graphs` (compiling phase 2 takes minutes).
# Usage: bash scripts_dev/gpu_sr4x_kernel.sh OUT_DIR [PHASE1_MIN] [PHASE2_MIN]
set -u
OUT=${1:?usage: gpu_sr4x_kernel.sh OUT_DIR [PHASE1_MIN] [PHASE2_MIN]}
P1=${2:-3.9}
P2=${3:-1.4}
START=$(date +%s)
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:.
CFG=sr4x_small_gpu_finetune
python3 -m unfoldldm train --config $CFG --init unfoldldm/weights/sr4x_small.safetensors --phases 1 \
    --data .data/bsds400 --out runs/p1 --budget-minutes "$P1" --compile --cuda-graphs --no-progress > runs_p1.stdout 2>&1
{ cat runs/p1/log.txt; echo "# stdout:"; tail -n 30 runs_p1.stdout; } > "$OUT/p1_log.txt"
cp runs/p1/model.safetensors "$OUT/sr4x_p1.safetensors" || exit 1
python3 -m unfoldldm train --config $CFG --init runs/p1/model.safetensors --phases 2 \
    --data .data/bsds400 --out runs/p2 --budget-minutes "$P2" --cuda-graphs --no-progress > runs_p2.stdout 2>&1
{ cat runs/p2/log.txt; echo "# stdout:"; tail -n 30 runs_p2.stdout; } > "$OUT/p2_log.txt"
cp runs/p2/model.safetensors "$OUT/sr4x_small.safetensors"
echo "# total $(( $(date +%s) - START )) s" >> "$OUT/p2_log.txt"
