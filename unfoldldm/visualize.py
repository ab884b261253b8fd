"""Turning the MGDA estimates into pictures a person can look at."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def kernel_to_image(kernel: Tensor, size: int = 128) -> Tensor:
    """(B, 3, p, p) kernels -> (B, 3, size, size) images, each channel scaled to its peak, nearest-upscaled."""
    peak = kernel.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
    return F.interpolate((kernel / peak).float(), size=(size, size), mode="nearest").clamp(0, 1)


def noise_map_to_image(noise_map: Tensor, max_sigma: float = 0.25) -> Tensor:
    """(B, 1, H, W) noise std on the [0, 1] scale -> (B, 1, H, W) in [0, 1] (``max_sigma`` maps to white)."""
    return (noise_map.float() / max_sigma).clamp(0, 1)


def kernel_std(kernel: Tensor) -> Tensor:
    """Width of (..., p, p) kernels: the root mean square distance from the kernel centre along
    each axis, averaged over the two axes, in pixels."""
    k = kernel / kernel.sum(dim=(-2, -1), keepdim=True)
    offsets = torch.arange(k.shape[-1], device=k.device, dtype=k.dtype) - k.shape[-1] // 2
    along_x = (k.sum(dim=-2) * offsets**2).sum(dim=-1).sqrt()
    along_y = (k.sum(dim=-1) * offsets**2).sum(dim=-1).sqrt()
    return (along_x + along_y) / 2


def kernel_error(estimated: Tensor, true: Tensor) -> Tensor:
    """Mean absolute difference between kernels of equal size, per sample (both are normalised to sum 1)."""
    est = estimated / estimated.sum(dim=(-2, -1), keepdim=True)
    ref = true / true.sum(dim=(-2, -1), keepdim=True)
    return (est - ref).abs().sum(dim=(-2, -1)).flatten(1).mean(dim=1)
