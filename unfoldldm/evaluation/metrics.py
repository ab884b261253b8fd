"""PSNR and SSIM as the restoration literature computes them.

Conventions (the ones the published numbers quoted in the reports use):

- images are first rounded to 8 bits: ``round(clip(x, 0, 1) * 255)``; metrics use the [0, 255] data
  range, in float64;
- PSNR is ``10 log10(255^2 / MSE)`` with the MSE over all pixels and channels of one image;
- SSIM is Wang et al. (2004): an 11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03, the
  population (not sample) covariance, the mean of the SSIM map over the positions where the window
  lies inside the image ("valid"), and for RGB the mean of the three per-channel SSIMs. This equals
  ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255, channel_axis=-1)``;
- the Y channel is ITU-R BT.601 luma with MATLAB ``rgb2ycbcr``'s coefficients,
  ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` for R, G, B in [0, 1] (Y in [16, 235]); like
  BasicSR/SwinIR's evaluation, Y is kept in float and not rounded again;
- ``crop`` pixels are removed from every border before measuring (4 for x4 super-resolution).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
DATA_RANGE = 255.0
Y_COEFFS = (65.481, 128.553, 24.966)
Y_OFFSET = 16.0


def to_uint8_range(image: Tensor) -> Tensor:
    """(…, 3, H, W) float in [0, 1] -> float64 holding the 8-bit values ``round(clip(x) * 255)``."""
    return (image.detach().double().clamp(0, 1) * 255).round()


def rgb_to_y(image255: Tensor) -> Tensor:
    """RGB on the [0, 255] scale, (…, 3, H, W) -> BT.601 luma Y (…, 1, H, W) on the same scale."""
    r, g, b = image255.unbind(-3)
    y = Y_OFFSET + (Y_COEFFS[0] * r + Y_COEFFS[1] * g + Y_COEFFS[2] * b) / 255.0
    return y.unsqueeze(-3)


def _prepare(pred: Tensor, target: Tensor, y_channel: bool, crop: int) -> tuple[Tensor, Tensor]:
    """Quantise both images, optionally convert to Y and crop the borders; shapes (B, C, H, W)."""
    if pred.shape != target.shape:
        raise ValueError(f"images differ in shape: {tuple(pred.shape)} vs {tuple(target.shape)}")
    a, b = to_uint8_range(pred), to_uint8_range(target)
    if a.ndim == 3:
        a, b = a[None], b[None]
    if y_channel:
        a, b = rgb_to_y(a), rgb_to_y(b)
    if crop > 0:
        if min(a.shape[-2:]) <= 2 * crop:
            raise ValueError(f"image {tuple(a.shape[-2:])} is too small for a border crop of {crop}")
        a, b = a[..., crop:-crop, crop:-crop], b[..., crop:-crop, crop:-crop]
    return a, b


def psnr(pred: Tensor, target: Tensor, y_channel: bool = False, crop: int = 0) -> Tensor:
    """PSNR in dB per image of (B, 3, H, W) or (3, H, W) images in [0, 1] (``inf`` when identical)."""
    a, b = _prepare(pred, target, y_channel, crop)
    mse = (a - b).pow(2).flatten(1).mean(dim=1)
    out = 10 * torch.log10(DATA_RANGE**2 / mse)
    return out if pred.ndim == 4 else out[0]


def _gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> Tensor:
    r = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(pred: Tensor, target: Tensor, y_channel: bool = False, crop: int = 0) -> Tensor:
    """SSIM per image of (B, 3, H, W) or (3, H, W) images in [0, 1] (mean over channels)."""
    a, b = _prepare(pred, target, y_channel, crop)
    n, c, h, w = a.shape
    if min(h, w) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {h}x{w}")
    g = _gaussian_window()
    row, col = g.view(1, 1, 1, -1).repeat(c, 1, 1, 1), g.view(1, 1, -1, 1).repeat(c, 1, 1, 1)

    def filt(x: Tensor) -> Tensor:  # separable Gaussian, "valid" positions only
        return F.conv2d(F.conv2d(x, row, groups=c), col, groups=c)

    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a**2
    var_b = filt(b * b) - mu_b**2
    cov = filt(a * b) - mu_a * mu_b
    c1, c2 = (SSIM_K1 * DATA_RANGE) ** 2, (SSIM_K2 * DATA_RANGE) ** 2
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    out = (num / den).mean(dim=(-2, -1)).mean(dim=1)
    return out if pred.ndim == 4 else out[0]


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB for an MSE on the [0, 255] scale (a helper for hand computations)."""
    return math.inf if mse == 0 else 10 * math.log10(DATA_RANGE**2 / mse)
