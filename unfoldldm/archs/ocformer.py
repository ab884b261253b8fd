"""OCFormer: the prior-guided proximal network that corrects the over-smoothing of gradient steps.

A small U-shape that works on the Haar bands of ``v_k`` (half resolution), so the expensive part
never runs at full resolution. Blocks are modulated by the prior (scale/shift from the pooled
tokens) and attend to the N prior tokens (cross-attention). The low band and the three
high-frequency bands get separate output heads; the high-frequency head is gated by the prior.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..config import ModelConfig
from . import fold
from .blocks import (
    ChannelAttention,
    GatedFFN,
    LayerNorm2d,
    PriorCrossAttention,
    PriorModulation,
    SimpleGateBlock,
    haar_dwt,
    haar_idwt,
)


class PriorTransformerBlock(nn.Module):
    """Channel attention + prior cross-attention + gated FFN, all modulated by the prior."""

    def __init__(self, channels: int, heads: int, latent_dim: int, ffn_expansion: float) -> None:
        super().__init__()
        self.norm_attn = LayerNorm2d(channels)
        self.modulate = PriorModulation(channels, latent_dim)
        self.attn = ChannelAttention(channels, heads)
        self.norm_cross = LayerNorm2d(channels)
        self.cross = PriorCrossAttention(channels, latent_dim, heads)
        self.norm_ffn = LayerNorm2d(channels)
        self.ffn = GatedFFN(channels, ffn_expansion)

    def forward(self, x: Tensor, z: Tensor, z_pooled: Tensor) -> Tensor:
        x = x + self.attn(self.modulate(self.norm_attn(x), z_pooled))
        x = x + self.cross(self.norm_cross(x), z)
        return x + self.ffn(self.norm_ffn(x))

    def infer(self, x: Tensor, z: Tensor, z_pooled: Tensor) -> Tensor:
        """:meth:`forward` on (B, H, W, C), inference only (see :mod:`.fold`)."""
        scale, shift = self.modulate.factors(z_pooled)
        x = self.attn.infer(x, self.norm_attn, scale, shift)
        x = self.cross.infer(x, self.norm_cross, z)
        return self.ffn.infer(x, self.norm_ffn)


class ModulatedConvBlock(nn.Module):
    """The cheap convolutional block used at half resolution, with prior scale/shift."""

    def __init__(self, channels: int, latent_dim: int) -> None:
        super().__init__()
        self.modulate = PriorModulation(channels, latent_dim)
        self.block = SimpleGateBlock(channels)

    def forward(self, x: Tensor, z: Tensor, z_pooled: Tensor) -> Tensor:
        return self.block(self.modulate(x, z_pooled))

    def infer(self, x: Tensor, z: Tensor, z_pooled: Tensor) -> Tensor:
        """:meth:`forward` on (B, H, W, C), inference only."""
        scale, shift = self.modulate.factors(z_pooled)
        return self.block.infer(torch.addcmul(shift[:, None, None, :], x, scale[:, None, None, :]))


def downsample(channels_in: int, channels_out: int) -> nn.Module:
    return nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(4 * channels_in, channels_out, 1))


def upsample(channels_in: int, channels_out: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(channels_in, 4 * channels_out, 1), nn.PixelShuffle(2))


class OCFormer(nn.Module):
    """``(v_k, h_{k-1}, z_k) -> (x_k = v_k + r_k, h_k)``; inputs must have sides divisible by 16."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        c, zd, e = config.width, config.latent_dim, config.ffn_expansion
        n1, n2, n3 = config.blocks
        h1, h2, h3 = config.heads
        self.embed = nn.Conv2d(12 + config.memory_channels, c, 1)
        self.enc1 = nn.ModuleList(ModulatedConvBlock(c, zd) for _ in range(n1))
        self.down1 = downsample(c, 2 * c)
        self.enc2 = nn.ModuleList(PriorTransformerBlock(2 * c, h2, zd, e) for _ in range(n2))
        self.down2 = downsample(2 * c, 4 * c)
        self.middle = nn.ModuleList(PriorTransformerBlock(4 * c, h3, zd, e) for _ in range(n3))
        self.up2 = upsample(4 * c, 2 * c)
        self.fuse2 = nn.Conv2d(4 * c, 2 * c, 1)
        self.dec2 = nn.ModuleList(PriorTransformerBlock(2 * c, h2, zd, e) for _ in range(n2))
        self.up1 = upsample(2 * c, c)
        self.fuse1 = nn.Conv2d(2 * c, c, 1)
        self.dec1 = nn.ModuleList(ModulatedConvBlock(c, zd) for _ in range(n1))
        self.low_head = nn.Conv2d(c, 3, 3, padding=1)
        self.high_head = nn.Conv2d(c, 9, 3, padding=1)
        self.high_gate = nn.Linear(zd, 9)
        self.memory = nn.Conv2d(c, config.memory_channels, 1)
        for head in (self.low_head, self.high_head):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    @staticmethod
    def _run(blocks: nn.ModuleList, x: Tensor, z: Tensor, z_pooled: Tensor) -> Tensor:
        for block in blocks:
            x = block(x, z, z_pooled)
        return x

    def forward(self, v: Tensor, h: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        if not torch.is_grad_enabled():
            return self.infer(v, h, z)
        z_pooled = z.mean(dim=1)
        f1 = self._run(self.enc1, self.embed(torch.cat([haar_dwt(v), h], dim=1)), z, z_pooled)
        f2 = self._run(self.enc2, self.down1(f1), z, z_pooled)
        f3 = self._run(self.middle, self.down2(f2), z, z_pooled)
        d2 = self._run(self.dec2, self.fuse2(torch.cat([self.up2(f3), f2], dim=1)), z, z_pooled)
        d1 = self._run(self.dec1, self.fuse1(torch.cat([self.up1(d2), f1], dim=1)), z, z_pooled)
        # Over-smoothing correction: the high bands get their own head, gated per band by the prior.
        gate = 2 * torch.sigmoid(self.high_gate(z_pooled))[:, :, None, None]
        bands = torch.cat([self.low_head(d1), gate * self.high_head(d1)], dim=1)
        return v + haar_idwt(bands), self.memory(d1)

    # ----- inference ------------------------------------------------------------------------
    @staticmethod
    def _run_infer(blocks: nn.ModuleList, x: Tensor, z: Tensor, z_pooled: Tensor) -> Tensor:
        for block in blocks:
            x = block.infer(x, z, z_pooled)
        return x

    @staticmethod
    def _down(module: nn.Sequential, x: Tensor) -> Tensor:
        """``PixelUnshuffle(2)`` + 1x1 conv as one 2x2 stride-2 conv, on (B, H, W, C)."""
        return fold.conv(x, fold.unshuffle_conv(module[1].weight.flatten(1)), module[1].bias, stride=2)

    @staticmethod
    def _up_fuse(up: nn.Sequential, fuse: nn.Conv2d, low: Tensor, skip: Tensor) -> Tensor:
        """``fuse(cat([up(low), skip]))`` on (B, H, W, C): the fuse conv's first half is folded into
        the up conv (before the pixel shuffle), its second half acts on ``skip`` directly."""
        conv_up = up[0]
        c_up = conv_up.out_channels // 4
        w_fuse = fuse.weight.flatten(1)
        w_a, w_b = w_fuse[:, :c_up], w_fuse[:, c_up:]
        w_up = conv_up.weight.flatten(1).view(c_up, 4, -1)  # (c, sub-pixel s = 2a + b, in)
        weight = torch.einsum("oc,csi->soi", w_a, w_up).flatten(0, 1)  # rows (s, o)
        bias = (w_a @ conv_up.bias.view(c_up, 4)).t() + fuse.bias  # (s, o)
        b, h, w, _ = low.shape
        out = fold.linear(skip, w_b)  # (B, 2h, 2w, C)
        sub = fold.linear(low, weight, bias.flatten()).view(b, h, w, 2, 2, -1).permute(0, 1, 3, 2, 4, 5)
        out.view(b, h, 2, w, 2, -1).add_(sub)
        return out

    def _output(self, d1: Tensor, v: Tensor, gate: Tensor) -> Tensor:
        """``v + haar_idwt(cat([low_head(d1), gate * high_head(d1)]))`` as one 3x3 conv whose 12 outputs
        are the pixels of each 2x2 cell, added to ``v`` (B, 3, H, W) by a strided view."""
        haar = fold.haar_matrix(d1)
        c = self.low_head.in_channels
        b = d1.shape[0]
        w_bands = torch.cat([self.low_head.weight.expand(b, -1, -1, -1, -1),
                             self.high_head.weight * gate[:, :, None, None, None]], dim=1)  # (B, 12, C, 3, 3)
        b_bands = torch.cat([self.low_head.bias.expand(b, -1), self.high_head.bias * gate], dim=1)
        weight = torch.einsum("bk,nbcxyz->nkcxyz", haar, w_bands.view(b, 4, 3, c, 3, 3)).reshape(b, 12, c, 3, 3)
        bias = (b_bands.view(b, 4, 3).transpose(1, 2) @ haar).transpose(1, 2).reshape(b, 12)
        pixels = fold.conv(d1, weight, bias, padding=1)  # (B, h, w, (i, j, channel))
        _, h, w, _ = pixels.shape
        cells = pixels.view(b, h, w, 2, 2, 3).permute(0, 1, 3, 2, 4, 5)
        out = fold.nhwc(v).reshape(b, h, 2, w, 2, 3) + cells
        return fold.nchw(out.reshape(b, 2 * h, 2 * w, 3))

    def infer(self, v: Tensor, h: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`forward` for inference: same result, fewer and larger operations (see :mod:`.fold`).

        Features stay (B, H, W, C) throughout; the Haar analysis is folded into the embedding (a 2x2
        stride-2 conv on ``v``), the Haar synthesis and the prior gate into the output conv.
        """
        z_pooled = z.mean(dim=1)
        w_embed = self.embed.weight.flatten(1)
        f1 = fold.conv(fold.nhwc(v), fold.haar_analysis_conv(w_embed[:, :12]), self.embed.bias, stride=2)
        f1 = fold.linear_add(fold.nhwc(h), w_embed[:, 12:], None, f1)
        f1 = self._run_infer(self.enc1, f1, z, z_pooled)
        f2 = self._run_infer(self.enc2, self._down(self.down1, f1), z, z_pooled)
        f3 = self._run_infer(self.middle, self._down(self.down2, f2), z, z_pooled)
        d2 = self._run_infer(self.dec2, self._up_fuse(self.up2, self.fuse2, f3, f2), z, z_pooled)
        d1 = self._run_infer(self.dec1, self._up_fuse(self.up1, self.fuse1, d2, f1), z, z_pooled)
        gate = 2 * torch.sigmoid(self.high_gate(z_pooled))
        memory = fold.linear(d1, self.memory.weight.flatten(1), self.memory.bias)
        return self._output(d1, v, gate), fold.nchw(memory)
