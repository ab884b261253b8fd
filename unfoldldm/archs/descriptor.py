"""What a loaded model says about itself, so pipelines and front ends need no knowledge of its insides.

:meth:`UnfoldLDM.describe` returns a :class:`ModelDescriptor`: the task and scale, the sizes inputs
are padded to, which tensors of a stage are image-level (computed once per image from its centre window)
and which are local (computed tile by tile) at which resolution, and the default restoration
settings every front end starts from.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import ModelConfig
from ..options import DEFAULT_OVERLAP, DEFAULT_TILE, MAX_PIXELS

# The proximal network works on the Haar bands (1/2) and goes down three more halvings (1/16):
# output sides are padded to this multiple.
OUTPUT_MULTIPLE = 16
IMAGE, LOCAL = "image", "local"


@dataclass(frozen=True)
class TensorSpec:
    """One tensor that flows through a stage."""

    name: str
    level: str  # IMAGE (one per image and stage) or LOCAL (computed tile by tile)
    side: float  # its side relative to the output image's (1 = full output resolution)
    meaning: str


@dataclass(frozen=True)
class RestoreDefaults:
    """The settings a restoration starts from when the user changes nothing."""

    stages: int
    prior_steps: int
    seed: int = 0
    prior_strength: float = 1.0
    tile: int = DEFAULT_TILE
    overlap: int = DEFAULT_OVERLAP
    max_pixels: int = MAX_PIXELS


@dataclass(frozen=True)
class ModelDescriptor:
    """A model's account of itself (see the module docstring)."""

    task: str
    scale: int
    stages: int
    parts: dict[str, str]  # kind -> name: gradient, prior, proximal
    output_multiple: int  # the restored image is computed on sides padded to this multiple
    input_multiple: int  # the observation's sides are padded to this multiple
    thumb_size: int  # image-level parts see the image's centre window, at most this side
    kernel_size: int  # side of the estimated blur kernel
    tensors: dict[str, TensorSpec]
    defaults: RestoreDefaults

    def side(self, name: str) -> float:
        """The resolution of tensor ``name`` relative to the output image."""
        return self.tensors[name].side

    def local(self) -> list[str]:
        """Names of the tensors computed tile by tile."""
        return [n for n, t in self.tensors.items() if t.level == LOCAL]


def describe(config: ModelConfig) -> ModelDescriptor:
    """The descriptor of a model built from ``config``."""
    s = config.scale
    specs = [
        TensorSpec("y", LOCAL, 1 / s, "the observation (input image), padded"),
        TensorSpec("x", LOCAL, 1.0, "the current estimate x_k (the stage's output image)"),
        TensorSpec("h", LOCAL, 0.5, "the feature memory passed between stages"),
        TensorSpec("v", LOCAL, 1.0, "the gradient step's result v_k"),
        TensorSpec("noise_map", LOCAL, 1 / s, "MGDA's per-pixel noise std"),
        TensorSpec("kernel", IMAGE, 0.0, "MGDA's separable blur kernels and degradation descriptor"),
        TensorSpec("latent", IMAGE, 0.0, "the DR-LDM prior tokens"),
    ]
    return ModelDescriptor(
        task=config.task,
        scale=s,
        stages=config.stages,
        parts={"gradient": config.gradient, "prior": config.prior, "proximal": config.proximal},
        output_multiple=OUTPUT_MULTIPLE,
        input_multiple=OUTPUT_MULTIPLE // s,
        thumb_size=config.thumb_size,
        kernel_size=config.kernel_size,
        tensors={t.name: t for t in specs},
        defaults=RestoreDefaults(stages=config.stages, prior_steps=config.diffusion_steps),
    )
