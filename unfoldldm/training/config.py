"""Training configuration: a YAML file (the shipped ones are in ``unfoldldm/configs/``), checked and
turned into dataclasses. Relative data folders in a config are found under the data root:
``$UNFOLDLDM_DATA`` if set, else ``./data``."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ModelConfig, preset
from ..degradations import DegradationConfig
from ..errors import CheckpointError, UnfoldLDMError
from ..losses import LossWeights

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"  # shipped with the package
DATA_ROOT_ENV = "UNFOLDLDM_DATA"


def data_root() -> Path:
    """Where relative ``data.folders`` of a config are looked up: ``$UNFOLDLDM_DATA``, else ``./data``."""
    return Path(os.environ.get(DATA_ROOT_ENV) or "data")


def shipped_configs() -> list[str]:
    """The names of the training configs shipped with the package (``--config NAME``)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


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
    # Parameter-name prefixes left untrained (e.g. "gradient_step.estimator": MGDA's kernel estimator).
    freeze: list[str] = field(default_factory=list)


@dataclass
class DataSpec:
    folders: list[str] = field(default_factory=list)
    crop: int = 128
    batch: int = 32
    holdout_every: int = 0  # hold every n-th image (sorted by path) out of training, for validation


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


# Ranges of the numbers in a training config: (low, high, low is allowed, high is allowed).
# Types come from each dataclass field's default (int, float, bool, str, list).
RANGES: dict[str, dict[str, tuple[float, float, bool, bool]]] = {
    "train": {
        "steps": (1, math.inf, True, False), "phase1_fraction": (0, 1, True, True),
        "lr": (0, math.inf, False, False), "min_lr": (0, math.inf, True, False),
        "weight_decay": (0, math.inf, True, False), "warmup_fraction": (0, 1, True, False),
        "ema_decay": (0, 1, True, True), "grad_clip": (0, math.inf, False, False), "seed": (0, 2**31, True, True),
    },
    "data": {"crop": (32, 4096, True, True), "batch": (1, 65536, True, True), "holdout_every": (0, math.inf, True, False)},
    "losses": {},  # every weight: finite and not negative (the default rule below)
    "top": {"log_every": (1, math.inf, True, False), "save_every": (1, math.inf, True, False)},
}
TOP_LEVEL_KEYS = ("model", "degradation", "data", "train", "losses", "log_every", "save_every")


def _kind(default: Any) -> type:
    return bool if isinstance(default, bool) else type(default)


def check_value(where: str, name: str, value: Any, default: Any,
                bounds: tuple[float, float, bool, bool] | None = None) -> Any:
    """``value`` checked against the type of ``default`` (and ``bounds``); returns it, lists as given.
    Raises :class:`UnfoldLDMError` saying what the key needs."""
    kind = _kind(default)
    label = f"{where}.{name}" if where else name

    def fail(need: str) -> UnfoldLDMError:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        return UnfoldLDMError(f"{label} must be {need}, got {shown}.")

    if kind in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise fail("a list")
        if default:
            for item in value:
                check_value(where, f"{name}[]", item, default[0])
        elif not all(isinstance(item, str) for item in value):  # the empty-by-default lists hold texts
            raise fail("a list of texts")
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if kind is str:
        if not isinstance(value, str):
            raise fail("a text")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("a whole number")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise fail("a finite number")
    if kind in (int, float):
        low, high, low_ok, high_ok = bounds or (0, math.inf, True, False)
        if (value < low or (value == low and not low_ok)) or (value > high or (value == high and not high_ok)):
            lo = f"{'at least' if low_ok else 'more than'} {low:g}"
            hi = "" if high == math.inf else f" and {'at most' if high_ok else 'less than'} {high:g}"
            raise fail(f"{'a whole number' if kind is int else 'a number'} {lo}{hi}")
        return float(value) if kind is float else value
    return value


def _defaults(cls) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(cls):
        out[f.name] = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
    return out


def _section(raw: dict, key: str, cls, path: Path):
    values = raw.get(key)
    values = {} if values is None else values
    if not isinstance(values, dict):
        raise UnfoldLDMError(f"{path.name}: '{key}' must be a mapping of keys to values, got {type(values).__name__}.")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(map(str, set(values) - known))
    if unknown:
        raise UnfoldLDMError(f"{path.name}: unknown keys {unknown} in '{key}' (allowed: {sorted(known)}).")
    defaults, ranges = _defaults(cls), RANGES.get(key, {})
    checked = {name: check_value(key, name, value, defaults[name], ranges.get(name)) for name, value in values.items()}
    return cls(**checked)


def config_from_dict(raw: dict, path: Path) -> TrainConfig:
    """Validate a parsed YAML mapping: every key's type and range, before anything is built."""
    if not isinstance(raw, dict):
        raise UnfoldLDMError(f"{path.name}: a training config is a mapping of sections ({', '.join(TOP_LEVEL_KEYS)}), "
                             f"not a {type(raw).__name__}. See configs/nano.yaml.")
    unknown = sorted(map(str, set(raw) - set(TOP_LEVEL_KEYS)))
    if unknown:
        raise UnfoldLDMError(f"{path.name}: unknown top-level keys {unknown} (allowed: {list(TOP_LEVEL_KEYS)}).")
    model_raw = raw.get("model") or {}
    if not isinstance(model_raw, dict):
        raise UnfoldLDMError(f"{path.name}: 'model' must be a mapping (preset: and the fields to change).")
    model_raw = dict(model_raw)
    try:
        model = preset(model_raw.pop("preset", "small"), **model_raw)
    except CheckpointError as exc:
        raise UnfoldLDMError(f"{path.name}: model: {exc}") from None
    deg_raw = raw.get("degradation", "restore")
    if isinstance(deg_raw, str):
        degradation = DegradationConfig.preset(deg_raw)
    elif isinstance(deg_raw, dict):
        known = _defaults(DegradationConfig)
        unknown = sorted(map(str, set(deg_raw) - set(known)))
        if unknown:
            raise UnfoldLDMError(f"{path.name}: unknown keys {unknown} in 'degradation' (allowed: {sorted(known)}).")
        bounds = (-math.inf, math.inf, True, True)
        for name, value in deg_raw.items():
            check_value("degradation", name, value, known[name], bounds)
        degradation = DegradationConfig(**deg_raw)
    else:
        raise UnfoldLDMError(f"{path.name}: 'degradation' must be a preset name or a mapping of its fields.")
    if degradation.scale != model.scale:
        raise UnfoldLDMError(
            f"{path.name}: the degradation scale ({degradation.scale}) differs from the model task "
            f"'{model.task}' (scale {model.scale})."
        )
    data = _section(raw, "data", DataSpec, path)
    check_crop(data.crop, f"{path.name}: data.crop")
    top = RANGES["top"]
    return TrainConfig(
        name=path.stem,
        model=model,
        degradation=degradation,
        data=data,
        train=_section(raw, "train", TrainSchedule, path),
        losses=_section(raw, "losses", LossWeights, path),
        log_every=check_value("", "log_every", raw.get("log_every", 50), 50, top["log_every"]),
        save_every=check_value("", "save_every", raw.get("save_every", 1000), 1000, top["save_every"]),
        source=raw,
    )


def check_crop(crop: int, label: str = "--crop") -> None:
    """Crops are cut on the model's 16-pixel grid (x-space) and must leave room for its levels."""
    if isinstance(crop, bool) or not isinstance(crop, int) or crop % 16 or crop < 32:
        raise UnfoldLDMError(f"{label} must be a multiple of 16 and at least 32, got {crop!r}.")


def load_train_config(path: str | Path) -> TrainConfig:
    """Read ``path``, or a shipped config when given its bare name (e.g. ``restore_small``)."""
    import yaml

    path = Path(path)
    if not path.exists() and path.suffix == "" and (CONFIG_DIR / f"{path}.yaml").exists():
        path = CONFIG_DIR / f"{path}.yaml"
    if not path.exists():
        raise UnfoldLDMError(f"{path}: no such training config. Give a YAML file, or the name of a shipped one: "
                             f"{', '.join(shipped_configs())}.")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UnfoldLDMError(f"{path.name}: not valid YAML ({exc}).") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UnfoldLDMError(f"{path}: cannot read the training config ({exc}).") from None
    try:
        return config_from_dict({} if raw is None else raw, path)
    except (TypeError, ValueError) as exc:
        raise UnfoldLDMError(f"{path.name}: {exc}") from None
