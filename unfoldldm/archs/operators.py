"""The decomposed degradation operator ``D_dec(x) = S_s(b * (a * x))`` and its exact adjoint.

``a`` (row kernel, applied along the width) and ``b`` (column kernel, along the height) are per
sample and per channel, shape (B, C, p) with p odd. Borders use replicate padding; its adjoint
folds the padded margins back onto the edge pixels, so ``<D x, u> == <x, D^T u>`` holds exactly
(up to floating-point rounding) for any image size, 1x1 included.

Each is a few large operations: one replicate pad and a strided depthwise convolution per axis;
the adjoint is the transposed convolutions and a fold of the padded margins.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def _depthwise(x: Tensor, kernels: Tensor, dim: int, stride: int, transpose: bool = False,
               output_padding: int = 0) -> Tensor:
    """Correlate each (sample, channel) plane of ``x`` with its own 1-D kernel along ``dim`` (-1 or -2),
    without padding, keeping every ``stride``-th output; or, with ``transpose``, the exact adjoint of
    that (a full convolution, ``output_padding`` extra samples at the end)."""
    b, c, h, w = x.shape
    p = kernels.shape[-1]
    weight = kernels.reshape(b * c, 1, 1, p) if dim == -1 else kernels.reshape(b * c, 1, p, 1)
    steps = (1, stride) if dim == -1 else (stride, 1)
    x = x if b == 1 else x.reshape(1, b * c, h, w)  # one grouped conv for the whole batch
    if transpose:
        extra = (0, output_padding) if dim == -1 else (output_padding, 0)
        out = F.conv_transpose2d(x, weight.to(x.dtype), stride=steps, output_padding=extra, groups=b * c)
    else:
        out = F.conv2d(x, weight.to(x.dtype), stride=steps, groups=b * c)
    return out if b == 1 else out.reshape(b, c, out.shape[-2], out.shape[-1])


def _fold_margins(g: Tensor, r: int, size: tuple[int, int]) -> Tensor:
    """Adjoint of replicate padding by ``r`` on all four sides: add each margin onto its edge pixels.

    Works in place on ``g`` (a fresh tensor) and returns the centre as a view.
    """
    h, w = size
    g.select(-2, r).add_(g.narrow(-2, 0, r).sum(dim=-2))
    g.select(-2, r + h - 1).add_(g.narrow(-2, r + h, r).sum(dim=-2))
    g.select(-1, r).add_(g.narrow(-1, 0, r).sum(dim=-1))
    g.select(-1, r + w - 1).add_(g.narrow(-1, r + w, r).sum(dim=-1))
    return g[..., r : r + h, r : r + w]


def _blur(x: Tensor, row: Tensor, col: Tensor, scale: int) -> Tensor:
    """Replicate-pad, blur along the width then the height, keeping every ``scale``-th pixel."""
    r = row.shape[-1] // 2
    x = F.pad(x, (r, r, r, r), mode="replicate")
    return _depthwise(_depthwise(x, row, -1, scale), col, -2, scale)


def _blur_adjoint(u: Tensor, row: Tensor, col: Tensor, scale: int, size: tuple[int, int]) -> Tensor:
    """Exact adjoint of :func:`_blur` onto an image of ``size``."""
    p = row.shape[-1]
    r = p // 2
    padded = (size[0] + 2 * r, size[1] + 2 * r)
    extra_h = padded[0] - ((u.shape[-2] - 1) * scale + p)
    extra_w = padded[1] - ((u.shape[-1] - 1) * scale + p)
    g = _depthwise(u, col, -2, scale, transpose=True, output_padding=extra_h)
    g = _depthwise(g, row, -1, scale, transpose=True, output_padding=extra_w)
    return _fold_margins(g, r, size)


def separable_blur(x: Tensor, row: Tensor, col: Tensor) -> Tensor:
    """Blur ``x`` (B, C, H, W) with per-channel separable kernels ``row``/``col`` (B, C, p); same size out."""
    return _blur(x, row, col, 1)


def separable_blur_adjoint(u: Tensor, row: Tensor, col: Tensor) -> Tensor:
    """Exact adjoint of :func:`separable_blur`."""
    return _blur_adjoint(u, row, col, 1, (u.shape[-2], u.shape[-1]))


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
    """``D_dec(x)``: separable blur, then ``scale``-fold subsampling (one strided convolution per axis)."""
    return _blur(x, row, col, scale)


def decomposed_adjoint(u: Tensor, row: Tensor, col: Tensor, scale: int, size: tuple[int, int]) -> Tensor:
    """``D_dec^T(u)`` onto an x-space image of ``size`` (H, W) (transposed strided convolutions)."""
    return _blur_adjoint(u, row, col, scale, size)


def kernel_image(row: Tensor, col: Tensor) -> Tensor:
    """The 2-D kernel ``b a^T`` of each channel, (B, C, p, p), for display."""
    return col[..., :, None] * row[..., None, :]
