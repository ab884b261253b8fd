"""The named parts a stage is assembled from: one table for the config (names) and the model (classes).

Each kind of part maps a name, as written in a config and a checkpoint, to the class that builds it
(``module:Class`` inside :mod:`unfoldldm.archs`, imported on first use, so the config can check
names without importing any network code). ``""`` means "no part" (a model without a prior).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

PARTS: dict[str, dict[str, str]] = {
    "gradient": {"mgda": "mgda:MGDAStep", "plain": "mgda:PlainGradientStep"},
    "prior": {"drldm": "drldm:DRLDMPrior", "none": ""},
    "proximal": {"ocformer": "ocformer:OCFormer", "unet": "plain_unet:PlainUNet"},
}


def part_names(kind: str) -> tuple[str, ...]:
    """The names a config may give for ``kind`` ("gradient", "prior" or "proximal")."""
    return tuple(PARTS[kind])


def part_class(kind: str, name: str) -> "type[nn.Module] | None":
    """The class registered as ``name`` for ``kind`` (None for "no part")."""
    target = PARTS[kind][name]
    if not target:
        return None
    module, cls = target.split(":")
    return getattr(importlib.import_module(f"{__package__}.archs.{module}"), cls)


def build_part(kind: str, name: str, config) -> "nn.Module | None":
    """Build the part ``name`` of ``kind`` for ``config`` (a :class:`~unfoldldm.config.ModelConfig`)."""
    cls = part_class(kind, name)
    return None if cls is None else cls(config)
