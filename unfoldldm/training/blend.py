"""Weight interpolation of two checkpoints of one architecture (a "model soup" of two).

A model continued from a base checkpoint often trades one setting for another (the x4 model's CPU
continuations gained on bicubic-downsampled input and lost on blind input). Both sit in one basin of
the loss, so the straight line between their weights is a family of working models; a point on it
may beat the base on every setting where neither end does (for the x4 model's continuations it did
not: the blind setting fell nearly linearly along the line, benchmarks/RESULTS.md). The blend is chosen like any training
recipe: on the validation split of the training images, never on the evaluation sets.
"""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path

import torch

from ..checkpoint import load_checkpoint, read_checkpoint_info, save_checkpoint
from ..errors import UnfoldLDMError


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def blend_checkpoints(base: str | Path, tuned: str | Path, weight: float, out: str | Path) -> Path:
    """Write ``(1 - weight) * base + weight * tuned`` to ``out`` (both the same architecture and task).

    The provenance is ``tuned``'s training history (so the chain of ``init_provenance`` records stays
    whole) plus a ``blend`` record naming ``base`` by file name and SHA-256 and the weight.
    """
    if not 0.0 <= weight <= 1.0:
        raise UnfoldLDMError(f"--weight {weight}: the share of the tuned weights must be between 0 and 1.")
    base, tuned, out = Path(base), Path(tuned), Path(out)
    base_info, tuned_info = read_checkpoint_info(base), read_checkpoint_info(tuned)
    if base_info.config != tuned_info.config:
        raise UnfoldLDMError(
            f"{base.name} and {tuned.name} have different model configs ('{base_info.config.name}', task "
            f"{base_info.task} against '{tuned_info.config.name}', task {tuned_info.task}); only checkpoints "
            "of one architecture, one continued from the other, can be blended."
        )
    model = load_checkpoint(tuned)
    base_tensors = load_checkpoint(base).state_dict()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                tensor.lerp_(base_tensors[name].to(tensor.dtype), 1.0 - weight)
    provenance = dict(tuned_info.provenance)
    provenance["blend"] = {
        "tuned_weight": weight,
        "tuned": tuned.name,
        "tuned_sha256": _sha256(tuned),
        "base": base.name,
        "base_sha256": _sha256(base),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "note": "weights = (1 - tuned_weight) * base + tuned_weight * tuned; the training history "
        "above is the tuned checkpoint's (its init_provenance chain includes the base)",
    }
    return save_checkpoint(out, model, provenance=provenance, weights=tuned_info.metadata.get("weights", "ema"))


def add_arguments(parser) -> None:  # argparse.ArgumentParser; ``python -m unfoldldm blend``
    from ..argtypes import bounded_float

    parser.description = (
        "Write the weighted average of two checkpoints of one architecture, e.g. the bundled weights and a "
        "run continued from them:\n  python -m unfoldldm blend sr4x_small runs/x4/model.safetensors "
        "--weight 0.5 --out runs/x4_half.safetensors\nScore the result with benchmarks/validate.py."
    )
    parser.add_argument("base", help="model name or .safetensors path (weight 1 - W)")
    parser.add_argument("tuned", help="model name or .safetensors path (weight W)")
    parser.add_argument("--weight", type=bounded_float(0.0, 1.0), required=True, metavar="W",
                        help="share of the tuned weights, 0 to 1")
    parser.add_argument("--out", required=True, help="output .safetensors file")


def run(args) -> int:
    from ..api import resolve_model_path

    path = blend_checkpoints(resolve_model_path(args.base), resolve_model_path(args.tuned), args.weight, args.out)
    print(f"wrote {path}")
    return 0
