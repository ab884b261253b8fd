#!/usr/bin/env bash
# The prepared GPU session for restore_small v2 (run by the device tool from the repo root, with
# .data/bsds400 carried along, real files, not a link; .whl/ too where the machine lacks a package):
# phase 1 with `--compile --cuda-graphs` from INIT (default: the bundled restore_small) with CONFIG
# (default restore_small_gpu_finetune),
# then phase 2 from its export with `--cuda-graphs`. The newest export is copied to OUT_DIR every
# minute, so a session cut off at its limit still returns weights.
# Usage: bash scripts_dev/gpu_restore_v2.sh OUT_DIR [PHASE1_MIN] [PHASE2_MIN] [BATCH]
# (P1_FLAGS / P2_FLAGS replace the GPU flags, e.g. P1_FLAGS= P2_FLAGS= for a quick check on a CPU;
# NAME, default restore, names the files in OUT_DIR: the x4 model's run is CONFIG=sr4x_small_gpu_v2 NAME=sr4x.)
# v2 was `INIT=<CPU arm D> bash scripts_dev/gpu_restore_v2.sh $OUT 6 2.2 32` (arm D is now in the weights'
# provenance history only), then phase 2 once more from
# restore_p2.safetensors for 2.6 min with this config at blur_prob 0.6, lr 4e-4, seed 6 (the full
# config is in the metadata of benchmarks/ablation/restore_small_v2.safetensors).
set -u
OUT=${1:?usage: gpu_restore_v2.sh OUT_DIR [PHASE1_MIN] [PHASE2_MIN] [BATCH]}
P1=${2:-7}
P2=${3:-2.5}
BATCH=${4:-32}
INIT=${INIT:-unfoldldm/weights/restore_small.safetensors}
CONFIG=${CONFIG:-restore_small_gpu_finetune}
NAME=${NAME:-restore}
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" > /dev/null; then  # the device machine: wheels carried along
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:.
fi
PYTHON=${PYTHON:-python3}

keep_copying() {  # $1 run folder, $2 name in OUT_DIR
    while sleep 60; do
        [ -f "$1/model.safetensors" ] && cp "$1/model.safetensors" "$OUT/$2.tmp" && mv "$OUT/$2.tmp" "$OUT/$2"
        [ -f "$1/log.txt" ] && cp "$1/log.txt" "$OUT/$2.log.txt"
    done
}

train() {  # $1 phase, $2 init, $3 minutes, $4 extra flags
    keep_copying "runs/p$1" "${NAME}_p$1.safetensors" & local copier=$!
    "$PYTHON" -m unfoldldm train --config "$CONFIG" --init "$2" --phases "$1" --data .data/bsds400 \
        --batch "$BATCH" --out "runs/p$1" --budget-minutes "$3" --export-every-minutes 1 $4 --no-progress \
        > "runs_p$1.stdout" 2>&1
    kill "$copier"
    cp "runs/p$1/model.safetensors" "$OUT/${NAME}_p$1.safetensors"
    { cat "runs/p$1/log.txt"; echo "# stdout:"; tail -n 30 "runs_p$1.stdout"; } > "$OUT/${NAME}_p$1.log.txt"
}

train 1 "$INIT" "$P1" "${P1_FLAGS---compile --cuda-graphs}" || exit 1
train 2 runs/p1/model.safetensors "$P2" "${P2_FLAGS---cuda-graphs}"
