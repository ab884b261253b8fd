"""Argument types shared by the command-line modules (argparse only: no heavy imports)."""

from __future__ import annotations

import argparse
import math


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def positive_int(text: str) -> int:
    """An integer of at least 1, with an argparse error message otherwise."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def threads(text: str) -> int | str:
    """``auto`` or an integer of at least 1 (a thread count)."""
    return "auto" if text.strip().lower() == "auto" else positive_int(text)


def non_negative_int(text: str) -> int:
    """An integer of at least 0."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _bounded(convert, low, high, name: str):
    """An argparse type: ``convert(text)``, refused outside [low, high]; ``name`` is what argparse
    calls it in its messages."""

    def shown(v) -> str:
        return str(v) if isinstance(v, int) else f"{v:g}"

    def parse(text: str):
        value = convert(text)
        if not low <= value <= high:
            got = value if isinstance(value, int) else text
            raise argparse.ArgumentTypeError(f"must be from {shown(low)} to {shown(high)}, got {got}")
        return value

    parse.__name__ = name
    return parse


def bounded_int(low: int, high: int):
    """An integer from ``low`` to ``high``."""
    return _bounded(_int, low, high, "whole number")


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number above 0 (nan and inf are refused)."""
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def bounded_float(low: float, high: float):
    """A finite number from ``low`` to ``high`` (nan and inf are refused)."""
    return _bounded(_float, low, high, "number")
