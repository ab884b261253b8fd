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


class ModulatedConvBlock(nn.Module):
    """The cheap convolutional block used at half resolution, with prior scale/shift."""

    def __init__(self, channels: int, latent_dim: int) -> None:
        super().__init__()
        self.modulate = PriorModulation(channels, latent_dim)
        self.block = SimpleGateBlock(channels)

    def forward(self, x: Tensor, z: Tensor, z_pooled: Tensor) -> Tensor:
        return self.block(self.modulate(x, z_pooled))


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
