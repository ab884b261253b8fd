"""Loading a model by name or path, with the bundled defaults and host-chosen device and dtype."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch

from .checkpoint import PICKLE_SUFFIXES, load_checkpoint
from .config import TASK_SCALES
from .errors import CheckpointError, NoDefaultWeightsError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS = {"restore": "restore_small.safetensors", "sr4x": "sr4x_small.safetensors"}
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def default_weights_path(task: str) -> Path:
    """Where the bundled default weights of ``task`` live (they may not be installed)."""
    if task not in DEFAULT_WEIGHTS:
        raise CheckpointError(f"No default model exists for task {task!r}; choose one of {sorted(DEFAULT_WEIGHTS)}.")
    return WEIGHTS_DIR / DEFAULT_WEIGHTS[task]


def list_models(search_dirs: Iterable[str | Path] = ()) -> list[Path]:
    """Every ``.safetensors`` file in ``search_dirs`` and the bundled weights folder."""
    found: list[Path] = []
    for folder in [*map(Path, search_dirs), WEIGHTS_DIR]:
        if folder.is_dir():
            found.extend(sorted(folder.glob("*.safetensors")))
    return found


def resolve_model_path(model: str | Path | None, task: str = "restore", search_dirs: Iterable[str | Path] = ()) -> Path:
    """Turn ``None`` (the task's default), a bare name or a path into an existing checkpoint path."""
    if model is None or str(model) == "":
        path = default_weights_path(task)
        if not path.exists():
            raise NoDefaultWeightsError(
                f"No default weights for task '{task}' are installed (expected {path}). Trained "
                "weights have not been shipped with this version yet. Point at a checkpoint with "
                "--model PATH (a .safetensors file written by `python -m unfoldldm train`)."
            )
        return path
    path = Path(model).expanduser()
    if path.suffix.lower() in PICKLE_SUFFIXES or path.exists() or path.parent != Path("."):
        return path  # load_checkpoint gives the precise error for missing or pickle files
    name = path.name if path.suffix else f"{path.name}.safetensors"
    for candidate in list_models(search_dirs):
        if candidate.name == name:
            return candidate
    known = ", ".join(p.stem for p in list_models(search_dirs)) or "none installed"
    raise CheckpointError(f"No model named '{model}' was found (known models: {known}). Give a path to a .safetensors file.")


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/"auto": CUDA if available, else Apple MPS, else CPU."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise CheckpointError(f"Unknown device {device!r} ({exc}); use cpu, cuda, cuda:N or mps.") from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise CheckpointError(f"Unsupported device {device!r}; use cpu, cuda, cuda:N or mps.")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CheckpointError("--device cuda was asked for, but this PyTorch build sees no CUDA GPU; use --device cpu.")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise CheckpointError(
            f"--device {device} was asked for, but only {torch.cuda.device_count()} CUDA GPU(s) are visible "
            "(numbered from 0)."
        )
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise CheckpointError("--device mps was asked for, but this PyTorch build sees no Apple GPU (MPS); use --device cpu.")
    return dev


def pick_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``None``/"auto": fp32 on CPU, bf16 on GPUs that support it, else fp16."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if dtype not in DTYPES:
        raise CheckpointError(f"Unknown dtype {dtype!r}; use one of {sorted(DTYPES)} or auto.")
    return DTYPES[dtype]


def load_model(
    model: str | Path | None = None,
    task: str = "restore",
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    search_dirs: Iterable[str | Path] = (),
):
    """Load an UnfoldLDM model: the task's bundled default, a name in ``search_dirs``, or a path."""
    if task not in TASK_SCALES:
        raise CheckpointError(f"Unknown task {task!r}; choose one of {sorted(TASK_SCALES)}.")
    dev = pick_device(device)
    path = resolve_model_path(model, task, search_dirs)
    return load_checkpoint(path, device=dev, dtype=pick_dtype(dtype, dev), expect_task=task if model is None else None)
