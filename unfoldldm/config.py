"""Model configuration: one dataclass, three presets, stored as JSON in every checkpoint.

A checkpoint's config is read from a file someone else may have written, so every field is
checked (type, range, and how the fields fit together) and the size of the network it describes
is estimated from the numbers alone, before any module is built: a bad or hostile file is refused
with a message instead of taking the host's memory or time (see :data:`FIELD_RULES`,
:func:`estimate_parameters` and :func:`estimate_memory_bytes`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from dataclasses import dataclass
from typing import Any

from .errors import CheckpointError
from .options import MAX_PRIOR_STEPS, MAX_STAGES
from .parts import part_names

TASK_SCALES = {"restore": 1, "sr2x": 2, "sr4x": 4}
GRADIENT_STEPS = part_names("gradient")
PRIORS = part_names("prior")
PROXIMALS = part_names("proximal")

# Refuse configs whose network would be larger than this (the `base` preset has 4.15M parameters)...
MAX_PARAMETERS = 250_000_000
# ...or whose weights and image-level work would need more memory than this to load and run.
MAX_MODEL_MEMORY_BYTES = 6 * 2**30


@dataclass(frozen=True)
class FieldRule:
    """What one config field may hold.

    kind      "int", "float", "str", "choice" or "ints" (a list of ``length`` ints)
    low/high  inclusive range of the value (of each entry for "ints"; of the length for "str")
    """

    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    length: int = 0  # "ints": how many entries
    multiple_of: int = 1
    odd: bool = False


# One row per ModelConfig field. A new field needs a row here (a test checks that every field has one).
FIELD_RULES: dict[str, FieldRule] = {
    "name": FieldRule("str", 1, 64),
    "task": FieldRule("choice", choices=tuple(TASK_SCALES)),
    "stages": FieldRule("int", 1, MAX_STAGES),
    "gradient": FieldRule("choice", choices=GRADIENT_STEPS),
    "prior": FieldRule("choice", choices=PRIORS),
    "proximal": FieldRule("choice", choices=PROXIMALS),
    "width": FieldRule("int", 4, 512, multiple_of=4),
    "blocks": FieldRule("ints", 0, 32, length=3),
    "heads": FieldRule("ints", 1, 64, length=3),
    "ffn_expansion": FieldRule("float", 0.25, 16.0),
    "memory_channels": FieldRule("int", 1, 512),
    "kernel_size": FieldRule("int", 3, 101, odd=True),
    "estimator_width": FieldRule("int", 1, 1024),
    "thumb_size": FieldRule("int", 16, 1024),
    "latent_tokens": FieldRule("int", 1, 256),
    "latent_dim": FieldRule("int", 4, 2048),
    "denoiser_depth": FieldRule("int", 1, 32),
    "denoiser_heads": FieldRule("int", 1, 64),
    "denoiser_ffn_expansion": FieldRule("float", 0.25, 16.0),
    "holistic_width": FieldRule("int", 1, 256),
    "plain_step_width": FieldRule("int", 1, 256),
    "noise_width": FieldRule("int", 1, 256),
    "noise_memory_width": FieldRule("int", 1, 256),
    "diffusion_steps": FieldRule("int", 1, MAX_PRIOR_STEPS),
    "train_timesteps": FieldRule("int", 1, 100_000),
}


def _describe(rule: FieldRule) -> str:
    if rule.kind == "choice":
        return f"one of {list(rule.choices)}"
    if rule.kind == "str":
        return f"a text of {rule.low:g} to {rule.high:g} characters"
    number = "a whole number" if rule.kind in ("int", "ints") else "a number"
    text = f"{number} from {rule.low:g} to {rule.high:g}"
    if rule.multiple_of > 1:
        text += f", a multiple of {rule.multiple_of}"
    if rule.odd:
        text += ", odd"
    if rule.kind == "ints":
        text = f"a list of {rule.length} entries, each {text}"
    return text


def _check_number(value: Any, rule: FieldRule, whole: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if whole and not isinstance(value, int):
        return False
    if not math.isfinite(value) or not rule.low <= value <= rule.high:
        return False
    if whole and (value % rule.multiple_of or (rule.odd and value % 2 == 0)):
        return False
    return True


def check_field(name: str, value: Any) -> str | None:
    """The problem with one field's value (``None`` if it is fine), by :data:`FIELD_RULES`."""
    rule = FIELD_RULES[name]
    if rule.kind == "choice":
        ok = isinstance(value, str) and value in rule.choices
    elif rule.kind == "str":
        ok = isinstance(value, str) and rule.low <= len(value) <= rule.high
    elif rule.kind == "ints":
        ok = (isinstance(value, (list, tuple)) and len(value) == rule.length
              and all(_check_number(v, rule, True) for v in value))
    else:
        ok = _check_number(value, rule, rule.kind == "int")
    if ok:
        return None
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    return f"{name}={shown} must be {_describe(rule)}"


@functools.lru_cache(maxsize=64)
def _parameter_count(config_json: str) -> int:
    import torch

    from .archs.unfolding import UnfoldLDM

    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(config_json).items()}
    with torch.device("meta"):  # shapes only: nothing is allocated, even for a huge config
        model = UnfoldLDM(ModelConfig(**fields), check=False)
    return sum(p.numel() for p in model.parameters())


def estimate_parameters(config: "ModelConfig") -> int:
    """Parameters of the network ``config`` describes, counted on PyTorch's meta device (no memory
    is allocated). The fields must have passed :data:`FIELD_RULES`, which bound the build time."""
    return _parameter_count(config.to_json())


def estimate_memory_bytes(config: "ModelConfig") -> int:
    """Memory to load and run the model, from the config alone: the fp32 weights twice (the file's
    tensors and the module's), and the image-level work on one window (about six feature maps of
    ``estimator_width`` channels, and the proximal network's widest level at a quarter of it)."""
    thumb = config.thumb_size**2
    work = 4 * thumb * (9 + 6 * config.estimator_width + 4 * config.width)
    return 8 * estimate_parameters(config) + work


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
    thumb_size: int = 128  # image-level quantities are computed from a centre window this big at most
    latent_tokens: int = 16
    latent_dim: int = 64
    denoiser_depth: int = 2
    denoiser_heads: int = 4  # attention heads of the prior's token denoiser (divide latent_dim)
    denoiser_ffn_expansion: float = 2.0  # its feed-forward width, in multiples of latent_dim
    holistic_width: int = 8  # channels of MGDA's learned operator pair Phi / Psi
    plain_step_width: int = 16  # channels of the plain gradient step's Phi / Psi
    noise_width: int = 16  # channels of MGDA's noise-map estimator
    noise_memory_width: int = 8  # channels it reads from the feature memory h
    diffusion_steps: int = 4  # default reverse steps at inference
    train_timesteps: int = 1000

    @property
    def scale(self) -> int:
        return TASK_SCALES[self.task]

    def problems(self) -> list[str]:
        """Everything wrong with this config (empty if it is usable), cheapest checks first."""
        found = [p for p in (check_field(f.name, getattr(self, f.name)) for f in dataclasses.fields(self)) if p]
        if found:
            return found  # the checks below assume well-typed fields in range
        if any((self.width * 2**i) % h for i, h in enumerate(self.heads)):
            found.append(f"width={self.width} must be divisible by the heads {list(self.heads)} at every level "
                         "(width, 2*width, 4*width)")
        if self.latent_dim % self.denoiser_heads:
            found.append(f"latent_dim={self.latent_dim} must be divisible by denoiser_heads={self.denoiser_heads}")
        if self.diffusion_steps > self.train_timesteps:
            found.append(f"diffusion_steps={self.diffusion_steps} must be at most train_timesteps={self.train_timesteps}")
        if found:
            return found
        params = estimate_parameters(self)
        if params > MAX_PARAMETERS:
            found.append(f"the network would have {params:,} parameters, more than the limit of {MAX_PARAMETERS:,}")
        memory = estimate_memory_bytes(self)
        if memory > MAX_MODEL_MEMORY_BYTES:
            found.append(f"loading and running it would need about {memory / 2**30:.1f} GiB, more than the limit "
                         f"of {MAX_MODEL_MEMORY_BYTES / 2**30:.0f} GiB")
        return found

    def validate(self) -> "ModelConfig":
        problems = self.problems()
        if problems:
            raise CheckpointError("Invalid model config: " + "; ".join(problems) + ".")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Check ``data`` (e.g. a checkpoint's metadata) field by field, then build the config."""
        if not isinstance(data, dict):
            raise CheckpointError(f"Invalid model config: expected a mapping of fields, got {type(data).__name__}.")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            shown = [u if len(str(u)) <= 40 else str(u)[:37] + "..." for u in unknown[:5]]
            raise CheckpointError(
                f"Model config has unknown fields {shown}; it was written by a newer UnfoldLDM. "
                "Upgrade the package to load it."
            )
        values = dict(data)
        problems = [p for p in (check_field(k, v) for k, v in values.items()) if p]
        if problems:  # before the dataclass is made: nothing downstream sees a bad value
            raise CheckpointError("Invalid model config: " + "; ".join(problems) + ".")
        for key in ("blocks", "heads"):
            if key in values:
                values[key] = tuple(values[key])
        if "ffn_expansion" in values:
            values["ffn_expansion"] = float(values["ffn_expansion"])
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
    if not isinstance(name, str) or name not in PRESETS:
        raise CheckpointError(f"Unknown model preset {name!r}; choose one of {sorted(PRESETS)}.")
    unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(ModelConfig)})
    if unknown:
        raise CheckpointError(f"Unknown model config fields {unknown}; known: {sorted(FIELD_RULES)}.")
    problems = [p for p in (check_field(k, v) for k, v in changes.items()) if p]
    if problems:
        raise CheckpointError("Invalid model config: " + "; ".join(problems) + ".")
    changes = {k: tuple(v) if k in ("blocks", "heads") else v for k, v in changes.items()}
    return PRESETS[name].replace(**changes)
