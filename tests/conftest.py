"""Shared pytest fixtures: small random UnfoldLDM models and their checkpoints."""

from __future__ import annotations

import pytest
import torch

NANO_PROVENANCE = {"steps": 12, "device": "cpu"}


def make_nano(task: str = "restore", seed: int = 0, noise: float = 0.05):
    """A ``nano`` model with every parameter perturbed (several heads start at zero, so without the
    noise parts of the network would not influence the output), in eval mode."""
    from unfoldldm.archs import build_model
    from unfoldldm.config import preset

    return perturb(build_model(preset("nano", task=task)), seed, noise)


def perturb(model: torch.nn.Module, seed: int = 0, noise: float = 0.05) -> torch.nn.Module:
    """Add seeded noise to every parameter (zero-initialised heads would otherwise make parts of an
    untrained network irrelevant to its output) and switch to eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(noise * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return model.eval()


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
