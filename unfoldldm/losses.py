"""Training losses of UnfoldLDM. Each returns a scalar tensor."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .archs import Degradation, UnfoldOutput
from .archs.blocks import haar_dwt


def charbonnier(pred: Tensor, target: Tensor, eps: float = 1e-3) -> Tensor:
    """Smooth L1-like reconstruction loss ``mean(sqrt((p - t)^2 + eps^2))``."""
    return torch.sqrt((pred - target) ** 2 + eps * eps).mean()


def deep_supervision(images: list[Tensor], target: Tensor, eps: float = 1e-3) -> Tensor:
    """Charbonnier on every stage output (anytime restoration), later stages weighted more."""
    n = len(images)
    weights = [0.5 + 0.5 * i / (n - 1) for i in range(n)] if n > 1 else [1.0]
    return sum(w * charbonnier(img, target, eps) for w, img in zip(weights, images)) / sum(weights)


def frequency_loss(pred: Tensor, target: Tensor) -> Tensor:
    """L1 distance of the 2-D Fourier spectra (complex difference), so textures are not averaged away."""
    diff = torch.fft.rfft2(pred.float(), norm="ortho") - torch.fft.rfft2(target.float(), norm="ortho")
    return diff.abs().mean()


def band_loss(pred: Tensor, target: Tensor, high_weight: float = 2.0) -> Tensor:
    """L1 on the Haar bands, the three high-frequency bands weighted by ``high_weight``."""
    diff = (haar_dwt(pred) - haar_dwt(target)).abs()
    low, high = diff[:, : pred.shape[1]], diff[:, pred.shape[1] :]
    return (low.mean() + high_weight * high.mean()) / (1 + high_weight)


def isda_loss(explanations: list[list[Tensor]], y: Tensor) -> Tensor:
    """Intra-stage degradation-aware consistency: each stage's estimated operators must explain ``y``."""
    terms = [(d - y).abs().mean() for stage in explanations for d in stage]
    return sum(terms) / len(terms)


def kernel_loss(degradations: list[Degradation], target: Tensor, known: Tensor) -> Tensor:
    """Supervision of the MGDA kernel estimate: the sum of absolute differences between each stage's
    2-D kernel (mean over channels) and the true one, averaged over the samples where the true
    operator is known (``known``, (B,) bool) and over stages. ``target`` (B, p, p) is the kernel the
    degradation convolved with; the model correlates, so the target is flipped. A target of another
    size than the model's kernels is centre-cropped or zero-padded to it and renormalised."""
    target = target.flip(-2, -1).float()
    size = degradations[0].row.shape[-1]
    if target.shape[-1] != size:
        pad = (size - target.shape[-1]) // 2  # negative: crop
        target = F.pad(target, (pad, pad, pad, pad))
        target = target / target.sum(dim=(-2, -1), keepdim=True).clamp(min=1e-12)
    weight = known.float()
    terms = []
    for deg in degradations:
        estimate = deg.kernel_image().float().mean(dim=1)  # (B, p, p)
        error = (estimate - target).abs().sum(dim=(-2, -1))
        terms.append((error * weight).sum() / weight.sum().clamp(min=1.0))
    return sum(terms) / len(terms)


def noise_map_loss(noise_maps: list[Tensor | None], target: Tensor, known: Tensor) -> Tensor:
    """Supervision of the MGDA noise map: L1 between each stage's map (B, 1, h, w) and the per-pixel
    noise std the degradation added (``target``, same shape), over the samples where that is the
    whole noise (``known``, (B,) bool), averaged over stages. The map is what users read as the
    model's diagnosis, so it must track the true noise level, zero included."""
    weight = known.to(target.dtype).reshape(-1, 1, 1, 1)
    terms = [((m.float() - target.float()).abs() * weight).mean((1, 2, 3)).sum() / weight.sum().clamp(min=1.0)
             for m in noise_maps if m is not None]
    return sum(terms) / len(terms) if terms else target.new_zeros(())


def kd_loss(student: list[Tensor], teacher: list[Tensor]) -> Tensor:
    """Phase 2: the diffusion prior's latent must match the (frozen) teacher's latent."""
    return sum((s - t.detach()).abs().mean() for s, t in zip(student, teacher)) / len(student)


def invariance_loss(latents_a: list[Tensor], latents_b: list[Tensor]) -> Tensor:
    """Phase 2: two degradations of one clean image must give the same prior."""
    return sum((a - b).abs().mean() for a, b in zip(latents_a, latents_b)) / len(latents_a)


@dataclass
class LossWeights:
    """Weights of the loss terms (set from the training config)."""

    pixel: float = 1.0
    frequency: float = 0.05
    band: float = 0.5
    isda: float = 0.1
    kd: float = 1.0
    invariance: float = 0.1
    kernel: float = 0.0  # supervised MGDA kernel estimate (on synthetic data the true kernel is known)
    noise: float = 0.0  # supervised MGDA noise map (the per-pixel noise std of the synthetic degradation)


def restoration_loss(out: UnfoldOutput, target: Tensor, y: Tensor, w: LossWeights,
                     kernels: Tensor | None = None, known: Tensor | None = None,
                     noise_std: Tensor | None = None, noise_known: Tensor | None = None) -> dict[str, Tensor]:
    """The reconstruction part shared by both phases: pixel, frequency, band and ISDA terms; the
    kernel term when ``w.kernel`` is set and the true ``kernels`` (B, p, p) and their ``known`` mask
    are given; the noise-map term when ``w.noise`` is set and the true per-pixel ``noise_std``
    (B, 1, h, w) and its ``noise_known`` mask are given."""
    final = out.images[-1]
    terms = {
        "pixel": deep_supervision(out.images, target),
        "frequency": frequency_loss(final, target),
        "band": band_loss(final, target),
    }
    if out.explanations:
        terms["isda"] = isda_loss(out.explanations, y)
    if w.kernel and kernels is not None and out.degradations and out.degradations[0].row is not None:
        terms["kernel"] = kernel_loss(out.degradations, kernels, known)
    if w.noise and noise_std is not None and any(m is not None for m in out.noise_maps):
        terms["noise"] = noise_map_loss(out.noise_maps, noise_std, noise_known)
    terms["total"] = sum(getattr(w, k) * v for k, v in terms.items())
    return terms
