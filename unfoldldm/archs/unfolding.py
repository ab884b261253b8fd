"""The unfolding framework: K stages, each assembled from a gradient step, a prior and a proximal net.

Every stage is split into four calls so that front ends (and the tiled pipeline) can run them one
at a time: ``estimate_degradation`` and ``prior_latent`` are image-level (computed from the centre window,
shared by every tile), ``gradient_update`` and ``refine`` are local (safe to run tile by tile).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ModelConfig
from ..parts import build_part
from .blocks import centre_window, haar_dwt
from .descriptor import ModelDescriptor, describe
from .mgda import Degradation

PRIOR_MODES = ("student", "teacher", "distill")


@dataclass
class StageState:
    """What flows between stages (and between the per-part ComfyUI nodes).

    ``y``, ``x``, ``h`` are padded to the model's size multiple; ``out_size`` is the true output size.
    """

    y: Tensor
    x: Tensor
    h: Tensor
    out_size: tuple[int, int]
    stage: int = 0  # stages completed
    degradation: Degradation | None = None
    v: Tensor | None = None
    noise_map: Tensor | None = None
    latent: Tensor | None = None

    def image(self) -> Tensor:
        """The current estimate, cropped to the output size."""
        return self.x[..., : self.out_size[0], : self.out_size[1]]


@dataclass
class UnfoldOutput:
    """Result of :meth:`UnfoldLDM.forward`: per-stage images and what the model estimated."""

    images: list[Tensor] = field(default_factory=list)
    degradations: list[Degradation] = field(default_factory=list)
    noise_maps: list[Tensor | None] = field(default_factory=list)
    latents: list[Tensor] = field(default_factory=list)  # the latent that drove each stage
    teacher_latents: list[Tensor] = field(default_factory=list)
    explanations: list[list[Tensor]] = field(default_factory=list)  # D_hat_k(x_gt), for ISDA


class UnfoldLDM(nn.Module):
    """Deep unfolding network with MGDA gradient steps, a DR-LDM prior and OCFormer proximal steps."""

    def __init__(self, config: ModelConfig, check: bool = True) -> None:
        """``check=False`` skips the config check (only for counting parameters on the meta device)."""
        super().__init__()
        self.config = config.validate() if check else config
        self.scale = config.scale
        self.gradient_step = build_part("gradient", config.gradient, config)
        self.prior = build_part("prior", config.prior, config)
        self.proximal = build_part("proximal", config.proximal, config)
        self.memory_init = nn.Conv2d(12, config.memory_channels, 1)
        # Stands in for the prior when strength is 0 or the model has no prior.
        self.null_latent = nn.Parameter(torch.zeros(config.latent_tokens, config.latent_dim))

    def describe(self) -> ModelDescriptor:
        """Task, scale, padding, the image-level and local tensors, and the default settings."""
        return describe(self.config)

    # ----- geometry -------------------------------------------------------------------------
    @property
    def size_multiple(self) -> int:
        """Observations are padded so that their output-space sides are multiples of the descriptor's."""
        return describe(self.config).input_multiple

    def pad_observation(self, y: Tensor) -> Tensor:
        m = self.size_multiple
        ph, pw = (-y.shape[-2]) % m, (-y.shape[-1]) % m
        return F.pad(y, (0, pw, 0, ph), mode="replicate") if ph or pw else y

    def prepare(self, y: Tensor) -> StageState:
        """Pad the observation and build ``x_0`` (bicubic upsampling of ``y``) and ``h_0``."""
        out_size = (y.shape[-2] * self.scale, y.shape[-1] * self.scale)
        y = self.pad_observation(y)
        x0 = y if self.scale == 1 else F.interpolate(y, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return StageState(y=y, x=x0, h=self.memory_init(haar_dwt(x0)), out_size=out_size)

    def _image_level_view(self, y: Tensor, *others: Tensor) -> list[Tensor]:
        """The image-level view: the centre window of ``y`` at its own resolution (at most
        ``thumb_size`` on a side), and the same region of each output-space tensor, shrunk to the
        window's size. Native resolution, not a shrunken whole image: training sees crops no larger
        than the window, and a shrunken photo hides its blur from the kernel estimate."""
        top, left, h, w = centre_window(y, self.config.thumb_size)
        y_t = y[..., top:top + h, left:left + w]
        s = self.scale
        regions = [o[..., s * top:s * (top + h), s * left:s * (left + w)] for o in others]
        return [y_t] + [F.avg_pool2d(r, s) if s > 1 else r for r in regions]

    # ----- stage parts ----------------------------------------------------------------------
    def estimate_degradation(self, y: Tensor, x: Tensor, stage: int) -> Degradation:
        """Image-level MGDA estimate (kernels, descriptor) from the image-level view of ``y`` and ``x_{k-1}``."""
        y_t, x_t = self._image_level_view(y, x)
        return self.gradient_step.estimate(y_t, x_t, stage)

    def gradient_update(
        self, y: Tensor, x: Tensor, h: Tensor, deg: Degradation, stage: int
    ) -> tuple[Tensor, Tensor | None]:
        """Local gradient step: ``(v_k, noise_map_k)``."""
        return self.gradient_step(y, x, h, deg, stage)

    def prior_noise(self, batch: int, seed: int, stage: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        """Starting noise of the reverse diffusion; drawn on the CPU so every device gets the same."""
        gen = torch.Generator().manual_seed(int(seed) * 7919 + stage)
        shape = (batch, self.config.latent_tokens, self.config.latent_dim)
        return torch.randn(shape, generator=gen).to(device=device, dtype=dtype)

    def prior_latent(
        self,
        y: Tensor,
        v: Tensor,
        deg: Degradation,
        stage: int,
        *,
        seed: int = 0,
        steps: int | None = None,
        strength: float = 1.0,
        noise: Tensor | None = None,
    ) -> Tensor:
        """Image-level DR-LDM latent (student, from noise), blended with the null latent by ``strength``."""
        null = self.null_latent.expand(v.shape[0], -1, -1)
        if self.prior is None:
            return null
        y_t, v_t = self._image_level_view(y, v)
        if noise is None:
            noise = self.prior_noise(v.shape[0], seed, stage, v.device, v.dtype)
        z = self.prior.sample(v_t, deg.descriptor, stage, noise, steps)
        return z if strength == 1.0 else null + strength * (z - null)

    def teacher_latent(self, y: Tensor, v: Tensor, x_gt: Tensor, stage: int) -> Tensor:
        """Phase-1 latent from the ground truth (training only)."""
        if self.prior is None:
            return self.null_latent.expand(v.shape[0], -1, -1)
        y_t, v_t, gt_t = self._image_level_view(y, v, x_gt)
        return self.prior.teacher_latent(gt_t, v_t, stage)

    def refine(self, v: Tensor, h: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """Local proximal step: ``(x_k, h_k)``."""
        return self.proximal(v, h, z)

    # ----- whole model ----------------------------------------------------------------------
    def forward(
        self,
        y: Tensor,
        x_gt: Tensor | None = None,
        *,
        stages: int | None = None,
        prior_mode: str = "student",
        steps: int | None = None,
        seed: int = 0,
        strength: float = 1.0,
        noise: list[Tensor] | None = None,
    ) -> UnfoldOutput:
        """Run ``stages`` stages (default all) on ``y`` (B, 3, h, w) in [0, 1], untiled.

        ``prior_mode``: ``student`` (inference, phase 2), ``teacher`` (phase 1, needs ``x_gt``),
        ``distill`` (student drives, teacher latents returned as targets). ``noise`` overrides the
        seeded starting noise per stage (training draws its own).
        """
        if prior_mode not in PRIOR_MODES:
            raise ValueError(f"prior_mode must be one of {PRIOR_MODES}, got {prior_mode!r}")
        if prior_mode != "student" and x_gt is None:
            raise ValueError(f"prior_mode={prior_mode!r} needs the ground truth x_gt")
        n_stages = self.config.stages if stages is None else stages
        state = self.prepare(y)
        gt = None if x_gt is None else self._pad_like(x_gt, state.x)
        out = UnfoldOutput()
        for k in range(n_stages):
            deg = self.estimate_degradation(state.y, state.x, k)
            v, noise_map = self.gradient_update(state.y, state.x, state.h, deg, k)
            teacher = None
            if prior_mode in ("teacher", "distill"):
                teacher = self.teacher_latent(state.y, v, gt, k)
                if prior_mode == "distill":
                    teacher = teacher.detach()
                out.teacher_latents.append(teacher)
            if prior_mode == "teacher":
                z = teacher
            else:
                z = self.prior_latent(
                    state.y, v, deg, k, seed=seed, steps=steps, strength=strength,
                    noise=None if noise is None else noise[k],
                )
            state.x, state.h = self.refine(v, state.h, z)
            out.images.append(state.image())
            out.degradations.append(deg)
            out.noise_maps.append(noise_map)
            out.latents.append(z)
            if gt is not None:
                out.explanations.append(self.gradient_step.explain(gt, deg))
        return out

    @staticmethod
    def _pad_like(x_gt: Tensor, ref: Tensor) -> Tensor:
        ph, pw = ref.shape[-2] - x_gt.shape[-2], ref.shape[-1] - x_gt.shape[-1]
        if ph < 0 or pw < 0:
            raise ValueError(f"x_gt {tuple(x_gt.shape)} is larger than scale * y {tuple(ref.shape)}")
        return F.pad(x_gt, (0, pw, 0, ph), mode="replicate") if ph or pw else x_gt
