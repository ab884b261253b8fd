"""Model configuration: one dataclass, three presets, stored as JSON in every checkpoint."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from .errors import CheckpointError

TASK_SCALES = {"restore": 1, "sr2x": 2, "sr4x": 4}
GRADIENT_STEPS = ("mgda", "plain")
PRIORS = ("drldm", "none")
PROXIMALS = ("ocformer", "unet")


@dataclass
class ModelConfig:
    """Everything needed to build an UnfoldLDM network.

    The stage is assembled from three named parts (``gradient``, ``prior``, ``proximal``), so the
    full model, its ablations and a plain deep-unfolding design all come from the same code.
    """

    name: str = "small"
    task: str = "restore"  # restore | sr2x | sr4x
    stages: int = 3
    gradient: str = "mgda"  # mgda | plain
    prior: str = "drldm"  # drldm | none
    proximal: str = "ocformer"  # ocformer | unet
    width: int = 32  # channels at the first (half-resolution) level of the proximal network
    blocks: tuple[int, int, int] = (1, 1, 2)  # blocks per level of the U-shape
    heads: tuple[int, int, int] = (1, 2, 4)
    ffn_expansion: float = 2.0
    memory_channels: int = 16  # inter-stage feature memory h
    kernel_size: int = 21  # length of the separable kernels a, b
    estimator_width: int = 32
    thumb_size: int = 128  # image-level quantities are computed from a thumbnail this big at most
    latent_tokens: int = 16
    latent_dim: int = 64
    denoiser_depth: int = 2
    diffusion_steps: int = 4  # default reverse steps at inference
    train_timesteps: int = 1000

    @property
    def scale(self) -> int:
        return TASK_SCALES[self.task]

    def validate(self) -> "ModelConfig":
        problems = []
        if self.task not in TASK_SCALES:
            problems.append(f"task {self.task!r} is not one of {sorted(TASK_SCALES)}")
        if not 1 <= self.stages <= 8:
            problems.append(f"stages={self.stages} must be between 1 and 8")
        for key, allowed in (("gradient", GRADIENT_STEPS), ("prior", PRIORS), ("proximal", PROXIMALS)):
            if getattr(self, key) not in allowed:
                problems.append(f"{key}={getattr(self, key)!r} is not one of {allowed}")
        if self.kernel_size % 2 == 0 or self.kernel_size < 3:
            problems.append(f"kernel_size={self.kernel_size} must be odd and at least 3")
        if len(self.blocks) != 3 or len(self.heads) != 3:
            problems.append("blocks and heads need one entry per level (3 levels)")
        if self.width % 4 or any((self.width * 2**i) % h for i, h in enumerate(self.heads)):
            problems.append(f"width={self.width} must be a multiple of 4 and divisible by the heads")
        if problems:
            raise CheckpointError("Invalid model config: " + "; ".join(problems) + ".")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CheckpointError(
                f"Model config has unknown fields {unknown}; it was written by a newer UnfoldLDM. "
                "Upgrade the package to load it."
            )
        values = dict(data)
        for key in ("blocks", "heads"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values).validate()

    def replace(self, **changes: Any) -> "ModelConfig":
        return dataclasses.replace(self, **changes).validate()


PRESETS: dict[str, ModelConfig] = {
    "nano": ModelConfig(
        name="nano", stages=2, width=16, blocks=(1, 1, 1), heads=(1, 1, 2), memory_channels=8,
        kernel_size=11, estimator_width=16, thumb_size=64, latent_tokens=8, latent_dim=32,
        denoiser_depth=1,
    ),
    "small": ModelConfig(name="small"),
    "base": ModelConfig(
        name="base", stages=4, width=48, blocks=(2, 3, 4), heads=(1, 2, 4), memory_channels=24,
        estimator_width=48, thumb_size=192, latent_tokens=16, latent_dim=96, denoiser_depth=4,
    ),
}


def preset(name: str, **changes: Any) -> ModelConfig:
    """Return a copy of the named preset (``nano``, ``small``, ``base``) with ``changes`` applied."""
    if name not in PRESETS:
        raise CheckpointError(f"Unknown model preset {name!r}; choose one of {sorted(PRESETS)}.")
    return PRESETS[name].replace(**changes)
