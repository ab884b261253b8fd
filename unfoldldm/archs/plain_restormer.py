"""A plain Restormer-style U-net: the "plain backbone" baseline for benchmarks and evaluation.

It follows the architecture of Restormer (Zamir et al., CVPR 2022) at full resolution: an overlapped
3x3 patch embedding, a 4-level encoder/decoder with pixel-unshuffle downsampling and pixel-shuffle
upsampling, transformer blocks made of multi-Dconv-head transposed attention (attention across
channels, so its cost is linear in the number of pixels) and a gated-Dconv feed-forward network, a
refinement stage and a global residual. All convolutions are bias-free, as in the paper.

With ``width=48, blocks=(4, 6, 6, 8), heads=(1, 2, 4, 8), refinement_blocks=4`` it is the paper's
configuration (about 26.1M parameters); the default ``blocks=(1, 1, 1, 1)`` is the light variant
used as the ablation baseline.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import LayerNorm2d

__all__ = ["PlainRestormer"]


def _conv1x1(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=1, bias=False)


def _conv3x3(cin: int, cout: int, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, padding=1, groups=groups, bias=False)


class TransposedAttention(nn.Module):
    """Multi-Dconv-head transposed attention: heads attend over channels, not pixels.

    q, k, v come from a 1x1 conv followed by a 3x3 depthwise conv; q and k are L2-normalised over
    the pixels, and each head has a learned temperature scaling its (C/h x C/h) attention logits.
    """

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.to_qkv = _conv1x1(channels, 3 * channels)
        self.qkv_dw = _conv3x3(3 * channels, 3 * channels, groups=3 * channels)
        self.proj = _conv1x1(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv_dw(self.to_qkv(x))
        # (B, 3C, H, W) -> three tensors of shape (B, heads, C/heads, H*W)
        q, k, v = qkv.reshape(b, 3, self.heads, c // self.heads, h * w).unbind(dim=1)
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        logits = (q @ k.transpose(-2, -1)) * self.temperature
        out = logits.softmax(dim=-1) @ v
        return self.proj(out.reshape(b, c, h, w))


class GatedDconvFFN(nn.Module):
    """Gated-Dconv feed-forward: 1x1 expand to two branches, 3x3 depthwise, GELU(a) * b, 1x1 back."""

    def __init__(self, channels: int, expansion: float) -> None:
        super().__init__()
        hidden = int(channels * expansion)
        self.expand = _conv1x1(channels, 2 * hidden)
        self.dw = _conv3x3(2 * hidden, 2 * hidden, groups=2 * hidden)
        self.reduce = _conv1x1(hidden, channels)

    def forward(self, x: Tensor) -> Tensor:
        gate, value = self.dw(self.expand(x)).chunk(2, dim=1)
        return self.reduce(F.gelu(gate) * value)


class RestormerBlock(nn.Module):
    """Pre-norm transformer block: x + MDTA(LN(x)), then x + GDFN(LN(x))."""

    def __init__(self, channels: int, heads: int, ffn_expansion: float) -> None:
        super().__init__()
        self.norm_attn = LayerNorm2d(channels)
        self.attn = TransposedAttention(channels, heads)
        self.norm_ffn = LayerNorm2d(channels)
        self.ffn = GatedDconvFFN(channels, ffn_expansion)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm_attn(x))
        return x + self.ffn(self.norm_ffn(x))


def _stage(n: int, channels: int, heads: int, ffn_expansion: float) -> nn.Sequential:
    return nn.Sequential(*(RestormerBlock(channels, heads, ffn_expansion) for _ in range(n)))


class Down(nn.Sequential):
    """Halve the resolution, double the channels: 3x3 conv to C/2, then pixel-unshuffle by 2."""

    def __init__(self, channels: int) -> None:
        super().__init__(_conv3x3(channels, channels // 2), nn.PixelUnshuffle(2))


class Up(nn.Sequential):
    """Double the resolution, halve the channels: 3x3 conv to 2C, then pixel-shuffle by 2."""

    def __init__(self, channels: int) -> None:
        super().__init__(_conv3x3(channels, 2 * channels), nn.PixelShuffle(2))


class PlainRestormer(nn.Module):
    """Full-resolution Restormer-style U-net mapping a (B, 3, H, W) image to a restored one.

    Levels run at widths (w, 2w, 4w, 8w). In the decoder, the upsampled features are concatenated
    with the encoder skip; at levels 3 and 2 a 1x1 conv reduces them back to the level's width, at
    level 1 (as in Restormer) the decoder, the refinement stage and the output conv work on the
    concatenated 2w channels. The output is added to the input (global residual). Any H, W works:
    the input is padded to a multiple of 8 and the result cropped back.
    """

    def __init__(
        self,
        width: int = 48,
        blocks: Sequence[int] = (1, 1, 1, 1),
        heads: Sequence[int] = (1, 2, 4, 8),
        ffn_expansion: float = 2.66,
        refinement_blocks: int = 1,
        in_channels: int = 3,
        out_channels: int = 3,
    ) -> None:
        super().__init__()
        if len(blocks) != 4 or len(heads) != 4:
            raise ValueError("blocks and heads need one entry per level (4)")
        if width % 2:
            raise ValueError("width must be even (pixel-unshuffle after halving the channels)")
        if in_channels != out_channels:
            raise ValueError("the global residual needs in_channels == out_channels")
        w = width
        b1, b2, b3, b4 = (int(n) for n in blocks)
        h1, h2, h3, h4 = (int(n) for n in heads)
        e = ffn_expansion

        self.embed = _conv3x3(in_channels, w)
        self.enc1 = _stage(b1, w, h1, e)
        self.down1 = Down(w)
        self.enc2 = _stage(b2, 2 * w, h2, e)
        self.down2 = Down(2 * w)
        self.enc3 = _stage(b3, 4 * w, h3, e)
        self.down3 = Down(4 * w)
        self.bottleneck = _stage(b4, 8 * w, h4, e)

        self.up3 = Up(8 * w)
        self.reduce3 = _conv1x1(8 * w, 4 * w)
        self.dec3 = _stage(b3, 4 * w, h3, e)
        self.up2 = Up(4 * w)
        self.reduce2 = _conv1x1(4 * w, 2 * w)
        self.dec2 = _stage(b2, 2 * w, h2, e)
        self.up1 = Up(2 * w)
        self.dec1 = _stage(b1, 2 * w, h1, e)
        self.refine = _stage(refinement_blocks, 2 * w, h1, e)
        self.out = _conv3x3(2 * w, out_channels)

    @staticmethod
    def _pad(x: Tensor, multiple: int = 8) -> Tensor:
        h, w = x.shape[-2:]
        ph, pw = (-h) % multiple, (-w) % multiple
        if ph == 0 and pw == 0:
            return x
        # reflect needs the pad to be smaller than the side; fall back to replicate on tiny inputs
        mode = "reflect" if ph < h and pw < w else "replicate"
        return F.pad(x, (0, pw, 0, ph), mode=mode)

    def forward(self, x: Tensor) -> Tensor:
        """Restore ``x`` (B, 3, H, W); returns a tensor of the same shape."""
        h, w = x.shape[-2:]
        xp = self._pad(x)

        e1 = self.enc1(self.embed(xp))
        e2 = self.enc2(self.down1(e1))
        e3 = self.enc3(self.down2(e2))
        z = self.bottleneck(self.down3(e3))

        d3 = self.dec3(self.reduce3(torch.cat([self.up3(z), e3], dim=1)))
        d2 = self.dec2(self.reduce2(torch.cat([self.up2(d3), e2], dim=1)))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        y = self.out(self.refine(d1)) + xp
        return y[..., :h, :w]
