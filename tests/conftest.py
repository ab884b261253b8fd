"""Shared pytest fixtures: small random UnfoldLDM models and their checkpoints, training pictures."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from model_helpers import make_nano, perturb  # noqa: F401  (re-exported for tests)

NANO_PROVENANCE = {"steps": 12, "device": "cpu"}


@pytest.fixture
def make_nano_model():
    """Factory: ``make_nano_model(task="restore", seed=0, noise=0.05)`` -> perturbed nano model."""
    return make_nano


def _rewrite_metadata(src, dst, edit):
    """Copy the safetensors file ``src`` to ``dst`` with ``edit(metadata_dict)`` applied."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(src), framework="pt") as f:
        metadata = dict(f.metadata() or {})
    edit(metadata)
    save_file(load_file(str(src)), str(dst), metadata=metadata)
    return dst


@pytest.fixture
def rewrite_checkpoint_metadata():
    """Factory: ``rewrite_checkpoint_metadata(src, dst, edit)`` copies a checkpoint, editing its metadata."""
    return _rewrite_metadata


@pytest.fixture(scope="session")
def nano_checkpoints(tmp_path_factory):
    """Saved nano checkpoints: ``restore``, ``sr4x`` and ``mismatched`` (a nano model's tensors whose
    metadata claims the ``small`` config). Do not modify the files."""
    from unfoldldm.checkpoint import save_checkpoint
    from unfoldldm.config import preset

    folder = tmp_path_factory.mktemp("nano_checkpoints")
    paths = {
        task: save_checkpoint(folder / f"{task}_nano.safetensors", make_nano(task), provenance=NANO_PROVENANCE)
        for task in ("restore", "sr4x")
    }

    def claim_small(metadata):
        metadata["config"] = preset("small").to_json()

    paths["mismatched"] = _rewrite_metadata(paths["restore"], folder / "mismatched.safetensors", claim_small)
    return paths


@pytest.fixture
def ckpt(nano_checkpoints):
    """The saved nano restoration checkpoint."""
    return nano_checkpoints["restore"]


@pytest.fixture(scope="module")
def torch_one_thread():
    """Run a module's tests with one torch thread: on a small, busy CPU the tiny nano models run many
    times faster that way (thread synchronisation dominates), and the results are the same."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def training_photos(tmp_path_factory) -> Path:
    """A folder of eight 96x96 training pictures cut from the bundled sample photo (shifted, turned
    and flipped), so training tests need no dataset."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("training_photos")
    sample = Path(__file__).resolve().parents[1] / "samples" / "astronaut_clean.png"
    with Image.open(sample) as img:
        img = img.convert("RGB")
        for i in range(8):
            crop = img.crop((20 * i, 16 * (i % 4), 20 * i + 96, 16 * (i % 4) + 96))
            crop = crop.rotate(90 * (i % 4)) if i % 2 else crop.transpose(Image.FLIP_LEFT_RIGHT)
            crop.save(folder / f"photo{i}.png")
    return folder
