"""Gradient steps of the unfolding: MGDA (degradation-aware) and a plain learned step.

Both minimise ``1/2 ||W (D x - y)||^2`` for one step. MGDA estimates ``D`` at three granularities:
a separable per-channel blur ``a``/``b`` (global, from the image-level view), a learned operator pair
``Phi``/``Psi`` conditioned on the global descriptor ``d`` (holistic), and a per-pixel noise map
that sets the residual weight ``W`` (pixel).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ModelConfig
from . import operators as ops


@dataclass
class Degradation:
    """Image-level degradation estimate of one stage, shared by all tiles of that stage."""

    row: Tensor | None  # (B, 3, p) kernel a, along the width; None for the plain step
    col: Tensor | None  # (B, 3, p) kernel b, along the height
    descriptor: Tensor  # (B, latent_dim) conditions the holistic operator and the prior

    def kernel_image(self) -> Tensor | None:
        """Per-channel 2-D kernels ``b a^T``, (B, 3, p, p), or None."""
        return None if self.row is None else ops.kernel_image(self.row, self.col)


def _pool_to(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize feature maps to ``size`` by area pooling or nearest upsampling (both tile-local)."""
    if x.shape[-2:] == size:
        return x
    if x.shape[-2] > size[0]:
        return F.adaptive_avg_pool2d(x, size)
    return F.interpolate(x, size=size, mode="nearest")


class HolisticOperator(nn.Module):
    """A learned forward operator ``Phi`` (x -> y space) and its learned adjoint ``Psi`` (y -> x)."""

    def __init__(self, scale: int, width: int, cond_dim: int) -> None:
        super().__init__()
        self.scale = scale
        self.phi_in = nn.Conv2d(3, width, 3, padding=1)
        self.phi_out = nn.Conv2d(width, 3, 3, padding=1)
        self.psi_in = nn.Conv2d(3, width, 3, padding=1)
        self.psi_out = nn.Conv2d(width, 3, 3, padding=1)
        self.film = nn.Linear(cond_dim, 2 * width) if cond_dim else None
        # Psi starts at zero so an untrained step is the pure decomposed-operator gradient step.
        nn.init.zeros_(self.psi_out.weight)
        nn.init.zeros_(self.psi_out.bias)

    def _condition(self, feat: Tensor, cond: Tensor | None, which: int) -> Tensor:
        if self.film is None or cond is None:
            return feat
        scale = self.film(cond).chunk(2, dim=1)[which]
        return feat * (1 + scale[:, :, None, None])

    def phi(self, x: Tensor, cond: Tensor | None) -> Tensor:
        out = self.phi_out(F.gelu(self._condition(self.phi_in(x), cond, 0)))
        return F.avg_pool2d(out, self.scale) if self.scale > 1 else out

    def psi(self, r: Tensor, cond: Tensor | None) -> Tensor:
        if self.scale > 1:
            r = F.interpolate(r, scale_factor=self.scale, mode="nearest")
        return self.psi_out(F.gelu(self._condition(self.psi_in(r), cond, 1)))

    def _conditioned_conv(self, conv: nn.Conv2d, x: Tensor, cond: Tensor | None, which: int) -> Tensor:
        """``_condition(conv(x), cond, which)`` with the FiLM scale folded into the conv (inference)."""
        if self.film is None or cond is None:
            return conv(x)
        scale = 1 + self.film(cond).chunk(2, dim=1)[which]  # (B, width)
        weight = conv.weight * scale[:, :, None, None, None]
        bias = conv.bias * scale
        outs = [F.conv2d(x[i : i + 1], weight[i], bias[i], padding=conv.padding) for i in range(x.shape[0])]
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def infer_step(self, x: Tensor, y: Tensor, cond: Tensor | None, rho: Tensor) -> Tensor:
        """``rho * psi(phi(x) - y)`` for inference: FiLM folded into the input convs, ``rho`` into the last."""
        phi = self.phi_out(F.gelu(self._conditioned_conv(self.phi_in, x, cond, 0)))
        r = (F.avg_pool2d(phi, self.scale) if self.scale > 1 else phi).sub_(y)
        if self.scale > 1:
            r = F.interpolate(r, scale_factor=self.scale, mode="nearest")
        hidden = F.gelu(self._conditioned_conv(self.psi_in, r, cond, 1))
        return F.conv2d(hidden, self.psi_out.weight * rho, self.psi_out.bias * rho, padding=self.psi_out.padding)


class GlobalDegradationEstimator(nn.Module):
    """Reads the image-level view of ``y`` and ``x_{k-1}`` and predicts the separable kernels and descriptor."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        e, p = config.estimator_width, config.kernel_size
        self.kernel_size = p
        self.features = nn.Sequential(
            nn.Conv2d(9, e, 3, padding=1), nn.GELU(),
            nn.Conv2d(e, e, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(e, 2 * e, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(2 * e, 2 * e, 3, padding=1), nn.GELU(),
        )
        self.stage_embedding = nn.Embedding(config.stages, 4 * e)
        self.head = nn.Sequential(
            nn.Linear(4 * e, 4 * e), nn.GELU(), nn.Linear(4 * e, 6 * p + config.latent_dim)
        )
        # Start from a narrow Gaussian (sigma = 1 px) rather than a uniform box blur.
        nn.init.zeros_(self.head[-1].weight)
        taps = torch.arange(p, dtype=torch.float32) - p // 2
        with torch.no_grad():
            self.head[-1].bias.zero_()
            self.head[-1].bias[: 6 * p] = (-0.5 * taps**2).repeat(6)

    def forward(self, y_thumb: Tensor, x_thumb: Tensor, stage: int) -> Degradation:
        feat = self.features(torch.cat([y_thumb, x_thumb, x_thumb - y_thumb], dim=1))
        pooled = torch.cat([feat.mean(dim=(2, 3)), feat.std(dim=(2, 3), unbiased=False)], dim=1)
        stage_idx = torch.full((pooled.shape[0],), stage, device=pooled.device, dtype=torch.long)
        out = self.head(pooled + self.stage_embedding(stage_idx).to(pooled.dtype))
        p = self.kernel_size
        logits = out[:, : 6 * p].reshape(-1, 2, 3, p).float()
        kernels = logits.softmax(dim=-1).to(out.dtype)  # non-negative, each sums to 1
        return Degradation(row=kernels[:, 0], col=kernels[:, 1], descriptor=out[:, 6 * p :])


class NoiseMapEstimator(nn.Module):
    """Per-pixel noise level in y-space from ``y``, ``x_{k-1}`` (pooled to y-space) and memory ``h``.

    Works at half the y-space resolution (pixel-unshuffled inputs) to stay cheap at full resolution.
    """

    def __init__(self, scale: int, memory_channels: int, width: int, memory_width: int) -> None:
        super().__init__()
        self.scale = scale
        self.memory = nn.Conv2d(memory_channels, memory_width, 1)
        self.net = nn.Sequential(
            nn.Conv2d(12 + 12 + memory_width, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, 4, 3, padding=1), nn.PixelShuffle(2),
        )

    def forward(self, y: Tensor, x: Tensor, h: Tensor) -> Tensor:
        x_low = F.avg_pool2d(x, self.scale) if self.scale > 1 else x
        half = (y.shape[-2] // 2, y.shape[-1] // 2)
        mem = _pool_to(self.memory(h), half)
        if not torch.is_grad_enabled():
            return 0.25 * torch.sigmoid(self._infer_net(y, x_low, mem))
        feats = torch.cat([F.pixel_unshuffle(y, 2), F.pixel_unshuffle(x_low, 2), mem], dim=1)
        # Noise std on the [0, 1] intensity scale, at most 0.25 (about 64/255).
        return 0.25 * torch.sigmoid(self.net(feats))

    def _infer_net(self, y: Tensor, x_low: Tensor, mem: Tensor) -> Tensor:
        """``net`` on the pixel-unshuffled ``y`` and ``x_low``, with the unshuffle folded into the first
        conv: a 3x3 conv on 2x2 cells is a 6x6 stride-2 conv on pixels (same zero padding)."""
        first, _, second, shuffle = self.net
        w = first.weight
        n_img = 2 * y.shape[1] * 4  # unshuffled y and x_low channels
        w_pixels = w[:, :n_img].reshape(w.shape[0], n_img // 4, 2, 2, 3, 3).permute(0, 1, 4, 2, 5, 3)
        feats = F.conv2d(torch.cat([y, x_low], dim=1), w_pixels.reshape(w.shape[0], n_img // 4, 6, 6), first.bias,
                         stride=2, padding=2)
        feats = feats + F.conv2d(mem, w[:, n_img:], padding=1)
        return shuffle(second(F.gelu(feats)))


class MGDAStep(nn.Module):
    """Multi-granularity degradation-aware gradient step."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.scale = config.scale
        self.estimator = GlobalDegradationEstimator(config)
        self.holistic = HolisticOperator(config.scale, config.holistic_width, config.latent_dim)
        self.noise = NoiseMapEstimator(config.scale, config.memory_channels, config.noise_width,
                                       config.noise_memory_width)
        self.step_size = nn.Parameter(torch.full((config.stages,), 0.5413))  # softplus -> 1.0
        self.noise_tau = nn.Parameter(torch.tensor(-3.0))  # softplus -> ~0.05

    def estimate(self, y_thumb: Tensor, x_thumb: Tensor, stage: int) -> Degradation:
        return self.estimator(y_thumb, x_thumb, stage)

    def forward(
        self, y: Tensor, x: Tensor, h: Tensor, deg: Degradation, stage: int
    ) -> tuple[Tensor, Tensor]:
        """One step ``v = x - rho (D^T(W (D x - y)) + Psi(Phi x - y))``; returns ``(v, noise_map)``."""
        if not torch.is_grad_enabled():
            return self._infer(y, x, h, deg, stage)
        noise_map = self.noise(y, x, h)
        tau = F.softplus(self.noise_tau)
        weight = 1.0 / (1.0 + (noise_map / tau) ** 2)
        residual = ops.decomposed_forward(x, deg.row, deg.col, self.scale) - y
        grad = ops.decomposed_adjoint(weight * residual, deg.row, deg.col, self.scale, tuple(x.shape[-2:]))
        grad = grad + self.holistic.psi(self.holistic.phi(x, deg.descriptor) - y, deg.descriptor)
        return x - F.softplus(self.step_size[stage]) * grad, noise_map

    def _infer(self, y: Tensor, x: Tensor, h: Tensor, deg: Degradation, stage: int) -> tuple[Tensor, Tensor]:
        """:meth:`forward` for inference: the same step in fewer, in-place operations; ``rho`` is folded
        into the adjoint's column kernel and the last conv of ``Psi``."""
        noise_map = self.noise(y, x, h)
        rho = F.softplus(self.step_size[stage])
        t = noise_map * (1.0 / F.softplus(self.noise_tau))
        weight = torch.addcmul(torch.ones((), dtype=t.dtype, device=t.device), t, t)  # 1 / W
        residual = ops.decomposed_forward(x, deg.row, deg.col, self.scale).sub_(y).div_(weight)
        grad = ops.decomposed_adjoint(residual, deg.row, deg.col * rho, self.scale, tuple(x.shape[-2:]))
        v = x - self.holistic.infer_step(x, y, deg.descriptor, rho)
        return v.sub_(grad), noise_map

    def explain(self, x: Tensor, deg: Degradation) -> list[Tensor]:
        """The stage's estimated forward operators applied to ``x`` (for the ISDA loss)."""
        return [
            ops.decomposed_forward(x, deg.row, deg.col, self.scale),
            self.holistic.phi(x, deg.descriptor),
        ]


class PlainGradientStep(nn.Module):
    """A learned gradient step without degradation estimation (DGUNet-style): ``x - rho Psi(Phi x - y)``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.latent_dim = config.latent_dim
        self.holistic = HolisticOperator(config.scale, config.plain_step_width, 0)
        self.step_size = nn.Parameter(torch.full((config.stages,), 0.5413))
        # Unlike MGDA's Psi (which complements the decomposed step), this is the only data term.
        nn.init.normal_(self.holistic.psi_out.weight, std=1e-3)

    def estimate(self, y_thumb: Tensor, x_thumb: Tensor, stage: int) -> Degradation:
        descriptor = y_thumb.new_zeros(y_thumb.shape[0], self.latent_dim)
        return Degradation(row=None, col=None, descriptor=descriptor)

    def forward(
        self, y: Tensor, x: Tensor, h: Tensor, deg: Degradation, stage: int
    ) -> tuple[Tensor, None]:
        grad = self.holistic.psi(self.holistic.phi(x, None) - y, None)
        return x - F.softplus(self.step_size[stage]) * grad, None

    def explain(self, x: Tensor, deg: Degradation) -> list[Tensor]:
        return [self.holistic.phi(x, None)]
