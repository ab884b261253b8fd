"""Tests of the plain Restormer-style baseline (unfoldldm.archs.plain_restormer)."""

from __future__ import annotations

import os
import time

import pytest
import torch

from unfoldldm.archs.plain_restormer import PlainRestormer


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("size", [(17, 23), (64, 64), (5, 3)])
def test_output_shape_matches_input(size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    model = PlainRestormer(width=8, heads=(1, 2, 4, 8)).eval()
    x = torch.rand(2, 3, *size)
    with torch.inference_mode():
        y = model(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


def test_gradient_reaches_first_conv() -> None:
    torch.manual_seed(0)
    model = PlainRestormer(width=8)
    x = torch.rand(1, 3, 24, 20)
    model(x).square().mean().backward()
    grad = model.embed.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.parameters())


def test_identity_at_zero_output_conv() -> None:
    """The global residual: with the last conv zeroed the network returns its input."""
    model = PlainRestormer(width=8).eval()
    torch.nn.init.zeros_(model.out.weight)
    x = torch.rand(1, 3, 19, 13)
    with torch.inference_mode():
        assert torch.equal(model(x), x)


def test_paper_configuration_parameter_count() -> None:
    """Restormer's published configuration has 26.1M parameters; ours must be within 10%."""
    model = PlainRestormer(width=48, blocks=(4, 6, 6, 8), heads=(1, 2, 4, 8), refinement_blocks=4)
    assert abs(_params(model) - 26.1e6) <= 0.1 * 26.1e6


def test_invalid_configuration_is_rejected() -> None:
    with pytest.raises(ValueError):
        PlainRestormer(width=48, blocks=(1, 1, 1))
    with pytest.raises(ValueError):
        PlainRestormer(width=6, heads=(4, 2, 4, 8))  # 6 channels do not split into 4 heads
    with pytest.raises(ValueError):
        PlainRestormer(width=7)  # odd width cannot be pixel-unshuffled after halving


@pytest.mark.skipif(not os.environ.get("UNFOLDLDM_SLOW"), reason="timing run; set UNFOLDLDM_SLOW=1")
def test_cpu_forward_512_timing() -> None:
    """Times one 512x512 forward at width 48 on the CPU (reported, not asserted)."""
    model = PlainRestormer(width=48).eval()
    x = torch.rand(1, 3, 512, 512)
    with torch.inference_mode():
        start = time.perf_counter()
        y = model(x)
        seconds = time.perf_counter() - start
    print(f"PlainRestormer width 48, 512x512 CPU forward: {seconds:.2f} s ({torch.get_num_threads()} threads)")
    assert y.shape == x.shape
