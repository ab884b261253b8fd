"""A plain clone into custom_nodes/ works with nothing but ComfyUI's own requirements.

The pack is copied as a clone would be (the tracked files only) into a folder of another name, no
install step of ours runs, and ``diffusers`` (which ComfyUI does not ship) is made unimportable in
the server. The simple restore and the per-stage chain must then run with the bundled weights.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from comfy_harness import ComfyServer  # noqa: E402
from test_unfoldldm_nodes import api_workflow, psnr, saved  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PACK_NAME = "ComfyUI-UnfoldLDM-main"


def _clone(dst: Path) -> Path:
    """The tracked files of this repository, as `git clone` would check them out."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        src = REPO / rel
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)
    return dst


@pytest.fixture(scope="module")
def plain(comfy_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("plain")
    pack = _clone(root / PACK_NAME)
    blocker = root / "blocked" / "diffusers"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('diffusers is not installed in this ComfyUI')\n")
    python = comfy_dir / "venv" / "bin" / "python"
    installed = subprocess.run([str(python), "-c", "import importlib.util as u; print(u.find_spec('unfoldldm') is None)"],
                               capture_output=True, text=True, check=True, cwd=root).stdout.strip()
    assert installed == "True", "the unfoldldm package is pip-installed in ComfyUI's venv: not a plain clone"
    with ComfyServer(comfy_dir, pack_dir=pack, pack_name=PACK_NAME, python_path=[blocker.parent]) as server:
        yield server


def test_plain_clone_restores_with_the_bundled_weights(plain, tmp_path):
    info = plain.object_info()
    assert "UnfoldLDMRestore" in info and "UnfoldLDMDegradationEstimate" in info
    names = info["UnfoldLDMModelLoader"]["input"]["required"]["model_name"][0]
    assert "[bundled] restore_small.safetensors" in names
    clean = np.asarray(Image.open(REPO / "samples" / "astronaut_clean.png").convert("RGB"))[64:192, 64:192]
    noisy = np.asarray(Image.open(REPO / "samples" / "astronaut_noisy.png").convert("RGB"))[64:192, 64:192]
    Image.fromarray(noisy).save(tmp_path / "noisy.png")
    image = plain.upload_image(tmp_path / "noisy.png")
    bundled = "[bundled] restore_small.safetensors"
    for workflow in ("unfoldldm_simple_restore", "unfoldldm_per_stage_chain"):
        prompt = api_workflow(workflow, restore=bundled, sr=bundled, image=image, tile=0)
        entry = plain.run(prompt)
        savers = [k for k, n in prompt.items() if n["class_type"] == "SaveImage"]
        restored = saved(plain, entry, savers[-1])
        assert restored.shape == clean.shape
        assert psnr(restored, clean) > psnr(noisy, clean) + 5, workflow
    assert not plain.pack_import_failed(), plain.log_tail(120)
    # ComfyUI's own extras may fail to import (no torchaudio here); nothing may fail inside the pack.
    tracebacks = [block.split("\n\n")[0] for block in plain.log_text().split("Traceback")[1:]]
    ours = [block for block in tracebacks if PACK_NAME in block or "unfoldldm" in block]
    assert not ours, ours
    assert "diffusers" not in plain.log_text(), plain.log_tail(120)
