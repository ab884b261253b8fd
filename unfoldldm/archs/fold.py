"""Inference arithmetic on channels-last feature maps, with per-image constants folded into weights.

The inference path of the proximal network keeps its features as plain (B, H, W, C) tensors, the
memory layout of a channels-last (B, C, H, W) tensor, so a 1x1 convolution is one matrix product
(on a CPU, PyTorch's 1x1 convolution on the same memory) and no operation changes the layout.
Per-image quantities (prior modulation, attention maps, cross-attention keys and values, output
gates) are folded into the weights of the next 1x1 convolution instead of being applied to the
feature map. Everything here is exact algebra on the
module's current weights (derived on every call, so it follows training and ``load_state_dict``).

Large feature maps are computed in strips of rows (:func:`by_rows`): a block's wide intermediates
(the expanded channels before and after a depthwise conv) then stay in the cache instead of making
several trips through main memory. The strips give the same numbers as the whole map.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def nhwc(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, H, W, C); a view for channels-last tensors."""
    return x.permute(0, 2, 3, 1)


def nchw(x: Tensor) -> Tensor:
    """(B, H, W, C) -> (B, C, H, W); a view (channels-last strides)."""
    return x.permute(0, 3, 1, 2)


def _dense_on_cpu(x: Tensor) -> bool:
    """Whether ``x`` (B, H, W, C) is a CPU tensor whose rows of pixels are contiguous."""
    _, h, w, c = x.shape
    return x.device.type == "cpu" and x.stride()[1:] == (w * c, c, 1)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """A 1x1 convolution of ``x`` (B, H, W, Ci): ``x @ weight^T + bias``.

    ``weight`` is (Co, Ci) shared by the batch or (B, Co, Ci) per sample; ``bias`` (Co,) or (B, Co).
    ``x`` may be a channel slice of a wider tensor (no copy is made then). A dense ``x`` on a CPU goes
    through ``F.conv2d`` (oneDNN's 1x1 convolution when PyTorch runs more than one thread; its own
    reference path on one), which beat the BLAS matrix product there (AVX-512 EPYC: 3-14% per
    restore, the bias added in the same pass).
    """
    b, h, w, ci = x.shape
    if weight.dim() == 3 and b == 1:
        weight, bias = weight[0], None if bias is None else bias[0]
    if weight.dim() == 3:
        x3 = x.reshape(b, h * w, ci)
        out = torch.bmm(x3, weight.transpose(1, 2)) if bias is None else torch.baddbmm(
            bias[:, None, :], x3, weight.transpose(1, 2))
        return out.view(b, h, w, -1)
    if _dense_on_cpu(x):
        return nhwc(F.conv2d(nchw(x), weight[:, :, None, None], bias))
    x2 = x.reshape(b * h * w, ci)
    out = torch.mm(x2, weight.t()) if bias is None else torch.addmm(bias, x2, weight.t())
    return out.view(b, h, w, -1)


def linear_add(x: Tensor, weight: Tensor, bias: Tensor | None, residual: Tensor) -> Tensor:
    """``residual + linear(x, weight, bias)``: added after the 1x1 convolution for a dense ``x`` on a CPU,
    by the matrix product itself otherwise."""
    b, h, w, ci = x.shape
    co = residual.shape[-1]
    if weight.dim() == 3 and b == 1:
        weight, bias = weight[0], bias if bias is None or bias.dim() == 1 else bias[0]
    if weight.dim() == 2 and _dense_on_cpu(x):
        return linear(x, weight, bias).add_(residual)
    if weight.dim() == 3:
        out = torch.baddbmm(residual.reshape(b, h * w, co), x.reshape(b, h * w, ci), weight.transpose(1, 2))
    else:
        out = torch.addmm(residual.reshape(b * h * w, co), x.reshape(b * h * w, ci), weight.t())
    out = out.view(b, h, w, co)
    if bias is not None:
        out.add_(bias[:, None, None, :] if bias.dim() == 2 else bias)
    return out


def conv(x: Tensor, weight: Tensor, bias: Tensor | None = None, **kwargs) -> Tensor:
    """``F.conv2d`` on (B, H, W, C) in and out; ``weight`` may be per sample, (B, Co, Ci, k, k)."""
    if weight.dim() == 4:
        return nhwc(F.conv2d(nchw(x), weight, bias, **kwargs))
    outs = [conv(x[i : i + 1], weight[i], None if bias is None else bias[i], **kwargs) for i in range(x.shape[0])]
    return outs[0] if len(outs) == 1 else torch.cat(outs)


def depthwise(x: Tensor, module: torch.nn.Conv2d) -> Tensor:
    """A depthwise ``nn.Conv2d`` (stride 1, same padding) applied to (B, H, W, C)."""
    return conv(x, module.weight, module.bias, padding=module.padding, groups=module.groups)


# A block whose widest intermediate fits in WHOLE_BYTES (half this CPU's 32 MiB L3 cache) runs on the
# whole map; a larger one in strips of rows of about STRIP_BYTES each. Measured on a 2-core EPYC
# (benchmarks/bench_inference.py, "whole map" column): idle, 1024x1024 restores 1.2x faster in strips;
# at 512x512 (intermediates of 8-16 MiB) strips gained 0-5% idle but lost 20% when two threads shared
# the cores with another PyTorch job: each extra operation then waits for a descheduled thread.
WHOLE_BYTES = 16 << 20
STRIP_BYTES = 4 << 20


def row_strips(x: Tensor, channels: int) -> list[tuple[int, int]]:
    """Row ranges ``[(r0, r1), ...]`` cutting ``x`` (B, H, W, C) into strips whose intermediates of
    ``channels`` channels fit in :data:`STRIP_BYTES` (at least two rows each); one range when the
    whole map's fit in :data:`WHOLE_BYTES`, and always on a GPU (where strips only add launches)."""
    b, h, w, _ = x.shape
    row_bytes = b * w * channels * x.element_size()
    if h * row_bytes <= WHOLE_BYTES or x.device.type != "cpu":
        return [(0, h)]
    rows = max(2, STRIP_BYTES // row_bytes)
    return [(r, min(h, r + rows)) for r in range(0, h, rows)]


def by_rows(x: Tensor, channels: int, rows_fn: Callable[[int, int], Tensor]) -> Tensor:
    """``rows_fn(r0, r1)`` (rows ``r0:r1`` of a row-local result) for each strip of :func:`row_strips`,
    joined along the rows."""
    strips = row_strips(x, channels)
    if len(strips) == 1:
        return rows_fn(0, x.shape[1])
    return torch.cat([rows_fn(r0, r1) for r0, r1 in strips], dim=1)


def depthwise_rows(
    x: Tensor, r0: int, r1: int, pointwise: Callable[[Tensor], Tensor], module: torch.nn.Conv2d
) -> Tensor:
    """Rows ``r0:r1`` of ``depthwise(pointwise(x), module)`` for a per-pixel ``pointwise`` and a 3x3
    depthwise conv: computed from rows ``r0 - 1 .. r1`` of ``x``, the neighbours the 3x3 reads."""
    h = x.shape[1]
    a0, a1 = max(0, r0 - 1), min(h, r1 + 1)
    return depthwise(pointwise(x[:, a0:a1]), module)[:, r0 - a0 : r1 - a0]


def layer_norm(x: Tensor, module) -> Tensor:
    """``LayerNorm2d`` over the channels of (B, H, W, C): one kernel, no layout change."""
    return F.layer_norm(x, (x.shape[-1],), module.weight, module.bias, module.eps)


@functools.cache
def _haar_cpu() -> Tensor:
    return 0.5 * torch.tensor([[1.0, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]])


def haar_matrix(like: Tensor) -> Tensor:
    """``H[band, 2i + j]``: band ``[LL, LH, HL, HH]`` of :func:`haar_dwt` from pixel ``(i, j)`` of a
    2x2 cell; symmetric and orthonormal, so it is also the synthesis matrix."""
    return _haar_cpu().to(device=like.device, dtype=like.dtype)


def haar_analysis_conv(weight: Tensor) -> Tensor:
    """A 1x1 conv ``weight`` (Co, 4C) on Haar bands -> the equal 2x2 stride-2 conv (Co, C, 2, 2) on pixels."""
    co, c4 = weight.shape
    return torch.einsum("obc,bk->ock", weight.reshape(co, 4, c4 // 4), haar_matrix(weight)).reshape(co, c4 // 4, 2, 2)


def unshuffle_conv(weight: Tensor) -> Tensor:
    """``PixelUnshuffle(2)`` then a 1x1 conv (Co, 4C) -> the equal 2x2 stride-2 conv (Co, C, 2, 2)."""
    return weight.reshape(weight.shape[0], weight.shape[1] // 4, 2, 2)
