"""Fixed inputs and checkpoints whose outputs are pinned in tests/fixtures/reference_outputs.safetensors
(written by scripts_dev/make_reference_outputs.py, checked by test_reference_outputs.py)."""

from __future__ import annotations

from pathlib import Path

import torch

FIXTURES = Path(__file__).resolve().parent / "fixtures"
RESTORE = FIXTURES / "restore_small_h200_2min.safetensors"
SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "astronaut_noisy.png"

# name: (checkpoint, crop (top, left, h, w) of the sample, RestoreOptions fields)
CASES = {
    "restore_untiled": (RESTORE, (40, 60, 96, 136), {}),
    "restore_tiled": (RESTORE, (0, 0, 160, 176), {"tile": 64, "overlap": 16}),
    "restore_two_stages": (RESTORE, (100, 20, 64, 80), {"stages": 2, "prior_steps": 2, "seed": 3}),
    "sr4x_nano": ("nano_sr4x", (10, 10, 24, 40), {}),
}


def _model(spec):
    from unfoldldm.checkpoint import load_checkpoint

    if spec == "nano_sr4x":
        from model_helpers import make_nano

        torch.manual_seed(0)
        return make_nano("sr4x", seed=5)
    return load_checkpoint(spec).eval()


def run_case(name: str) -> dict[str, torch.Tensor]:
    """Restore case ``name`` in fp32 on the CPU; returns image, kernel and noise map."""
    from unfoldldm.imageio import load_image
    from unfoldldm.pipeline import RestoreOptions, restore

    spec, (top, left, h, w), options = CASES[name]
    rgb = load_image(SAMPLE).rgb[:, top:top + h, left:left + w]
    result = restore(_model(spec), rgb[None], RestoreOptions(**options))
    return {"image": result.image, "kernel": result.kernel, "noise_map": result.noise_map}
