"""DR-LDM: a compact latent diffusion prior (N tokens x C_z), robust to the degradation.

Phase 1 trains a teacher encoder that sees the ground truth: ``z_T = E_T(x_gt, v_k)``. Phase 2
trains a condition encoder ``c = E_S(v_k, d_k)`` and a token denoiser that runs a short,
x0-parameterised DDIM reverse chain from Gaussian noise to ``z_hat``; it learns to match ``z_T``
with gradients through the whole chain. All inputs are the image-level view, so the prior is image-level.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor, nn

from ..config import ModelConfig
from .blocks import sinusoidal_embedding


def alphas_cumprod(train_timesteps: int) -> Tensor:
    """The cumulative noise schedule ``alpha_bar_t`` (float32) of the squared-cosine beta schedule
    (Nichol & Dhariwal 2021, betas capped at 0.999), the ``squaredcos_cap_v2`` schedule of diffusers."""

    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    n = train_timesteps
    betas = [min(1 - alpha_bar((i + 1) / n) / alpha_bar(i / n), 0.999) for i in range(n)]
    return torch.cumprod(1.0 - torch.tensor(betas, dtype=torch.float32, device="cpu"), dim=0)


@functools.lru_cache(maxsize=8)
def ddim_schedule(train_timesteps: int, steps: int) -> tuple[tuple[int, float, float], ...]:
    """``(t, c0, ct)`` for each step of a deterministic DDIM reverse chain (eta 0, z_0 prediction) of
    ``steps`` steps, evenly spaced from t = 0 ("leading" spacing), so that a step is
    ``z_prev = c0 * z_0 + ct * z_t``; the last step goes to alpha_bar = 1.

    Plain Python numbers, so the chain has no CPU tensors or Python objects in it, which keeps the
    forward pass traceable by ``torch.compile`` and capturable in a CUDA graph. Inference needs no
    diffusion library; a test checks the update against diffusers' ``DDIMScheduler.step``.
    """
    alphas = alphas_cumprod(train_timesteps).double()
    ratio = train_timesteps // steps
    out = []
    for t in (i * ratio for i in reversed(range(steps))):
        prev = t - ratio
        a_t = float(alphas[t])
        a_prev = float(alphas[prev]) if prev >= 0 else 1.0
        # eps = (z_t - sqrt(a_t) z_0) / sqrt(1 - a_t);  z_prev = sqrt(a_prev) z_0 + sqrt(1 - a_prev) eps
        ct = math.sqrt(1 - a_prev) / math.sqrt(1 - a_t)
        out.append((t, math.sqrt(a_prev) - ct * math.sqrt(a_t), ct))
    return tuple(out)


class ThumbnailTokenizer(nn.Module):
    """Encodes a stack of image-level views into N tokens of width C_z (pooled to a fixed token grid)."""

    def __init__(self, in_channels: int, width: int, tokens: int, latent_dim: int, stages: int) -> None:
        super().__init__()
        self.grid = (tokens // 4, 4) if tokens % 4 == 0 else (1, tokens)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.GELU(),
        )
        self.to_tokens = nn.Linear(2 * width, latent_dim)
        self.position = nn.Parameter(torch.zeros(tokens, latent_dim))
        self.stage_embedding = nn.Embedding(stages, latent_dim)
        self.mix = nn.Sequential(nn.LayerNorm(latent_dim), nn.Linear(latent_dim, latent_dim), nn.GELU(),
                                 nn.Linear(latent_dim, latent_dim))

    def forward(self, images: Tensor, stage: int, extra: Tensor | None = None) -> Tensor:
        feat = nn.functional.adaptive_avg_pool2d(self.features(images), self.grid)
        tokens = self.to_tokens(feat.flatten(2).transpose(1, 2)) + self.position
        stage_idx = torch.full((images.shape[0],), stage, device=images.device, dtype=torch.long)
        tokens = tokens + self.stage_embedding(stage_idx)[:, None]
        if extra is not None:
            tokens = tokens + extra[:, None]
        return tokens + self.mix(tokens)


class TokenDenoiser(nn.Module):
    """Predicts ``z_0`` from a noisy latent ``z_t``, the timestep and the condition tokens."""

    def __init__(self, latent_dim: int, depth: int, stages: int, heads: int, ffn_expansion: float) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.time_mlp = nn.Sequential(nn.Linear(latent_dim, latent_dim), nn.GELU(), nn.Linear(latent_dim, latent_dim))
        self.stage_embedding = nn.Embedding(stages, latent_dim)
        self.inp = nn.Linear(2 * latent_dim, latent_dim)
        layer = nn.TransformerEncoderLayer(
            latent_dim, nhead=heads, dim_feedforward=int(ffn_expansion * latent_dim), dropout=0.0, batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.out = nn.Sequential(nn.LayerNorm(latent_dim), nn.Linear(latent_dim, latent_dim))

    def forward(self, z_t: Tensor, t: Tensor, cond: Tensor, stage: int) -> Tensor:
        stage_idx = torch.full((z_t.shape[0],), stage, device=z_t.device, dtype=torch.long)
        emb = self.time_mlp(sinusoidal_embedding(t, self.latent_dim).to(z_t.dtype)) + self.stage_embedding(stage_idx)
        h = self.inp(torch.cat([z_t, cond], dim=-1)) + emb[:, None]
        return self.out(self.blocks(h))


class DRLDMPrior(nn.Module):
    """Teacher encoder, student condition encoder and token denoiser with a short DDIM chain."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.tokens = config.latent_tokens
        self.latent_dim = config.latent_dim
        self.train_timesteps = config.train_timesteps
        self.default_steps = config.diffusion_steps
        w = config.estimator_width
        self.teacher = ThumbnailTokenizer(6, w, config.latent_tokens, config.latent_dim, config.stages)
        self.condition = ThumbnailTokenizer(3, w, config.latent_tokens, config.latent_dim, config.stages)
        self.descriptor_proj = nn.Linear(config.latent_dim, config.latent_dim)
        self.denoiser = TokenDenoiser(config.latent_dim, config.denoiser_depth, config.stages, config.denoiser_heads,
                                      config.denoiser_ffn_expansion)
        self.default_schedule = ddim_schedule(self.train_timesteps, self.default_steps)

    def teacher_latent(self, gt_thumb: Tensor, v_thumb: Tensor, stage: int) -> Tensor:
        """Phase 1: ``z_T = E_T(x_gt, v_k)``. The teacher never sees the degradation descriptor."""
        return self.teacher(torch.cat([gt_thumb, v_thumb], dim=1), stage)

    def sample(
        self, v_thumb: Tensor, descriptor: Tensor, stage: int, noise: Tensor, steps: int | None = None
    ) -> Tensor:
        """Phase 2 / inference: reverse diffusion from ``noise`` (B, N, C_z) to ``z_hat``; differentiable."""
        cond = self.condition(v_thumb, stage, extra=self.descriptor_proj(descriptor))
        schedule = self.default_schedule if steps in (None, self.default_steps) else ddim_schedule(
            self.train_timesteps, steps)
        z_t, z0 = noise, noise
        for t, c0, ct in schedule:
            t_batch = torch.full((noise.shape[0],), t, device=noise.device)
            z0 = self.denoiser(z_t, t_batch, cond, stage)
            z_t = c0 * z0 + ct * z_t
        return z0
