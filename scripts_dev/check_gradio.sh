#!/usr/bin/env bash
# Run the UI tests (tests/test_ui.py, tests/test_a1111.py) under an older Gradio in its own venv:
#   3.41.2  what A1111 1.x ships          bash scripts_dev/check_gradio.sh 3.41.2 [PYTEST ARGS...]
#   4.40.0  what Forge ships              bash scripts_dev/check_gradio.sh 4.40.0
#
# Builds <repo>/.gradio-<VERSION>/ (git-ignored): a venv with torch==2.13.0 (CPU wheel), that
# Gradio, the pins its host uses beside it, and this package (pip install -e .). Idempotent: the
# venv is reused while its marker .done exists (delete the folder to rebuild). Prints the time of
# each step. Inside the run UNFOLDLDM_OLD_GRADIO is unset, so the test that calls this script
# skips (no recursion).
set -euo pipefail

VERSION="${1:?usage: check_gradio.sh GRADIO_VERSION [PYTEST ARGS...]}"
shift
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$REPO/.gradio-$VERSION"
PY="${PYTHON:-python3}"
TAG="[check_gradio $VERSION]"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

pip_quiet() {  # pip without the "Location ... is ignored" noise of local indexes
    "$@" 2> >(grep -v -E "^WARNING: Location '.*' is ignored" >&2)
}

case "$VERSION" in
    # gradio 3.41 pins nothing above; A1111 1.x pins these beside it (with today's fastapi/starlette
    # it cannot launch: its localhost check fails).
    3.*) PINS=("fastapi==0.94.0" "httpx==0.24.1" "h11<0.15") ;;
    # Forge's requirements_versions.txt beside gradio 4.40.0 (today's diffusers needs a newer
    # huggingface_hub than gradio 4.40 accepts, so diffusers is pinned as Forge pins it).
    4.*) PINS=("fastapi==0.104.1" "pydantic==2.8.2" "httpx==0.24.1" "diffusers==0.31.0"
               "huggingface-hub==0.26.2" "numpy==1.26.2" "safetensors==0.4.2" "tqdm==4.66.1") ;;
    *) PINS=() ;;
esac

t0=$(date +%s)
if [[ ! -e "$DIR/.done" ]]; then
    echo "$TAG building $DIR"
    rm -rf "$DIR"
    "$PY" -m venv "$DIR"
    pip_quiet "$DIR/bin/pip" install -q torch==2.13.0
    # Two steps on purpose: asking for gradio and all pins at once can send pip's resolver
    # backtracking for many minutes; installing the pins afterwards takes seconds.
    pip_quiet "$DIR/bin/pip" install -q "gradio==$VERSION" "pytest>=7"
    pip_quiet "$DIR/bin/pip" install -q -e "$REPO"
    if (( ${#PINS[@]} )); then pip_quiet "$DIR/bin/pip" install -q "${PINS[@]}"; fi
    touch "$DIR/.done"
    echo "$TAG venv ready in $(( $(date +%s) - t0 )) s"
else
    echo "$TAG reusing $DIR"
fi
"$DIR/bin/python" -c "import gradio, torch; print('$TAG gradio', gradio.__version__, 'torch', torch.__version__)"

t1=$(date +%s)
cd "$REPO"
status=0
env -u UNFOLDLDM_OLD_GRADIO "$DIR/bin/python" -m pytest -q -p no:cacheprovider tests/test_ui.py tests/test_a1111.py "$@" \
    || status=$?
echo "$TAG tests finished with exit code $status in $(( $(date +%s) - t1 )) s (total $(( $(date +%s) - t0 )) s)"
exit "$status"
