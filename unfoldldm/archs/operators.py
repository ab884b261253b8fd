"""The decomposed degradation operator ``D_dec(x) = S_s(b * (a * x))`` and its exact adjoint.

``a`` (row kernel, applied along the width) and ``b`` (column kernel, along the height) are per
sample and per channel, shape (B, C, p) with p odd. Borders use replicate padding; its adjoint
folds the padded margins back onto the edge pixels, so ``<D x, u> == <x, D^T u>`` holds exactly
(up to floating-point rounding) for any image size, 1x1 included.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _filter_along(x: Tensor, kernels: Tensor, dim: int) -> Tensor:
    """Correlate each (sample, channel) plane of ``x`` with its own 1-D kernel along ``dim`` (-1 or -2).

    No padding: the output is ``p - 1`` shorter along ``dim``.
    """
    b, c, h, w = x.shape
    p = kernels.shape[-1]
    weight = kernels.reshape(b * c, 1, 1, p) if dim == -1 else kernels.reshape(b * c, 1, p, 1)
    out = F.conv2d(x.reshape(1, b * c, h, w), weight.to(x.dtype), groups=b * c)
    return out.reshape(b, c, out.shape[-2], out.shape[-1])


def _pad_replicate(x: Tensor, r: int, dim: int) -> Tensor:
    """Replicate-pad ``r`` pixels on both sides of ``dim`` (works for any size, even 1)."""
    first = x.narrow(dim, 0, 1)
    last = x.narrow(dim, x.shape[dim] - 1, 1)
    shape = list(x.shape)
    shape[dim] = r
    return torch.cat([first.expand(shape), x, last.expand(shape)], dim=dim)


def _pad_replicate_adjoint(g: Tensor, r: int, dim: int) -> Tensor:
    """Adjoint of :func:`_pad_replicate`: crop the centre and add each margin onto its edge pixel."""
    n = g.shape[dim] - 2 * r
    centre = g.narrow(dim, r, n).clone()
    head = g.narrow(dim, 0, r).sum(dim=dim, keepdim=True)
    tail = g.narrow(dim, r + n, r).sum(dim=dim, keepdim=True)
    centre.narrow(dim, 0, 1).add_(head)
    centre.narrow(dim, n - 1, 1).add_(tail)
    return centre


def separable_blur(x: Tensor, row: Tensor, col: Tensor) -> Tensor:
    """Blur ``x`` (B, C, H, W) with per-channel separable kernels ``row``/``col`` (B, C, p); same size out."""
    r = row.shape[-1] // 2
    x = _filter_along(_pad_replicate(x, r, -1), row, -1)
    return _filter_along(_pad_replicate(x, r, -2), col, -2)


def separable_blur_adjoint(u: Tensor, row: Tensor, col: Tensor) -> Tensor:
    """Exact adjoint of :func:`separable_blur`."""
    r = row.shape[-1] // 2
    # The adjoint of a valid correlation is a full convolution: zero-pad and correlate with the flip.
    u = _filter_along(F.pad(u, (0, 0, 2 * r, 2 * r)), col.flip(-1), -2)
    u = _pad_replicate_adjoint(u, r, -2)
    u = _filter_along(F.pad(u, (2 * r, 2 * r, 0, 0)), row.flip(-1), -1)
    return _pad_replicate_adjoint(u, r, -1)


def subsample(x: Tensor, scale: int) -> Tensor:
    """``S_s``: keep every ``scale``-th pixel (the top-left of each ``scale`` x ``scale`` cell)."""
    return x if scale == 1 else x[..., ::scale, ::scale]


def subsample_adjoint(u: Tensor, scale: int, size: tuple[int, int]) -> Tensor:
    """``S_s^T``: zero-insertion upsampling back to ``size``."""
    if scale == 1:
        return u
    out = u.new_zeros(*u.shape[:-2], *size)
    out[..., ::scale, ::scale] = u
    return out


def decomposed_forward(x: Tensor, row: Tensor, col: Tensor, scale: int) -> Tensor:
    """``D_dec(x)``: separable blur, then ``scale``-fold subsampling."""
    return subsample(separable_blur(x, row, col), scale)


def decomposed_adjoint(u: Tensor, row: Tensor, col: Tensor, scale: int, size: tuple[int, int]) -> Tensor:
    """``D_dec^T(u)`` onto an x-space image of ``size`` (H, W)."""
    return separable_blur_adjoint(subsample_adjoint(u, scale, size), row, col)


def kernel_image(row: Tensor, col: Tensor) -> Tensor:
    """The 2-D kernel ``b a^T`` of each channel, (B, C, p, p), for display."""
    return col[..., :, None] * row[..., None, :]
