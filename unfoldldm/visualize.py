"""Turning the MGDA estimates into pictures a person can look at."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

KERNEL_VIEW_SIDE = 256  # the shown kernel is at least this many pixels wide


def kernel_to_image(kernel: Tensor, size: int | None = None) -> Tensor:
    """(B, 3, p, p) kernels -> (B, 3, size, size) images, each channel scaled to its peak, nearest-upscaled.

    Without ``size``: the smallest whole multiple of ``p`` of at least :data:`KERNEL_VIEW_SIDE`, so
    every kernel tap is an equal square."""
    if size is None:
        side = kernel.shape[-1]
        size = side * -(-KERNEL_VIEW_SIDE // side)
    peak = kernel.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
    return F.interpolate((kernel / peak).float(), size=(size, size), mode="nearest").clamp(0, 1)


def noise_map_to_image(noise_map: Tensor, max_sigma: float = 0.25) -> Tensor:
    """(B, 1, H, W) noise std on the [0, 1] scale -> (B, 1, H, W) in [0, 1] (``max_sigma`` maps to white)."""
    return (noise_map.float() / max_sigma).clamp(0, 1)


def estimate_images(kernel: Tensor | None, noise_map: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
    """MGDA's estimates (a :class:`~unfoldldm.pipeline.RestoreResult`'s ``kernel`` and ``noise_map``)
    as the pictures every front end shows, in [0, 1]: the kernel at least :data:`KERNEL_VIEW_SIDE`
    pixels wide (B, 3, S, S), the noise map at the input image's size (B, 1, H, W). None stays None
    (a model without that estimate)."""
    return (None if kernel is None else kernel_to_image(kernel),
            None if noise_map is None else noise_map_to_image(noise_map))


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
