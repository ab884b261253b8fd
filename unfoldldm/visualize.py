"""Turning the MGDA estimates into pictures a person can look at."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def kernel_to_image(kernel: Tensor, size: int = 128) -> Tensor:
    """(B, 3, p, p) kernels -> (B, 3, size, size) images, each channel scaled to its peak, nearest-upscaled."""
    peak = kernel.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
    return F.interpolate((kernel / peak).float(), size=(size, size), mode="nearest").clamp(0, 1)


def noise_map_to_image(noise_map: Tensor, max_sigma: float = 0.25) -> Tensor:
    """(B, 1, H, W) noise std on the [0, 1] scale -> (B, 1, H, W) in [0, 1] (``max_sigma`` maps to white)."""
    return (noise_map.float() / max_sigma).clamp(0, 1)


def kernel_error(estimated: Tensor, true: Tensor) -> Tensor:
    """Mean absolute difference between kernels of equal size, per sample (both are normalised to sum 1)."""
    est = estimated / estimated.sum(dim=(-2, -1), keepdim=True)
    ref = true / true.sum(dim=(-2, -1), keepdim=True)
    return (est - ref).abs().sum(dim=(-2, -1)).flatten(1).mean(dim=1)
