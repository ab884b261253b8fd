"""The evaluation protocol: which degraded inputs, which ground truth, which metrics.

Everything is deterministic: the same images give bit-identical inputs on every run and machine
(all random numbers come from CPU ``torch.Generator`` objects, drawn image by image in sorted
file-name order, so ``--limit N`` sees exactly the first N inputs of the full run).

- **denoise** (per sigma in 15/25/50): ``noisy = clean + sigma/255 * randn``, with ONE
  ``torch.Generator().manual_seed(0)`` for the whole set at that sigma, ``randn`` of the image's shape
  drawn per image in sorted order. The noisy input is NOT clipped (the usual convention; the model
  clamps its input, the classical baselines see the unclipped values). RGB metrics, no border crop.
  Beside it, the **8-bit** setting users meet: the same noisy image clipped to [0, 1] and rounded to
  8 bits, as a noisy photo is stored. Sigma 0 is the clean image itself (it must come back unchanged).
- **jpeg** (per quality in 10/20/30/40): the clean image saved by Pillow as a baseline JPEG at that
  quality (IJG tables, 4:2:0 chroma subsampling, Pillow's defaults) and decoded. RGB metrics.
- **deblur**: 8 kernels of 21x21 made once from ``torch.Generator().manual_seed(0)`` — Gaussian and
  motion alternating (even index: anisotropic Gaussian, std 0.8-3.0 px; odd: straight motion, 7-17 px),
  see :func:`deblur_kernels`. Image i gets kernel ``i % 8``, is blurred with reflect padding
  (:func:`unfoldldm.degradations.blur`), gets 1% Gaussian noise (std 0.01 on [0, 1]; its own
  ``manual_seed(0)`` generator, drawn per image) and is clipped to [0, 1] like a saved photo. RGB metrics.
- **sr4x, bicubic**: the HR image is cropped (top-left) to a multiple of 4; LR =
  ``F.interpolate(hr, 1/4 size, mode="bicubic", antialias=True)`` clipped to [0, 1] (torch's
  antialiased bicubic, the Keys a = -0.5 kernel stretched x4 as MATLAB ``imresize``; close to, not
  bit-equal with it) and rounded to 8 bits like the benchmark's LR PNGs.
- **sr4x, blind**: per image (``manual_seed(0)``, drawn in order) an isotropic Gaussian kernel of std
  ``U(0.6, 2.4)`` px (21x21), blur with reflect padding, keep every 4th pixel (the top-left of each
  4x4 cell, as the model's ``S_s``), add Gaussian noise of std 5/255, clip to [0, 1].
  SR metrics are on the BT.601 Y channel with a 4-pixel border crop.

Greyscale images (Set14 has one) are read as RGB with the grey value in all three channels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from ..degradations import (
    DegradationConfig,
    blur,
    gaussian_kernels,
    mean_kernel,
    motion_kernels,
)
from ..errors import InputImageError, UnfoldLDMError
from ..imageio import IMAGE_SUFFIXES, load_image

TASKS = ("denoise", "deblur", "sr4x", "jpeg")
DEFAULT_SIGMAS = (15, 25, 50)
DEFAULT_QUALITIES = (10, 20, 30, 40)
NOISE_FORMATS = ("both", "float", "8bit")
KERNEL_SIZE = 21
KERNEL_SEED = 0
NOISE_SEED = 0
DEBLUR_NOISE = 0.01
SR_SCALE = 4
SR_BLIND_SIGMA = (0.6, 2.4)
SR_BLIND_NOISE = 5 / 255
SR_CROP = 4


@dataclass(frozen=True)
class Setting:
    """One degradation of one task; a report has a table per dataset and setting."""

    task: str
    key: str  # short id used in the CSV: sigma15, kernels8, bicubic, blind
    title: str  # for the report
    scale: int = 1
    sigma: float = 0.0  # noise std on the [0, 1] scale (0: none)
    y_channel: bool = False
    crop: int = 0
    eight_bit: bool = False  # the noisy input is clipped and rounded to 8 bits, like a stored photo
    quality: int = 0  # JPEG quality (jpeg task)

    @property
    def has_kernels(self) -> bool:
        """Whether the setting blurs with a known kernel (and MGDA's estimate can be scored)."""
        return self.key in ("kernels8", "blind")


@dataclass
class Sample:
    """One test image under one setting."""

    name: str
    clean: Tensor  # (3, H, W) ground truth in [0, 1]
    degraded: Tensor  # (3, H/s, W/s) the model's input
    kernel: Tensor | None  # (21, 21) true blur kernel (deblur, blind SR), sums to 1


def _noise_setting(sigma: float, eight_bit: bool) -> Setting:
    if sigma == 0:
        return Setting("denoise", "sigma0", "clean input (σ=0)", eight_bit=True)
    if eight_bit:
        return Setting("denoise", f"sigma{sigma:g}_8bit", f"AWGN σ={sigma:g}, 8-bit (clipped, rounded)",
                       sigma=sigma / 255, eight_bit=True)
    return Setting("denoise", f"sigma{sigma:g}", f"AWGN σ={sigma:g}", sigma=sigma / 255)


def settings_for(task: str, sigmas: tuple[float, ...] = DEFAULT_SIGMAS, noise_format: str = "both",
                 qualities: tuple[int, ...] = DEFAULT_QUALITIES) -> list[Setting]:
    """The settings of ``task``: per noise level in the unclipped and/or the 8-bit form (denoise), one
    (deblur), bicubic and blind (sr4x), one per JPEG quality (jpeg)."""
    if task == "denoise":
        if noise_format not in NOISE_FORMATS:
            raise UnfoldLDMError(f"Unknown noise format {noise_format!r}; choose one of {', '.join(NOISE_FORMATS)}.")
        forms = {"both": (False, True), "float": (False,), "8bit": (True,)}[noise_format]
        out: list[Setting] = []
        for s in sigmas:
            out += [_noise_setting(s, True)] if s == 0 else [_noise_setting(s, b) for b in forms]
        return out
    if task == "jpeg":
        return [Setting("jpeg", f"q{q}", f"JPEG quality {q} (Pillow, 4:2:0)", quality=q) for q in qualities]
    if task == "deblur":
        return [Setting("deblur", "kernels8", "8 Gaussian/motion kernels + 1% noise", sigma=DEBLUR_NOISE)]
    if task == "sr4x":
        return [
            Setting("sr4x", "bicubic", "x4, bicubic (antialiased)", SR_SCALE, 0.0, True, SR_CROP),
            Setting("sr4x", "blind", "x4, blind (Gaussian kernel σ∈[0.6, 2.4] + noise 5/255)", SR_SCALE,
                    SR_BLIND_NOISE, True, SR_CROP),
        ]
    raise UnfoldLDMError(f"Unknown task {task!r}; choose one of {', '.join(TASKS)}.")


def list_images(folder: str | Path, limit: int | None = None) -> list[Path]:
    """The images directly in ``folder``, sorted by file name, at most ``limit`` of them."""
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise InputImageError(f"Data folder {folder} does not exist; give --data a folder of test images.")
    if not folder.is_dir():
        raise InputImageError(f"--data {folder} is not a folder; give a folder of test images.")
    paths = sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                   key=lambda p: p.name)
    if not paths:
        raise InputImageError(f"Data folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    return paths[:limit] if limit else paths


def load_clean(path: Path, scale: int = 1) -> Tensor:
    """The ground truth (3, H, W) in [0, 1], cropped (top-left) to a multiple of ``scale``."""
    rgb = load_image(path).rgb
    h, w = rgb.shape[-2] // scale * scale, rgb.shape[-1] // scale * scale
    if h < 16 or w < 16:
        raise InputImageError(f"{path}: too small to evaluate ({rgb.shape[-1]}x{rgb.shape[-2]}).")
    return rgb[:, :h, :w].contiguous()


def deblur_kernels() -> Tensor:
    """The 8 deblurring kernels (8, 21, 21): even index anisotropic Gaussian, odd index motion."""
    g = torch.Generator().manual_seed(KERNEL_SEED)

    def uniform(lo: float, hi: float) -> Tensor:
        return lo + (hi - lo) * torch.rand(4, generator=g, dtype=torch.float64)

    sx, sy, theta = uniform(0.8, 3.0), uniform(0.8, 3.0), uniform(0.0, torch.pi)
    length, angle = uniform(7.0, 17.0), uniform(0.0, torch.pi)
    gauss = gaussian_kernels(sx, sy, theta, KERNEL_SIZE)
    motion = motion_kernels(length, angle, KERNEL_SIZE)
    return torch.stack([gauss, motion], dim=1).reshape(8, KERNEL_SIZE, KERNEL_SIZE).float()


def blind_sr_kernel(sigma: float) -> Tensor:
    """An isotropic 21x21 Gaussian of std ``sigma`` px."""
    s = torch.tensor([sigma], dtype=torch.float64)
    return gaussian_kernels(s, s, torch.zeros(1, dtype=torch.float64), KERNEL_SIZE)[0].float()


def trivial_kernel(setting: Setting) -> Tensor:
    """The trivial kernel estimate MGDA is compared with: the mean of the 8 deblurring kernels, or
    for blind SR the Gaussian of the mean protocol width (std 1.5 px)."""
    if setting.key == "kernels8":
        return deblur_kernels().mean(dim=0)
    return blind_sr_kernel(sum(SR_BLIND_SIGMA) / 2)


def jpeg_round_trip(clean: Tensor, quality: int) -> Tensor:
    """``clean`` (3, H, W) saved as a baseline JPEG by Pillow at ``quality`` and decoded."""
    import io

    import numpy as np
    from PIL import Image

    pixels = (clean.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as img:
        decoded = np.array(img.convert("RGB"))
    return torch.from_numpy(decoded).permute(2, 0, 1).float() / 255


def training_preset(task: str) -> str:
    """The degradation preset the shipped models of ``task`` are trained on."""
    return "sr4x_v1" if task == "sr4x" else "restore"


def mean_training_kernel(task: str) -> Tensor:
    """The mean first-order blur kernel of the training degradations of ``task`` (a trivial estimate)."""
    return mean_kernel(DegradationConfig.preset(training_preset(task)))


def fit_kernel(kernel: Tensor, size: int) -> Tensor:
    """Centre-crop or zero-pad a (p, p) kernel to (size, size) and renormalise it to sum 1."""
    p = kernel.shape[-1]
    if p > size:
        start = (p - size) // 2
        kernel = kernel[start:start + size, start:start + size]
    elif p < size:
        pad = (size - p) // 2
        kernel = F.pad(kernel, (pad, pad, pad, pad))
    return kernel / kernel.sum().clamp_min(1e-12)


def bicubic_down(hr: Tensor, scale: int) -> Tensor:
    """Antialiased bicubic downsampling of (3, H, W) by ``scale``, clipped to [0, 1]."""
    size = (hr.shape[-2] // scale, hr.shape[-1] // scale)
    return F.interpolate(hr[None], size=size, mode="bicubic", align_corners=False, antialias=True)[0].clamp(0, 1)


def bicubic_up(lr: Tensor, scale: int) -> Tensor:
    """Bicubic upsampling of (3, h, w) by ``scale`` (the classical SR baseline), clipped to [0, 1].

    ``antialias=True`` makes torch use the Keys cubic with a = -0.5, as MATLAB ``imresize`` (its default
    path uses a = -0.75); with it, bicubic x4 on Set5 scores 28.43 dB (Y, crop 4), the literature's 28.42.
    """
    out = F.interpolate(lr[None], scale_factor=scale, mode="bicubic", align_corners=False, antialias=True)
    return out[0].clamp(0, 1)


def samples(setting: Setting, paths: list[Path]) -> Iterator[Sample]:
    """The degraded inputs of ``setting`` for ``paths`` (in the given, sorted order), one at a time."""
    noise = torch.Generator().manual_seed(NOISE_SEED)
    kernels = deblur_kernels() if setting.key == "kernels8" else None
    for i, path in enumerate(paths):
        clean = load_clean(path, setting.scale)
        kernel = None
        if setting.task == "denoise":
            degraded = clean + setting.sigma * torch.randn(clean.shape, generator=noise)
            if setting.eight_bit:
                degraded = (degraded.clamp(0, 1) * 255).round() / 255
        elif setting.task == "jpeg":
            degraded = jpeg_round_trip(clean, setting.quality)
        elif setting.task == "deblur":
            kernel = kernels[i % len(kernels)]
            degraded = blur(clean[None], kernel[None])[0]
            degraded = (degraded + setting.sigma * torch.randn(degraded.shape, generator=noise)).clamp(0, 1)
        elif setting.key == "bicubic":  # 8-bit, like the benchmark's LR PNGs
            degraded = (bicubic_down(clean, setting.scale) * 255).round() / 255
        else:  # blind SR
            sigma = SR_BLIND_SIGMA[0] + (SR_BLIND_SIGMA[1] - SR_BLIND_SIGMA[0]) * torch.rand(1, generator=noise).item()
            kernel = blind_sr_kernel(sigma)
            low = blur(clean[None], kernel[None])[0][:, :: setting.scale, :: setting.scale]
            degraded = (low + setting.sigma * torch.randn(low.shape, generator=noise)).clamp(0, 1)
        yield Sample(path.name, clean, degraded.contiguous(), kernel)
