"""Shared pytest fixtures: small random UnfoldLDM models and their checkpoints."""

from __future__ import annotations

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


@pytest.fixture(scope="module")
def torch_one_thread():
    """Run a module's tests with one torch thread: on a small, busy CPU the tiny nano models run many
    times faster that way (thread synchronisation dominates), and the results are the same."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
