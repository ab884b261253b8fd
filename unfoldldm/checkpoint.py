"""Checkpoints: ``safetensors`` only, with the model config and training provenance in the metadata.

Pickle-based files (``.pt``, ``.pth``, ``.ckpt``...) are refused: unpickling runs arbitrary code.
"""

from __future__ import annotations

import json
import os
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .config import ModelConfig
from .errors import CheckpointError

FORMAT_NAME = "unfoldldm"
FORMAT_VERSION = "1"
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pickle")


@dataclass
class CheckpointInfo:
    """What a checkpoint's metadata says, read without loading its tensors."""

    path: Path
    config: ModelConfig
    metadata: dict[str, str]
    provenance: dict[str, Any]
    num_tensors: int

    @property
    def task(self) -> str:
        return self.config.task


def _pickle_message(path: Path) -> str:
    """The refusal of a pickle file, with a conversion command that is safe to paste into a POSIX
    shell whatever the file is called: the path is one quoted argument, never part of the code."""
    code = (
        "import sys, torch; from safetensors.torch import save_file; "
        "sd = torch.load(sys.argv[1], map_location='cpu', weights_only=True); "
        "save_file({k: v.contiguous() for k, v in sd.items()}, 'model.safetensors')"
    )
    return (
        f"{path.name}: '{path.suffix}' files are Python pickles, which can run arbitrary code when "
        "loaded, so UnfoldLDM refuses them. If you trust the file, convert it once with:\n"
        f"  python -c {shlex.quote(code)} {shlex.quote(str(path))}\n"
        "then load those tensors into the matching UnfoldLDM model and write it with "
        "unfoldldm.save_checkpoint(path, model), which adds the config metadata this loader needs."
    )


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write a safetensors file atomically: a temp file in the same folder, renamed into place."""
    from safetensors.torch import save_file

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    provenance: dict[str, Any] | None = None,
    weights: str = "ema",
) -> Path:
    """Write ``model``'s weights and config to ``path`` atomically (temp file + rename)."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path.name}: checkpoints must be saved with the '.safetensors' suffix.")
    config: ModelConfig = model.config
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    metadata = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "config": config.to_json(),
        "task": config.task,
        "scale": str(config.scale),
        "weights": weights,
        "provenance": json.dumps(provenance or {}, sort_keys=True, default=str),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_safetensors(path, tensors, metadata)
    return path


def _check_path(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise CheckpointError(_pickle_message(path))
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file. Check the path or the model name.")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file.")
    if path.suffix.lower() != ".safetensors":
        raise CheckpointError(f"{path.name}: only '.safetensors' checkpoints can be loaded.")


def read_checkpoint_info(path: str | Path) -> CheckpointInfo:
    """Validate the file's header and metadata and return them (tensors are not read)."""
    from safetensors import safe_open

    path = Path(path)
    _check_path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            keys = list(f.keys())
    except Exception as exc:  # safetensors raises its own error types for every malformed file
        raise CheckpointError(
            f"{path.name}: not a readable safetensors file ({exc}). It may be truncated by an "
            "interrupted download or not a checkpoint at all; download or export it again."
        ) from None
    if metadata.get("format") != FORMAT_NAME:
        raise CheckpointError(
            f"{path.name}: a safetensors file, but not an UnfoldLDM checkpoint (no "
            f"'format: {FORMAT_NAME}' in its metadata). Other architectures cannot be loaded here."
        )
    if metadata.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path.name}: checkpoint format version {metadata.get('format_version')!r} is not "
            f"supported by this UnfoldLDM ({__version__}); upgrade the package."
        )
    try:
        raw_config = json.loads(metadata["config"])
        provenance = json.loads(metadata.get("provenance", "{}"))
    except (KeyError, json.JSONDecodeError, TypeError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{path.name}: the model config in the metadata is damaged ({exc}).") from None
    if not isinstance(provenance, dict):
        provenance = {"provenance": provenance}
    try:  # every field is checked, and the network's size estimated, before anything is built
        config = ModelConfig.from_dict(raw_config)
    except CheckpointError as exc:  # unknown fields (newer package) or an invalid config: name the file
        raise CheckpointError(
            f"{path.name}: {exc} The file was edited or damaged; re-export it from its training run."
        ) from None
    return CheckpointInfo(path=path, config=config, metadata=metadata, provenance=provenance, num_tensors=len(keys))


def load_checkpoint(
    path: str | Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    expect_task: str | None = None,
):
    """Build the model that ``path`` describes, load its weights strictly, and return it in eval mode."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from .archs import build_model

    info = read_checkpoint_info(path)
    if expect_task is not None and info.task != expect_task:
        raise CheckpointError(
            f"{info.path.name} is a '{info.task}' model (scale {info.config.scale}), but task "
            f"'{expect_task}' was asked for. Pick a matching model or change the task."
        )
    model = build_model(info.config)  # bounded: the config's size was checked by read_checkpoint_info
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    try:  # compare names and shapes from the header first: a mismatching file is never read whole
        with safe_open(str(info.path), framework="pt") as f:
            stored = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as exc:  # noqa: BLE001 - safetensors has its own error types
        raise CheckpointError(f"{info.path.name}: the tensor data cannot be read ({exc}); the file is damaged.") from None
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    wrong_shape = sorted(k for k in set(expected) & set(stored) if expected[k] != stored[k])
    if missing or unexpected or wrong_shape:
        parts = []
        for label, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape)):
            if names:
                parts.append(f"{len(names)} {label} (e.g. {names[0]})")
        raise CheckpointError(
            f"{info.path.name}: its weights do not match its config '{info.config.name}' "
            f"({', '.join(parts)}). The file was written by a different model version or edited; "
            "re-export it from its training run."
        )
    try:
        tensors = load_file(str(info.path), device="cpu")
    except Exception as exc:
        raise CheckpointError(f"{info.path.name}: the tensor data cannot be read ({exc}); the file is damaged.") from None
    broken = sorted(k for k, t in tensors.items() if t.is_floating_point() and not bool(t.isfinite().all()))
    if broken:
        raise CheckpointError(
            f"{info.path.name}: {len(broken)} of its {len(tensors)} weight tensors hold NaN or infinite values "
            f"(e.g. {broken[0]}), so every image it restored would be NaN. It was most likely exported by a "
            "training run that diverged; use an earlier export of that run."
        )
    model.load_state_dict(tensors, strict=True)
    model.checkpoint_info = info
    return model.to(device=device, dtype=dtype).eval()
