"""Small building blocks shared by the architectures (one idea each, no state beyond weights)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import fold


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dimension of a (B, C, H, W) tensor."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        # group_norm with one group per sample normalises over C*H*W; we want per-pixel over C,
        # which layer_norm does on a channels-last view without extra copies in the common case.
        y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


def haar_dwt(x: Tensor) -> Tensor:
    """One level of the orthonormal Haar transform: (B, C, H, W) -> (B, 4C, H/2, W/2).

    The output holds the bands [LL, LH, HL, HH], each with C channels. H and W must be even.
    """
    a = x[..., 0::2, 0::2]
    b = x[..., 0::2, 1::2]
    c = x[..., 1::2, 0::2]
    d = x[..., 1::2, 1::2]
    ll = (a + b + c + d) * 0.5
    lh = (a - b + c - d) * 0.5
    hl = (a + b - c - d) * 0.5
    hh = (a - b - c + d) * 0.5
    return torch.cat([ll, lh, hl, hh], dim=1)


def haar_idwt(bands: Tensor) -> Tensor:
    """Inverse of :func:`haar_dwt`: (B, 4C, H/2, W/2) -> (B, C, H, W)."""
    ll, lh, hl, hh = bands.chunk(4, dim=1)
    a = (ll + lh + hl + hh) * 0.5
    b = (ll - lh + hl - hh) * 0.5
    c = (ll + lh - hl - hh) * 0.5
    d = (ll - lh - hl + hh) * 0.5
    n, ch, h, w = ll.shape
    out = torch.stack([a, b, c, d], dim=2).view(n, ch, 2, 2, h, w)
    return out.permute(0, 1, 4, 2, 5, 3).reshape(n, ch, 2 * h, 2 * w)


class SimpleGateBlock(nn.Module):
    """A cheap convolutional block (NAFNet-style): depthwise conv, simple gate, pooled channel attention."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = LayerNorm2d(channels)
        self.expand = nn.Conv2d(channels, 2 * channels, 1)
        self.depthwise = nn.Conv2d(2 * channels, 2 * channels, 3, padding=1, groups=2 * channels)
        self.channel_attention = nn.Conv2d(channels, channels, 1)
        self.project = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        y = self.depthwise(self.expand(self.norm(x)))
        u, g = y.chunk(2, dim=1)
        y = u * g
        y = y * self.channel_attention(y.mean(dim=(2, 3), keepdim=True))
        return x + self.project(y) * self.gamma

    def infer(self, x: Tensor) -> Tensor:
        """:meth:`forward` on (B, H, W, C), inference only: channel attention and ``gamma`` are folded
        into the projection's weights; the gated features are computed in strips of rows."""
        c = x.shape[-1]
        expand = self.expand.weight.view(2 * c, c)

        def gated_rows(r0: int, r1: int) -> Tensor:
            y = fold.depthwise_rows(
                x, r0, r1, lambda t: fold.linear(fold.layer_norm(t, self.norm), expand, self.expand.bias), self.depthwise)
            return y[..., :c] * y[..., c:]

        y = fold.by_rows(x, 2 * c, gated_rows)
        attention = F.linear(y.mean(dim=(1, 2)), self.channel_attention.weight.view(c, c), self.channel_attention.bias)
        gamma = self.gamma.view(c, 1)
        weight = (self.project.weight.view(c, c) * gamma) * attention[:, None, :]  # (B, C, C)
        return fold.linear_add(y, weight, self.project.bias * gamma[:, 0], x)


class ChannelAttention(nn.Module):
    """Transposed (channel) self-attention: cost linear in pixels, context over the whole input."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.qkv_depthwise = nn.Conv2d(3 * channels, 3 * channels, 3, padding=1, groups=3 * channels)
        self.project = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv_depthwise(self.qkv(x)).chunk(3, dim=1)
        q = F.normalize(q.reshape(b, self.heads, c // self.heads, h * w), dim=-1)
        k = F.normalize(k.reshape(b, self.heads, c // self.heads, h * w), dim=-1)
        v = v.reshape(b, self.heads, c // self.heads, h * w)
        attn = ((q @ k.transpose(-2, -1)) * self.temperature).softmax(dim=-1)
        return self.project((attn @ v).reshape(b, c, h, w))

    def infer(self, x: Tensor, norm: LayerNorm2d, scale: Tensor, shift: Tensor) -> Tensor:
        """``x + forward(norm(x) * scale + shift)`` on (B, H, W, C), inference only.

        The scale/shift (B, C) is folded into the qkv weights; cosine similarities come from one
        Gram matrix and the norms, summed over strips of rows (only the values are kept); the
        attention map is folded into the output projection.
        """
        b, h, w, c = x.shape
        heads, d = self.heads, c // self.heads
        plain = self.qkv.weight.view(3 * c, c)
        qkv_weight = plain * scale[:, None, :]  # (B, 3C, C)
        qkv_bias = torch.addmm(self.qkv.bias, shift, plain.t())  # (B, 3C)
        grams, squares = [], []

        def value_rows(r0: int, r1: int) -> Tensor:
            qkv = fold.depthwise_rows(
                x, r0, r1, lambda t: fold.linear(fold.layer_norm(t, norm), qkv_weight, qkv_bias), self.qkv_depthwise)
            qkv = qkv.reshape(b, -1, 3 * c)
            grams.append(_head_gram(qkv[..., :c], qkv[..., c : 2 * c], heads))
            squares.append(qkv[..., : 2 * c].square().sum(dim=1))
            return qkv[..., 2 * c :].reshape(b, r1 - r0, w, c)

        v = fold.by_rows(x, 3 * c, value_rows)
        norms = sum(squares).sqrt_().clamp_min_(1e-12)  # as F.normalize
        cosine = sum(grams) / (norms[:, :c].view(b, heads, d, 1) * norms[:, c:].view(b, heads, 1, d))
        attn = (cosine * self.temperature).softmax(dim=-1)  # (B, heads, d, d)
        # project(attn @ v) = (W_p blockdiag(attn)) v + b_p
        proj = self.project.weight.view(c, heads, d).transpose(0, 1)  # (heads, C, d)
        weight = (proj @ attn).transpose(1, 2).reshape(b, c, c)
        return fold.linear_add(v, weight, self.project.bias, x)


def _head_gram(q: Tensor, k: Tensor, heads: int) -> Tensor:
    """Per-head ``q^T k`` of (B, N, C) queries and keys: (B, heads, C/heads, C/heads)."""
    b, n, c = q.shape
    d = c // heads
    if b == 1:  # per head, straight from the strided slices
        return torch.bmm(q[0].view(n, heads, d).permute(1, 2, 0), k[0].view(n, heads, d).transpose(0, 1))[None]
    # one product for all heads; keep the diagonal blocks
    gram = torch.bmm(q.transpose(1, 2), k).view(b, heads, d, heads, d).diagonal(dim1=1, dim2=3)
    return gram.permute(0, 3, 1, 2)


class GatedFFN(nn.Module):
    """Gated depthwise-conv feed-forward network."""

    def __init__(self, channels: int, expansion: float) -> None:
        super().__init__()
        hidden = int(channels * expansion)
        self.expand = nn.Conv2d(channels, 2 * hidden, 1)
        self.depthwise = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden)
        self.project = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        u, g = self.depthwise(self.expand(x)).chunk(2, dim=1)
        return self.project(F.gelu(g) * u)

    def infer(self, x: Tensor, norm: LayerNorm2d) -> Tensor:
        """``x + forward(norm(x))`` on (B, H, W, C), inference only, in strips of rows."""
        c = x.shape[-1]
        hidden = self.project.in_channels
        expand, project = self.expand.weight.view(2 * hidden, c), self.project.weight.view(c, hidden)

        def rows(r0: int, r1: int) -> Tensor:
            y = fold.depthwise_rows(
                x, r0, r1, lambda t: fold.linear(fold.layer_norm(t, norm), expand, self.expand.bias), self.depthwise)
            y = F.gelu(y[..., hidden:]).mul_(y[..., :hidden])
            return fold.linear_add(y, project, self.project.bias, x[:, r0:r1])

        return fold.by_rows(x, 2 * hidden, rows)


class PriorCrossAttention(nn.Module):
    """Cross-attention from every pixel feature to the N prior tokens (cost: pixels x N x C)."""

    def __init__(self, channels: int, latent_dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Conv2d(channels, channels, 1)
        self.key_value = nn.Linear(latent_dim, 2 * channels)
        self.project = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.project.weight)
        nn.init.zeros_(self.project.bias)

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        b, c, h, w = x.shape
        d = c // self.heads
        q = self.query(x).reshape(b, self.heads, d, h * w).transpose(-2, -1)  # B, heads, HW, d
        k, v = self.key_value(z).chunk(2, dim=-1)  # B, N, C
        k = k.reshape(b, -1, self.heads, d).transpose(1, 2)  # B, heads, N, d
        v = v.reshape(b, -1, self.heads, d).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)  # B, heads, HW, d
        return self.project(out.transpose(-2, -1).reshape(b, c, h, w))

    def infer(self, x: Tensor, norm: LayerNorm2d, z: Tensor) -> Tensor:
        """``x + forward(norm(x), z)`` on (B, H, W, C), inference only, in strips of rows.

        The keys are folded into the query projection (one 1x1 conv to heads x N logits) and the
        values into the output projection (one 1x1 conv back to C): two matrix products per pixel.
        """
        b, h, w, c = x.shape
        heads, d = self.heads, c // self.heads
        k, v = self.key_value(z).chunk(2, dim=-1)  # B, N, C
        n = k.shape[1]
        k = k.reshape(b, n, heads, d).transpose(1, 2) * d**-0.5  # B, heads, N, d (with SDPA's scale)
        query = self.query.weight.view(heads, d, c)
        logit_weight = (k @ query).reshape(b, heads * n, c)
        logit_bias = (k @ self.query.bias.view(heads, d, 1)).reshape(b, heads * n)
        proj = self.project.weight.view(c, heads, d).transpose(0, 1)  # heads, C, d
        out_weight = (proj @ v.reshape(b, n, heads, d).permute(0, 2, 3, 1)).transpose(1, 2).reshape(b, c, heads * n)

        def rows(r0: int, r1: int) -> Tensor:
            logits = fold.linear(fold.layer_norm(x[:, r0:r1], norm), logit_weight, logit_bias)
            p = logits.view(b, r1 - r0, w, heads, n).softmax(dim=-1).view(b, r1 - r0, w, heads * n)
            return fold.linear_add(p, out_weight, self.project.bias, x[:, r0:r1])

        return fold.by_rows(x, max(c, heads * n), rows)


class PriorModulation(nn.Module):
    """Scale and shift of a feature map from the pooled prior tokens (zero-initialised: identity)."""

    def __init__(self, channels: int, latent_dim: int) -> None:
        super().__init__()
        self.to_scale_shift = nn.Linear(latent_dim, 2 * channels)
        nn.init.zeros_(self.to_scale_shift.weight)
        nn.init.zeros_(self.to_scale_shift.bias)

    def forward(self, x: Tensor, z_pooled: Tensor) -> Tensor:
        scale, shift = self.to_scale_shift(z_pooled)[:, :, None, None].chunk(2, dim=1)
        return x * (1 + scale) + shift

    def factors(self, z_pooled: Tensor) -> tuple[Tensor, Tensor]:
        """``(1 + scale, shift)``, each (B, C): :meth:`forward` is ``x * factors[0] + factors[1]``."""
        scale, shift = self.to_scale_shift(z_pooled).chunk(2, dim=1)
        return 1 + scale, shift


def sinusoidal_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding of (B,) integer or float timesteps into (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=-1)


def centre_window(x: Tensor, max_side: int) -> tuple[int, int, int, int]:
    """``(top, left, height, width)`` of the centred window of ``x`` at most ``max_side`` on a side."""
    h, w = x.shape[-2:]
    wh, ww = min(h, max_side), min(w, max_side)
    return (h - wh) // 2, (w - ww) // 2, wh, ww
