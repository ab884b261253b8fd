"""Small random UnfoldLDM models for tests (importable from any test folder)."""

from __future__ import annotations

import torch


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
