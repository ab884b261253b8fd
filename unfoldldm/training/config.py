"""Training configuration: a YAML file in ``configs/``, checked and turned into dataclasses."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ModelConfig, preset
from ..degradations import DegradationConfig
from ..errors import UnfoldLDMError
from ..losses import LossWeights

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class TrainSchedule:
    steps: int = 20000
    phase1_fraction: float = 0.7
    lr: float = 2e-3
    min_lr: float = 1e-5
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.03
    ema_decay: float = 0.999
    grad_clip: float = 0.5
    seed: int = 0


@dataclass
class DataSpec:
    folders: list[str] = field(default_factory=list)
    crop: int = 128
    batch: int = 32


@dataclass
class TrainConfig:
    """Everything a training run needs besides the command-line switches."""

    name: str
    model: ModelConfig
    degradation: DegradationConfig
    data: DataSpec
    train: TrainSchedule
    losses: LossWeights
    log_every: int = 50
    save_every: int = 1000
    source: dict[str, Any] = field(default_factory=dict)  # the YAML as read, kept in the run folder


def _section(raw: dict, key: str, cls, path: Path):
    values = raw.get(key) or {}
    if not isinstance(values, dict):
        raise UnfoldLDMError(f"{path.name}: '{key}' must be a mapping.")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UnfoldLDMError(f"{path.name}: unknown keys {unknown} in '{key}' (allowed: {sorted(known)}).")
    return cls(**values)


def config_from_dict(raw: dict, path: Path) -> TrainConfig:
    """Validate a parsed YAML mapping."""
    model_raw = dict(raw.get("model") or {})
    model = preset(model_raw.pop("preset", "small"), **model_raw)
    deg_raw = raw.get("degradation", "restore")
    if isinstance(deg_raw, str):
        degradation = DegradationConfig.preset(deg_raw)
    else:
        degradation = DegradationConfig(**deg_raw)
    if degradation.scale != model.scale:
        raise UnfoldLDMError(
            f"{path.name}: the degradation scale ({degradation.scale}) differs from the model task "
            f"'{model.task}' (scale {model.scale})."
        )
    data = _section(raw, "data", DataSpec, path)
    if data.crop % 16 or data.crop < 32:
        raise UnfoldLDMError(f"{path.name}: data.crop must be a multiple of 16 and at least 32, got {data.crop}.")
    return TrainConfig(
        name=path.stem,
        model=model,
        degradation=degradation,
        data=data,
        train=_section(raw, "train", TrainSchedule, path),
        losses=_section(raw, "losses", LossWeights, path),
        log_every=int(raw.get("log_every", 50)),
        save_every=int(raw.get("save_every", 1000)),
        source=raw,
    )


def load_train_config(path: str | Path) -> TrainConfig:
    """Read ``path``, or ``configs/<name>.yaml`` when given a bare name such as ``restore_small``."""
    import yaml

    path = Path(path)
    if not path.exists() and path.suffix == "" and (REPO_ROOT / "configs" / f"{path}.yaml").exists():
        path = REPO_ROOT / "configs" / f"{path}.yaml"
    if not path.exists():
        raise UnfoldLDMError(f"{path}: no such training config. The shipped ones are in configs/.")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UnfoldLDMError(f"{path.name}: not valid YAML ({exc}).") from None
    try:
        return config_from_dict(raw, path)
    except (TypeError, ValueError) as exc:
        raise UnfoldLDMError(f"{path.name}: {exc}") from None
