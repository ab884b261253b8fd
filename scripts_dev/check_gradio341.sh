#!/usr/bin/env bash
# Run tests/test_ui.py against the oldest Gradio the UI supports (3.41.2, what A1111 1.x ships).
#
#   bash scripts_dev/check_gradio341.sh [PYTEST ARGS...]
#
# Builds <repo>/.gradio341/ (git-ignored; override with $UNFOLDLDM_GRADIO341_DIR): a venv with
# torch==2.13.0 (CPU wheel), gradio==3.41.2 and this package (pip install -e .), then runs
# tests/test_ui.py there. Idempotent: the venv is reused while the marker .gradio341/.done exists
# (delete the folder to rebuild). Prints the time of each step.
#
# Inside that run UNFOLDLDM_GRADIO341 is unset, so the test that calls this script skips (no
# recursion).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${UNFOLDLDM_GRADIO341_DIR:-$REPO/.gradio341}"
PY="${PYTHON:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

pip_quiet() {  # pip without the "Location ... is ignored" noise of local indexes
    "$@" 2> >(grep -v -E "^WARNING: Location '.*' is ignored" >&2)
}

t0=$(date +%s)
if [[ ! -e "$DIR/.done" ]]; then
    echo "[check_gradio341] building $DIR"
    rm -rf "$DIR"
    "$PY" -m venv "$DIR"
    pip_quiet "$DIR/bin/pip" install -q torch==2.13.0
    # gradio 3.41.2 pins nothing above; use what A1111 1.x pins beside it (gradio 3.41 cannot
    # launch with today's fastapi/starlette: its localhost check fails).
    # Two steps on purpose: asking for all pins at once sends pip's resolver backtracking for
    # ~14 minutes; installing them afterwards takes seconds (pip warns about an h11 pin of an
    # unrelated httpcore2, which is harmless here).
    pip_quiet "$DIR/bin/pip" install -q "gradio==3.41.2" "pytest>=7"
    pip_quiet "$DIR/bin/pip" install -q -e "$REPO"
    pip_quiet "$DIR/bin/pip" install -q "fastapi==0.94.0" "httpx==0.24.1" "h11<0.15"
    touch "$DIR/.done"
    echo "[check_gradio341] venv ready in $(( $(date +%s) - t0 )) s"
else
    echo "[check_gradio341] reusing $DIR"
fi
"$DIR/bin/python" -c "import gradio, torch; print('[check_gradio341] gradio', gradio.__version__, 'torch', torch.__version__)"

t1=$(date +%s)
cd "$REPO"
status=0
env -u UNFOLDLDM_GRADIO341 "$DIR/bin/python" -m pytest -q -p no:cacheprovider tests/test_ui.py "$@" || status=$?
echo "[check_gradio341] tests finished with exit code $status in $(( $(date +%s) - t1 )) s (total $(( $(date +%s) - t0 )) s)"
exit "$status"
