"""Inference arithmetic on channels-last feature maps, with per-image constants folded into weights.

The inference path of the proximal network keeps its features as plain (B, H, W, C) tensors, the
memory layout of a channels-last (B, C, H, W) tensor, so a 1x1 convolution is one matrix product
and no operation changes the layout. Per-image quantities (prior modulation, attention maps,
cross-attention keys and values, output gates) are folded into the weights of the next 1x1
convolution instead of being applied to the feature map. Everything here is exact algebra on the
module's current weights (derived on every call, so it follows training and ``load_state_dict``).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor


def nhwc(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, H, W, C); a view for channels-last tensors."""
    return x.permute(0, 2, 3, 1)


def nchw(x: Tensor) -> Tensor:
    """(B, H, W, C) -> (B, C, H, W); a view (channels-last strides)."""
    return x.permute(0, 3, 1, 2)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """A 1x1 convolution of ``x`` (B, H, W, Ci): ``x @ weight^T + bias``.

    ``weight`` is (Co, Ci) shared by the batch or (B, Co, Ci) per sample; ``bias`` (Co,) or (B, Co).
    ``x`` may be a channel slice of a wider tensor (no copy is made then).
    """
    b, h, w, ci = x.shape
    per_sample = weight.dim() == 3
    if per_sample and b == 1:
        weight, bias = weight[0], None if bias is None else bias[0]
        per_sample = False
    if per_sample:
        x3 = x.reshape(b, h * w, ci)
        out = torch.bmm(x3, weight.transpose(1, 2)) if bias is None else torch.baddbmm(
            bias[:, None, :], x3, weight.transpose(1, 2))
    else:
        x2 = x.reshape(b * h * w, ci)
        out = torch.mm(x2, weight.t()) if bias is None else torch.addmm(bias, x2, weight.t())
    return out.view(b, h, w, -1)


def linear_add(x: Tensor, weight: Tensor, bias: Tensor | None, residual: Tensor) -> Tensor:
    """``residual + linear(x, weight, bias)``: the residual is added by the matrix product itself."""
    b, h, w, ci = x.shape
    co = residual.shape[-1]
    if weight.dim() == 3 and b > 1:
        out = torch.baddbmm(residual.reshape(b, h * w, co), x.reshape(b, h * w, ci), weight.transpose(1, 2))
    else:
        weight = weight[0] if weight.dim() == 3 else weight
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
