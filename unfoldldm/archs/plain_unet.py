"""A plain convolutional U-Net proximal network (no prior guidance), for ablations and DUN baselines."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..config import ModelConfig
from .blocks import SimpleGateBlock, haar_dwt, haar_idwt
from .ocformer import downsample, upsample


class PlainUNet(nn.Module):
    """``(v_k, h_{k-1}, z) -> (x_k, h_k)`` with the same shape contract as OCFormer; ``z`` is ignored."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        c = config.width
        n1, n2, n3 = config.blocks

        def stack(ch: int, n: int) -> nn.Sequential:
            return nn.Sequential(*(SimpleGateBlock(ch) for _ in range(n)))

        self.embed = nn.Conv2d(12 + config.memory_channels, c, 1)
        self.enc1, self.down1 = stack(c, n1), downsample(c, 2 * c)
        self.enc2, self.down2 = stack(2 * c, n2), downsample(2 * c, 4 * c)
        self.middle = stack(4 * c, n3)
        self.up2, self.fuse2, self.dec2 = upsample(4 * c, 2 * c), nn.Conv2d(4 * c, 2 * c, 1), stack(2 * c, n2)
        self.up1, self.fuse1, self.dec1 = upsample(2 * c, c), nn.Conv2d(2 * c, c, 1), stack(c, n1)
        self.head = nn.Conv2d(c, 12, 3, padding=1)
        self.memory = nn.Conv2d(c, config.memory_channels, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, v: Tensor, h: Tensor, z: Tensor | None = None) -> tuple[Tensor, Tensor]:
        f1 = self.enc1(self.embed(torch.cat([haar_dwt(v), h], dim=1)))
        f2 = self.enc2(self.down1(f1))
        f3 = self.middle(self.down2(f2))
        d2 = self.dec2(self.fuse2(torch.cat([self.up2(f3), f2], dim=1)))
        d1 = self.dec1(self.fuse1(torch.cat([self.up1(d2), f1], dim=1)))
        return v + haar_idwt(self.head(d1)), self.memory(d1)
