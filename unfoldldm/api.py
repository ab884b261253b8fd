"""Loading a model by name or path, with the bundled defaults and host-chosen device and dtype."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

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


BUNDLED_PREFIX = "[bundled] "  # how every front end names the weights in WEIGHTS_DIR
CHECKPOINT_SUFFIX = ".safetensors"
# What a host lists in its model folder: checkpoints, and pickle files, so that choosing one
# explains why it is refused instead of the file silently missing from the list.
LISTED_SUFFIXES = (CHECKPOINT_SUFFIX, *PICKLE_SUFFIXES)


@dataclass(frozen=True)
class ModelEntry:
    """One model a front end lists: the name it shows and the file behind it."""

    name: str
    path: Path

    @property
    def refused(self) -> bool:
        """A pickle file: listed only so that loading it gives a clear refusal."""
        return self.path.suffix.lower() in PICKLE_SUFFIXES


def _shown_name(path: Path, keep_suffix: bool) -> str:
    name = path.name if keep_suffix else path.stem
    return BUNDLED_PREFIX + name if path.parent.resolve() == WEIGHTS_DIR.resolve() else name


def list_models(
    search_dirs: Iterable[str | Path] = (),
    files: Iterable[str | Path] = (),
    host_files: Mapping[str, str | Path] | None = None,
    keep_suffix: bool = False,
    bundled_first: bool = False,
) -> list[ModelEntry]:
    """The models a front end lists, each name once (the first one found wins).

    In order: ``files`` (single checkpoints, e.g. the app's ``--model``), the ``.safetensors`` files
    of ``search_dirs``, ``host_files`` (name -> path of files a host listed itself, e.g. ComfyUI's
    ``folder_paths``; kept under the host's names) and the bundled weights, named
    ``[bundled] restore_small``. Names are file stems, or whole file names with ``keep_suffix``
    (ComfyUI's convention); ``bundled_first`` puts the bundled weights at the top.
    """
    found = [*map(Path, files)]
    for folder in map(Path, search_dirs):
        if folder.is_dir():
            found.extend(sorted(folder.glob(f"*{CHECKPOINT_SUFFIX}")))
    user = [ModelEntry(_shown_name(p, keep_suffix), p) for p in found]
    user += [ModelEntry(name, Path(path)) for name, path in (host_files or {}).items()]
    bundled_paths = sorted(WEIGHTS_DIR.glob(f"*{CHECKPOINT_SUFFIX}")) if WEIGHTS_DIR.is_dir() else []
    bundled = [ModelEntry(_shown_name(p, keep_suffix), p) for p in bundled_paths]
    entries: dict[str, ModelEntry] = {}
    for entry in (bundled + user if bundled_first else user + bundled):
        entries.setdefault(entry.name, entry)
    return list(entries.values())


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
    name = path.name if path.suffix else f"{path.name}{CHECKPOINT_SUFFIX}"
    candidates = [entry.path for entry in list_models(search_dirs)]
    for candidate in candidates:
        if candidate.name == name:
            return candidate
    known = ", ".join(p.stem for p in candidates) or "none installed"
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
