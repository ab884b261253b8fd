"""Resumable run state in one ``safetensors`` file: weights, EMA, optimizer, RNGs and progress.

Nothing is pickled: optimizer tensors are stored by name and its scalars as JSON metadata, so a
run folder can be resumed on another machine or device type.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import Tensor

from ..checkpoint import write_safetensors
from ..errors import CheckpointError


def _flatten_optimizer(state: dict) -> tuple[dict[str, Tensor], dict[str, Any]]:
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, Tensor):
                tensors[f"optim/{idx}/{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[key] = value
    # A CUDA-graph run keeps its learning rate in a tensor; store the number.
    groups = [{k: float(v) if isinstance(v, Tensor) else v for k, v in g.items()} for g in state["param_groups"]]
    return tensors, {"scalars": scalars, "param_groups": groups}


def _unflatten_optimizer(tensors: dict[str, Tensor], meta: dict[str, Any]) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, idx, key = name.split("/", 2)
        state.setdefault(int(idx), {})[key] = value
    for idx, entries in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(entries)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_run_state(path: Path, parts: dict[str, dict[str, Tensor]], optimizer: dict, meta: dict[str, Any]) -> None:
    """Write ``parts`` (prefix -> state dict), the optimizer state and ``meta`` atomically."""
    tensors = {f"{prefix}/{k}": v.detach().cpu().contiguous() for prefix, sd in parts.items() for k, v in sd.items()}
    optim_tensors, optim_meta = _flatten_optimizer(optimizer)
    tensors.update(optim_tensors)
    metadata = {"meta": json.dumps(meta), "optimizer": json.dumps(optim_meta)}
    write_safetensors(path, tensors, metadata)


def load_run_state(path: Path) -> tuple[dict[str, dict[str, Tensor]], dict, dict[str, Any]]:
    """Inverse of :func:`save_run_state`: ``(parts, optimizer_state, meta)``."""
    from safetensors import safe_open

    if not path.exists():
        raise CheckpointError(f"{path}: no run state to resume from (the run folder has no state.safetensors).")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = json.loads(metadata["meta"])
        optim_meta = json.loads(metadata["optimizer"])
    except Exception as exc:
        raise CheckpointError(f"{path}: the run state cannot be read ({exc}); it is damaged or not a run state.") from None
    parts: dict[str, dict[str, Tensor]] = {}
    optim_tensors = {}
    for name, value in tensors.items():
        prefix, key = name.split("/", 1)
        if prefix == "optim":
            optim_tensors[name] = value
        else:
            parts.setdefault(prefix, {})[key] = value
    return parts, _unflatten_optimizer(optim_tensors, optim_meta), meta
