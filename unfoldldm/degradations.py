"""Batched synthesis of degraded inputs for training blind restoration, in plain torch.

Every function takes a batch ``(B, C, H, W)`` in [0, 1] on whatever device it lives on, with
per-sample parameters given as ``(B,)`` tensors (a Python number or 0-d tensor is broadcast).
:func:`degrade` draws every random number from the ``torch.Generator`` it is given, so one seed
fixes the whole batch.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor

# "decimate" keeps the top-left pixel of every scale x scale block after the blur: the classical
# blind-SR model y = (k * x)[::s, ::s] and the grid of the model's own operator S_s. The others are
# centred filters (low-res pixel i at high-res s*i + (s-1)/2); a blind model must handle both.
DOWN_MODES = ("bicubic", "bilinear", "area", "decimate")
# Noise models, each parameterised so that its std at mid-grey is the drawn sigma: white Gaussian,
# Poisson (photon), signal-dependent Gaussian (variance a*x + b), spatially correlated Gaussian
# (white noise blurred, as after demosaicing or resizing) and chroma noise (coloured blotches:
# strong, smooth colour-difference noise on top of weaker luma noise, as from a phone camera).
NOISE_KINDS = ("gaussian", "poisson", "signal_dependent", "correlated", "chroma")

PRESETS: dict[str, dict] = {
    # Blind restoration as users meet it (see docs/training.md for how the weights were chosen):
    # noise on most samples, mild noise (sigma <= 20/255) on a third of those, every noise model,
    # JPEG down to quality 10, stored as 8-bit, some clean inputs that must come back unchanged,
    # and blur on fewer samples than before.
    "restore": {
        "scale": 1, "second_order_prob": 0.15, "blur_prob": 0.4, "noise_prob": 0.85,
        "noise_sigma_range": (0.0, 55.0 / 255.0), "mild_noise_share": 0.35, "mild_sigma_range": (1.0 / 255.0, 20.0 / 255.0),
        "noise_mix": (0.45, 0.1, 0.15, 0.15, 0.15), "jpeg_prob": 0.35, "jpeg_quality_range": (10, 95),
        "clean_prob": 0.05, "quantize_prob": 0.9,
    },
    # The mixture the first shipped restore_small was trained on (70% blurred, uniform noise, JPEG >= 30).
    "restore_v1": {"scale": 1, "second_order_prob": 0.2},
    # Blind x4 as users' small images were made: 30% of the samples only down-sampled (plain bicubic
    # is how most were), blur on 70% of the rest (less blur made the kernel estimate collapse towards
    # a delta), noise on 70% (a third of it mild), 8-bit rounding on half; chosen by CPU A/B runs on
    # the validation split (docs/training.md).
    "sr4x": {
        "scale": 4, "second_order_prob": 0.15, "blur_prob": 0.7, "noise_prob": 0.7, "mild_noise_share": 0.3,
        "mild_sigma_range": (1.0 / 255.0, 20.0 / 255.0), "jpeg_prob": 0.25, "clean_prob": 0.3, "quantize_prob": 0.5,
    },
    # The mixture the shipped sr4x_small was trained on (70% blurred, almost no plain down-sampled samples).
    "sr4x_v1": {"scale": 4, "second_order_prob": 0.2},
    "denoise": {"scale": 1, "blur_prob": 0.0, "noise_prob": 1.0, "jpeg_prob": 0.0},
    "realworld": {"scale": 1, "second_order_prob": 1.0},
}


@dataclass
class DegradationConfig:
    """Probabilities and parameter ranges of the random pipeline run by :func:`degrade`."""

    scale: int = 1  # 1 restoration, 2 or 4 super-resolution
    kernel_size: int = 21  # odd; size of every blur kernel returned
    blur_prob: float = 0.7
    kernel_mix: tuple[float, float, float] = (0.5, 0.3, 0.2)  # isotropic, anisotropic, motion
    sigma_range: tuple[float, float] = (0.2, 3.0)  # Gaussian blur std in pixels
    motion_length_range: tuple[float, float] = (3.0, 15.0)
    noise_prob: float = 0.9
    noise_sigma_range: tuple[float, float] = (0.0, 50.0 / 255.0)  # std on the [0, 1] scale
    mild_noise_share: float = 0.0  # share of noisy samples whose sigma comes from mild_sigma_range
    mild_sigma_range: tuple[float, float] = (1.0 / 255.0, 20.0 / 255.0)
    noise_mix: tuple[float, ...] = (0.6, 0.2, 0.2, 0.0, 0.0)  # weights of NOISE_KINDS (3 weights: the first three)
    jpeg_prob: float = 0.3
    jpeg_quality_range: tuple[int, int] = (30, 95)
    down_modes: tuple[str, ...] = DOWN_MODES  # used when scale > 1
    second_order_prob: float = 0.0  # probability of a second, milder pass (Real-ESRGAN style)
    clean_prob: float = 0.0  # samples left clean (down-sampled only): they must come back unchanged
    quantize_prob: float = 0.0  # round y to 8 bits after the noise, as a stored photo is
    clip: bool = True  # clip y to [0, 1]

    def __post_init__(self) -> None:
        problems = []
        if len(self.noise_mix) == 3:  # configs written before the correlated and chroma models
            self.noise_mix = (*self.noise_mix, 0.0, 0.0)
        if not isinstance(self.scale, int) or self.scale < 1:
            problems.append(f"scale={self.scale!r} must be a positive integer")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            problems.append(f"kernel_size={self.kernel_size} must be odd and positive")
        for name in ("blur_prob", "noise_prob", "jpeg_prob", "second_order_prob", "clean_prob", "quantize_prob",
                     "mild_noise_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name}={getattr(self, name)} must lie in [0, 1]")
        for name, count in (("kernel_mix", 3), ("noise_mix", len(NOISE_KINDS))):
            weights = getattr(self, name)
            if len(weights) != count or min(weights) < 0 or sum(weights) <= 0:
                problems.append(f"{name}={weights} must be {count} non-negative weights, not all zero")
        for name in ("sigma_range", "motion_length_range", "noise_sigma_range", "mild_sigma_range",
                     "jpeg_quality_range"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                problems.append(f"{name}=({lo}, {hi}) must satisfy 0 <= low <= high")
        if not 1 <= self.jpeg_quality_range[0] <= self.jpeg_quality_range[1] <= 100:
            problems.append(f"jpeg_quality_range={self.jpeg_quality_range} must lie within [1, 100]")
        if not self.down_modes or set(self.down_modes) - set(DOWN_MODES):
            problems.append(f"down_modes={self.down_modes} must be a non-empty subset of {DOWN_MODES}")
        if problems:
            raise ValueError("invalid DegradationConfig: " + "; ".join(problems))

    @classmethod
    def preset(cls, name: str) -> DegradationConfig:
        """One of the named setups in :data:`PRESETS` ("restore", "sr4x", "denoise", ...)."""
        if name not in PRESETS:
            raise ValueError(f"unknown degradation preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls(**PRESETS[name])


@dataclass
class DegradedBatch:
    """A degraded batch and the first-order parameters that produced it."""

    y: Tensor  # (B, 3, H/scale, W/scale)
    kernel: Tensor  # (B, p, p) first-order blur kernel, a centred delta when not blurred
    noise_sigma: Tensor  # (B,) Gaussian-equivalent first-order noise std, 0 when none
    noise_std: Tensor  # (B, 1, H/scale, W/scale) per-pixel first-order noise std (RMS over channels)
    jpeg_quality: Tensor  # (B,) int64 first-order JPEG quality, 0 when none
    scale: int
    second_order: Tensor  # (B,) bool
    down_mode: Tensor  # (B,) int64 index into the config's down_modes, -1 at scale 1

    def operator_known(self, down_modes: tuple[str, ...]) -> Tensor:
        """(B,) bool: whether ``y`` is exactly ``S_s(kernel * x)`` plus noise/JPEG, the model's
        decomposed operator (no second blur pass; at scale > 1 the "decimate" mode, whose grid is
        ``S_s``'s). Training supervises the MGDA kernel estimate on these samples only."""
        exact = ~self.second_order
        if self.scale == 1:
            return exact
        if "decimate" not in down_modes:
            return torch.zeros_like(exact)
        return exact & (self.down_mode == down_modes.index("decimate"))

    def noise_known(self) -> Tensor:
        """(B,) bool: whether :attr:`noise_std` is the whole noise of ``y`` (no second pass added more).
        Training supervises the MGDA noise map on these samples."""
        return ~self.second_order


# ----------------------------------------------------------------------------- random draws


def _rand(n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """``n`` uniform draws in [0, 1), made on the generator's device and moved to ``device``."""
    source = generator.device if generator is not None else device
    return torch.rand(n, generator=generator, device=source).to(device)


def _randn_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """Standard normal noise shaped like ``x``, drawn on the generator's device."""
    source = generator.device if generator is not None else x.device
    return torch.randn(x.shape, generator=generator, device=source).to(x.device, x.dtype)


def _uniform(n: int, bounds: tuple[float, float], generator, device) -> Tensor:
    lo, hi = bounds
    return lo + (hi - lo) * _rand(n, generator, device)


def _categorical(weights: tuple[float, ...], n: int, generator, device) -> Tensor:
    """``n`` category indices drawn with the given (unnormalised) weights."""
    bounds = list(itertools.accumulate(weights))
    u = _rand(n, generator, device) * bounds[-1]
    index = torch.zeros(n, dtype=torch.long, device=device)
    for bound in bounds[:-1]:  # Python numbers: no copy to the device, so no wait for it
        index += u >= bound
    return index


def _needed(mask: Tensor) -> bool:
    """Whether any sample takes a random branch. On a GPU every branch is computed for the whole
    batch instead: asking would make the CPU wait for all queued GPU work (see training/cuda_graph.py)."""
    return mask.device.type == "cuda" or bool(mask.any())


def _per_sample(value: Tensor | float, x: Tensor) -> Tensor:
    """A scalar or ``(B,)`` parameter shaped to broadcast over ``(B, C, H, W)``."""
    return torch.as_tensor(value, device=x.device, dtype=x.dtype).reshape(-1, 1, 1, 1)


# ----------------------------------------------------------------------------- blur kernels


def _grid(size: int, like: Tensor) -> tuple[Tensor, Tensor]:
    """Column (x) and row (y) offsets from the kernel centre, each shaped ``(1, p, p)``."""
    r = torch.arange(size, device=like.device, dtype=like.dtype) - size // 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    return xx[None], yy[None]


def _normalise(kernels: Tensor) -> Tensor:
    return kernels / kernels.sum(dim=(-2, -1), keepdim=True)


def delta_kernels(batch: int, size: int, device=None, dtype=torch.float32) -> Tensor:
    """``(B, p, p)`` centred deltas, the kernel of "no blur"."""
    kernels = torch.zeros(batch, size, size, device=device, dtype=dtype)
    kernels[:, size // 2, size // 2] = 1.0
    return kernels


def gaussian_kernels(sigma_x: Tensor, sigma_y: Tensor, theta: Tensor, size: int) -> Tensor:
    """``(B, p, p)`` Gaussians with stds ``sigma_x``/``sigma_y`` along axes rotated by ``theta``."""
    xx, yy = _grid(size, sigma_x)
    cos, sin = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    u = cos * xx + sin * yy
    v = -sin * xx + cos * yy
    sx = sigma_x.clamp(min=1e-3)[:, None, None]
    sy = sigma_y.clamp(min=1e-3)[:, None, None]
    return _normalise(torch.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2)))


def motion_kernels(length: Tensor, angle: Tensor, size: int) -> Tensor:
    """``(B, p, p)`` straight motion paths of ``length`` pixels through the centre at ``angle``.

    The line is cut off at the kernel border when it is longer than the kernel.
    """
    xx, yy = _grid(size, length)
    cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    along = cos * xx + sin * yy
    across = -sin * xx + cos * yy
    half = (length.clamp(min=1.0) / 2)[:, None, None]
    # Anti-aliasing: a one-pixel tent across the line, and partial coverage of the end pixels.
    weight = (1 - across.abs()).clamp(min=0) * (half + 0.5 - along.abs()).clamp(0, 1)
    return _normalise(weight)


def blur(x: Tensor, kernels: Tensor) -> Tensor:
    """Convolve each sample of ``x`` (B, C, H, W) with its own kernel from ``kernels`` (B, p, p)."""
    b, c, h, w = x.shape
    p = kernels.shape[-1]
    pad = p // 2
    mode = "reflect" if pad < h and pad < w else "replicate"
    padded = F.pad(x.reshape(1, b * c, h, w), (pad, pad, pad, pad), mode=mode)
    # conv2d correlates, so flip to convolve; one group per (sample, channel) pair.
    weight = kernels.flip(-2, -1).to(x.dtype)[:, None].expand(b, c, p, p).reshape(b * c, 1, p, p)
    return F.conv2d(padded, weight, groups=b * c).reshape(b, c, h, w)


def downsample(x: Tensor, scale: int, mode: str) -> Tensor:
    """Shrink ``x`` by an integer ``scale`` with "bicubic", "bilinear" (both anti-aliased), "area" or
    "decimate" (every scale-th pixel from the top-left one, no filter)."""
    if mode not in DOWN_MODES:
        raise ValueError(f"down mode {mode!r} is not one of {DOWN_MODES}")
    if scale == 1:
        return x
    size = (x.shape[-2] // scale, x.shape[-1] // scale)
    if mode == "decimate":
        return x[..., : size[0] * scale : scale, : size[1] * scale : scale]
    if mode == "area":
        return F.interpolate(x, size=size, mode="area")
    return F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=True)


# ----------------------------------------------------------------------------- noise


def add_gaussian_noise(x: Tensor, sigma: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Add independent Gaussian noise of per-sample std ``sigma`` to every pixel and channel."""
    return x + _per_sample(sigma, x) * _randn_like(x, generator)


def add_poisson_noise(x: Tensor, peak: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Photon noise: ``x * peak`` expected photons per pixel, counted and scaled back."""
    peak = _per_sample(peak, x)
    rate = x.clamp(min=0) * peak
    source = generator.device if generator is not None else x.device
    counts = torch.poisson(rate.to(source, torch.float32), generator=generator)
    return counts.to(x.device, x.dtype) / peak


def add_signal_dependent_noise(
    x: Tensor, a: Tensor, b: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Heteroscedastic Gaussian noise with variance ``a * x + b`` (the Poisson-Gaussian model)."""
    variance = _per_sample(a, x) * x.clamp(min=0) + _per_sample(b, x)
    return x + variance.clamp(min=0).sqrt() * _randn_like(x, generator)


# ----------------------------------------------------------------------------- JPEG

_LUMA_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
_CHROMA_TABLE = (
    (17, 18, 24, 47, 99, 99, 99, 99),
    (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99),
    (47, 66, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
)


def _quant_tables(quality: Tensor, base: tuple[tuple[int, ...], ...]) -> Tensor:
    """``(B, 8, 8)`` IJG quantisation tables for per-sample quality in [1, 100]."""
    q = quality.clamp(1, 100)
    percent = torch.where(q < 50, 5000 / q, 200 - 2 * q)[:, None, None]
    return torch.floor((_table(base, quality.device, quality.dtype) * percent + 50) / 100).clamp(1, 255)


@functools.lru_cache(maxsize=16)
def _table(base: tuple[tuple[int, ...], ...], device: torch.device, dtype: torch.dtype) -> Tensor:
    """A quantisation table on ``device``, made once (each copy to a GPU waits for it)."""
    return torch.tensor(base, device=device, dtype=dtype)


def _dct_matrix(device, dtype) -> Tensor:
    """The orthonormal 8-point DCT-II matrix (JPEG's transform, row k = frequency k)."""
    n = torch.arange(8, device=device, dtype=dtype)
    matrix = torch.cos((2 * n[None, :] + 1) * n[:, None] * torch.pi / 16) * 0.5
    matrix[0] = matrix[0] / 2**0.5
    return matrix


def _code_plane(plane: Tensor, table: Tensor) -> Tensor:
    """Level-shift, 8x8 DCT, quantise with ``table`` (B, 8, 8), dequantise and invert a (B, h, w) plane."""
    b, h, w = plane.shape
    d = _dct_matrix(plane.device, plane.dtype)
    blocks = (plane - 128).reshape(b, h // 8, 8, w // 8, 8).transpose(2, 3)
    table = table[:, None, None]
    coeffs = torch.round(d @ blocks @ d.T / table) * table
    decoded = (d.T @ coeffs @ d).transpose(2, 3).reshape(b, h, w) + 128
    return decoded.round().clamp(0, 255)


def jpeg_compress(x: Tensor, quality: Tensor | float) -> Tensor:
    """Baseline JPEG round trip (YCbCr, 4:2:0, IJG tables) of RGB ``x`` in [0, 1] at per-sample quality."""
    b, _, h, w = x.shape
    work = x.float().clamp(0, 1) * 255
    quality = torch.as_tensor(quality, device=x.device, dtype=torch.float32).expand(b)
    # The codec works on whole 16x16 macroblocks; replicate the edges like libjpeg does.
    work = F.pad(work, (0, -w % 16, 0, -h % 16), mode="replicate")
    r, g, bl = work.unbind(1)
    luma = 0.299 * r + 0.587 * g + 0.114 * bl
    cb = -0.168736 * r - 0.331264 * g + 0.5 * bl + 128
    cr = 0.5 * r - 0.418688 * g - 0.081312 * bl + 128
    chroma = F.avg_pool2d(torch.stack([cb, cr], 1), 2)

    luma = _code_plane(luma, _quant_tables(quality, _LUMA_TABLE))
    chroma_table = _quant_tables(quality, _CHROMA_TABLE)
    chroma = torch.stack([_code_plane(chroma[:, i], chroma_table) for i in range(2)], 1)
    cb, cr = F.interpolate(chroma, scale_factor=2, mode="bilinear", align_corners=False).unbind(1)

    rgb = torch.stack(
        [
            luma + 1.402 * (cr - 128),
            luma - 0.344136 * (cb - 128) - 0.714136 * (cr - 128),
            luma + 1.772 * (cb - 128),
        ],
        1,
    )
    return (rgb.round().clamp(0, 255) / 255)[..., :h, :w].to(x.dtype)


# ----------------------------------------------------------------------------- the pipeline


def _random_kernels(b: int, config: DegradationConfig, generator, like: Tensor,
                    active: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Per-sample kernels from ``kernel_mix`` (deltas where not blurred or not ``active``) and the
    blurred mask."""
    dev, size = like.device, config.kernel_size
    blurred = _rand(b, generator, dev) < config.blur_prob
    if active is not None:
        blurred = blurred & active
    kind = _categorical(config.kernel_mix, b, generator, dev)
    sigma_x = _uniform(b, config.sigma_range, generator, dev)
    sigma_y = torch.where(kind == 0, sigma_x, _uniform(b, config.sigma_range, generator, dev))
    theta = _uniform(b, (0.0, torch.pi), generator, dev) * (kind != 0)
    length = _uniform(b, config.motion_length_range, generator, dev)
    angle = _uniform(b, (0.0, torch.pi), generator, dev)

    kernels = gaussian_kernels(sigma_x, sigma_y, theta, size)
    kernels = torch.where((kind == 2)[:, None, None], motion_kernels(length, angle, size), kernels)
    kernels = torch.where(blurred[:, None, None], kernels, delta_kernels(b, size, dev))
    return kernels.to(like.dtype), blurred


def mean_kernel(config: DegradationConfig, count: int = 4096, seed: int = 0) -> Tensor:
    """(p, p) the average first-order kernel of :func:`degrade` under ``config`` (unblurred samples
    count as deltas): the trivial guess a blind kernel estimate should beat."""
    generator = torch.Generator().manual_seed(seed)
    kernels, _ = _random_kernels(count, config, generator, torch.zeros(()))
    return kernels.mean(dim=0)


def _random_downsample(x: Tensor, config: DegradationConfig, generator) -> tuple[Tensor, Tensor]:
    """Downsample each sample by ``config.scale`` with a mode drawn from ``down_modes``; returns
    (y, index of the mode, -1 at scale 1)."""
    if config.scale == 1:
        return x, torch.full((x.shape[0],), -1, dtype=torch.long, device=x.device)
    mode = _categorical((1.0,) * len(config.down_modes), x.shape[0], generator, x.device)
    out = None
    for i, name in enumerate(config.down_modes):
        chosen = (mode == i).reshape(-1, 1, 1, 1)
        if _needed(chosen):
            small = downsample(x, config.scale, name)
            out = small if out is None else torch.where(chosen, small, out)
    return out, mode


def add_correlated_noise(x: Tensor, sigma: Tensor, spread: Tensor, generator: torch.Generator | None = None,
                         size: int = 7) -> Tensor:
    """Spatially correlated Gaussian noise: white noise blurred by a Gaussian of std ``spread`` pixels,
    rescaled so that every pixel's std is still ``sigma``."""
    kernels = gaussian_kernels(spread, spread, torch.zeros_like(spread), size)
    white = _randn_like(x, generator)
    gain = kernels.pow(2).sum(dim=(-2, -1)).rsqrt()  # blurred white noise has std sqrt(sum k^2)
    return x + _per_sample(sigma * gain, x) * blur(white, kernels)


# RGB from (Y, Cb, Cr) differences, as in JPEG's colour transform.
_YCC_TO_RGB = ((1.0, 0.0, 1.402), (1.0, -0.344136, -0.714136), (1.0, 1.772, 0.0))


def add_chroma_noise(x: Tensor, sigma: Tensor, chroma_gain: Tensor, spread: Tensor,
                     generator: torch.Generator | None = None, size: int = 7) -> Tensor:
    """Colour noise: smooth colour-difference noise ``chroma_gain`` times stronger than the luma noise,
    mapped to RGB and scaled so that the RMS over channels of each pixel's std is ``sigma``."""
    b = x.shape[0]
    zero = torch.zeros_like(spread)
    luma = _randn_like(x[:, :1], generator)
    kernels = gaussian_kernels(spread, spread, zero, size)
    gain = kernels.pow(2).sum(dim=(-2, -1)).rsqrt()
    chroma = blur(_randn_like(x[:, 1:], generator), kernels) * (gain * chroma_gain).reshape(b, 1, 1, 1)
    ycc = torch.cat([luma, chroma], dim=1)
    matrix = _table(_YCC_TO_RGB, x.device, x.dtype)
    rgb = torch.einsum("rc,bchw->brhw", matrix, ycc)
    # per-channel variance of rgb: sum_c M_rc^2 var_c; normalise its mean over the three channels
    variance = (matrix[:, :1] ** 2).sum() + (matrix[:, 1:] ** 2).sum() * chroma_gain**2
    return x + _per_sample(sigma * (variance / 3).rsqrt(), x) * rgb


def _random_noise(x: Tensor, config: DegradationConfig, generator, active: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Add one of :data:`NOISE_KINDS` per ``active`` sample with probability ``noise_prob``; returns
    (y, equivalent sigma, per-pixel std (B, 1, H, W))."""
    b, dev = x.shape[0], x.device
    applied = (_rand(b, generator, dev) < config.noise_prob) & active
    kind = _categorical(config.noise_mix, b, generator, dev)
    mild = _rand(b, generator, dev) < config.mild_noise_share
    sigma = torch.where(mild, _uniform(b, config.mild_sigma_range, generator, dev),
                        _uniform(b, config.noise_sigma_range, generator, dev)) * applied
    share = _rand(b, generator, dev)  # fraction of the signal-dependent variance that scales with x
    spread = _uniform(b, (0.5, 1.5), generator, dev)  # correlation length of correlated / chroma noise
    chroma_gain = _uniform(b, (1.0, 3.0), generator, dev)
    signal = x.clamp(min=0)
    flat = sigma.reshape(-1, 1, 1, 1).expand(-1, 1, *x.shape[-2:])
    # Each model is parameterised so that its noise std at mid-grey (x = 0.5) equals sigma.
    makers = (
        lambda: (add_gaussian_noise(x, sigma, generator), flat),
        lambda: (add_poisson_noise(x, 0.5 / sigma.clamp(min=1e-4) ** 2, generator),
                 (2 * _per_sample(sigma**2, x) * signal).mean(1, keepdim=True).sqrt()),
        lambda: (add_signal_dependent_noise(x, 2 * share * sigma**2, (1 - share) * sigma**2, generator),
                 (_per_sample(2 * share * sigma**2, x) * signal + _per_sample((1 - share) * sigma**2, x))
                 .mean(1, keepdim=True).sqrt()),
        lambda: (add_correlated_noise(x, sigma, spread, generator), flat),
        lambda: (add_chroma_noise(x, sigma, chroma_gain, spread, generator), flat),
    )
    y, std = x, torch.zeros_like(flat)
    for i, make in enumerate(makers):
        chosen = applied & (kind == i)
        if _needed(chosen):
            noisy, noisy_std = make()
            where = chosen.reshape(-1, 1, 1, 1)
            y, std = torch.where(where, noisy, y), torch.where(where, noisy_std.to(std.dtype), std)
    return y, sigma, std


def _random_quantize(x: Tensor, config: DegradationConfig, generator) -> Tensor:
    """Round each sample to 8 bits with probability ``quantize_prob`` (how photos are stored)."""
    applied = _rand(x.shape[0], generator, x.device) < config.quantize_prob
    if not _needed(applied):
        return x
    return torch.where(applied.reshape(-1, 1, 1, 1), (x * 255).round() / 255, x)


def _random_jpeg(x: Tensor, config: DegradationConfig, generator, active: Tensor) -> tuple[Tensor, Tensor]:
    """JPEG-compress each ``active`` sample with probability ``jpeg_prob``; returns (y, quality or 0)."""
    b, dev = x.shape[0], x.device
    applied = (_rand(b, generator, dev) < config.jpeg_prob) & active
    lo, hi = config.jpeg_quality_range
    quality = (lo + (_rand(b, generator, dev) * (hi - lo + 1)).floor()).clamp(max=hi).long() * applied
    if _needed(applied):
        x = torch.where(applied.reshape(-1, 1, 1, 1), jpeg_compress(x, quality.clamp(min=1)), x)
    return x, quality


def _one_pass(x: Tensor, config: DegradationConfig, generator, active: Tensor) -> tuple[Tensor, ...]:
    """Blur, downsample, noise, clip, 8-bit rounding, JPEG (only down-sampling where not ``active``);
    returns (y, kernel, noise sigma, per-pixel noise std, JPEG quality, down mode)."""
    kernels, blurred = _random_kernels(x.shape[0], config, generator, x, active)
    y = blur(x, kernels) if _needed(blurred) else x
    y, mode = _random_downsample(y, config, generator)
    y, sigma, std = _random_noise(y, config, generator, active)
    if config.clip:
        y = y.clamp(0, 1)
        y = _random_quantize(y, config, generator)
    y, quality = _random_jpeg(y, config, generator, active)
    return y, kernels, sigma.to(x.dtype), std.to(x.dtype), quality, mode


def _milder(config: DegradationConfig) -> DegradationConfig:
    """The second pass: half the blur and noise strength, at the same resolution."""

    def halve(bounds: tuple[float, float]) -> tuple[float, float]:
        return bounds[0], max(bounds[0], bounds[1] / 2)

    return replace(
        config,
        scale=1,
        sigma_range=halve(config.sigma_range),
        motion_length_range=halve(config.motion_length_range),
        noise_sigma_range=halve(config.noise_sigma_range),
        mild_sigma_range=halve(config.mild_sigma_range),
        second_order_prob=0.0,
        clean_prob=0.0,
    )


def degrade(
    x: Tensor, config: DegradationConfig, generator: torch.Generator | None = None
) -> DegradedBatch:
    """Synthesise a degraded batch from clean images ``x`` (B, 3, H, W) in [0, 1].

    First order: blur -> downsample by ``config.scale`` -> noise -> 8-bit rounding -> JPEG, each
    step with its own probability and per-sample parameters. Then, per sample with
    ``second_order_prob``, a milder blur -> noise -> JPEG pass at the same resolution. A share
    ``clean_prob`` of the samples is only down-sampled. The returned parameters are first-order.
    """
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected RGB images shaped (B, 3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"expected a floating-point image in [0, 1], got dtype {x.dtype}")
    h, w = x.shape[-2:]
    if h % config.scale or w % config.scale:
        raise ValueError(f"image size {h}x{w} is not divisible by scale {config.scale}")

    active = _rand(x.shape[0], generator, x.device) >= config.clean_prob
    y, kernels, sigma, std, quality, mode = _one_pass(x, config, generator, active)
    second = (_rand(x.shape[0], generator, x.device) < config.second_order_prob) & active
    if _needed(second):
        again, *_ = _one_pass(y, _milder(config), generator, active)
        y = torch.where(second.reshape(-1, 1, 1, 1), again, y)
    return DegradedBatch(y, kernels, sigma, std, quality, config.scale, second, mode)
