"""Checks made before any work starts: restoration options, and memory for one image.

Every front end (command line, app, nodes, the Python API) calls these, so a bad value is refused
with a message naming it instead of failing deep inside, silently returning NaN, or getting the
process killed by the operating system for using too much memory.
"""

from __future__ import annotations

import math
import os
from numbers import Integral, Real
from pathlib import Path

from .errors import InputImageError, UnfoldLDMError
from .options import ENSEMBLE_PASSES, MAX_PRIOR_STEPS, MAX_PRIOR_STRENGTH, MAX_SEED, MAX_STAGES


def _whole(value, name: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise UnfoldLDMError(f"{name} must be a whole number, got {value!r}.")
    if value < low or (high is not None and value > high):
        span = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise UnfoldLDMError(f"{name} must be {span}, got {value}.")
    return int(value)


def check_seed(seed) -> int:
    return _whole(seed, "seed", 0, MAX_SEED)


def check_prior_strength(strength) -> float:
    if isinstance(strength, bool) or not isinstance(strength, Real) or not math.isfinite(strength):
        raise UnfoldLDMError(f"prior strength must be a finite number from 0 to {MAX_PRIOR_STRENGTH:g} "
                             f"(0 = off, 1 = as trained), got {strength!r}.")
    if not 0 <= strength <= MAX_PRIOR_STRENGTH:
        raise UnfoldLDMError(f"prior strength must be from 0 to {MAX_PRIOR_STRENGTH:g} (0 = off, 1 = as trained), "
                             f"got {strength:g}.")
    return float(strength)


def check_restore_options(options, model=None) -> None:
    """Raise :class:`UnfoldLDMError` naming the first unusable field of a ``RestoreOptions``.

    With ``model`` the stage count and prior steps are also checked against what it has.
    """
    config = getattr(model, "config", None)
    if options.stages is not None:
        top = config.stages if config is not None else MAX_STAGES
        if isinstance(options.stages, Integral) and not isinstance(options.stages, bool) and options.stages > top:
            raise UnfoldLDMError(f"stages must be between 1 and {top} for this model, got {options.stages}.")
        _whole(options.stages, "stages", 1, top)
    if options.prior_steps is not None:
        top = min(MAX_PRIOR_STEPS, config.train_timesteps) if config is not None else MAX_PRIOR_STEPS
        _whole(options.prior_steps, "prior steps", 1, top)
    check_seed(options.seed)
    check_prior_strength(options.prior_strength)
    if options.tile is not None:
        _whole(options.tile, "tile", 0)
    _whole(options.overlap, "overlap", 0)
    _whole(options.max_pixels, "max pixels", 1)
    check_ensemble(options.ensemble)
    scale = getattr(model, "scale", 1)
    if scale > 1 and options.ensemble > 2:
        raise UnfoldLDMError(f"ensemble must be 1 or 2 for a x{scale} super-resolution model, got {options.ensemble}: "
                             "mirrored copies would put its sampling grid off by a few pixels, so it uses "
                             "transposes only.")


def check_ensemble(passes) -> int:
    """The number of self-ensemble passes: one of 1, 2, 4, 8."""
    if isinstance(passes, bool) or not isinstance(passes, Integral) or passes not in ENSEMBLE_PASSES:
        allowed = ", ".join(str(p) for p in ENSEMBLE_PASSES)
        raise UnfoldLDMError(f"ensemble must be one of {allowed} (orientations averaged; 1 = off), got {passes!r}.")
    return int(passes)


def ensemble_from_widget(value) -> int:
    """A front end's ensemble value (the number, its text from a dropdown, or None for "not set": 1)
    as the number of passes, refused by :func:`check_ensemble` otherwise."""
    if value is None:
        return 1
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    return check_ensemble(value)


# ----- memory ------------------------------------------------------------------------------------

def available_memory_bytes() -> int | None:
    """Memory this process can still get: the smaller of the system's MemAvailable and what its
    cgroup (container) limit leaves; None where neither can be read (the check is then skipped)."""
    found: list[int] = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
                break
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
            found.append(max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    if not found and hasattr(os, "sysconf"):
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (OSError, ValueError):
            pass
    return min(found) if found else None


def estimate_restore_bytes(config, height: int, width: int, tile: int | None) -> int:
    """Host memory to restore one ``height`` x ``width`` input, from the model's config.

    Whole-image tensors of every stage (the image, its estimate and the feature memory, about
    ``12 + memory_channels`` floats per output pixel), plus the proximal network's features over
    one tile (or the whole image untiled, about ``4 * width`` floats per pixel). Calibrated on the
    CPU benchmarks in the README (4096x4096 tiled 512: 2.0 GiB estimated, 1.9 measured).
    """
    pixels = height * width * config.scale**2
    working = pixels if not tile else min(pixels, tile * tile)
    return 4 * (pixels * (12 + config.memory_channels) + working * 4 * config.width)


def check_memory_for_image(model, height: int, width: int, tile: int | None, source: str = "input image") -> None:
    """Refuse an image that would need more host memory than is available (CPU and MPS runs; a GPU
    out-of-memory error is caught and retried with smaller tiles instead of killing the process)."""
    config = getattr(model, "config", None)
    if config is None:
        return
    try:
        device = next(model.parameters()).device.type
    except (StopIteration, AttributeError):
        device = "cpu"
    if device == "cuda":
        return
    available = available_memory_bytes()
    need = estimate_restore_bytes(config, height, width, tile)
    if available is not None and need > available:
        raise InputImageError(
            f"{source}: restoring this {width}x{height} image needs about {need / 2**30:.1f} GiB of memory, "
            f"but only {available / 2**30:.1f} GiB is available. Use smaller tiles (--tile), downscale the "
            "image, or free memory; a raised --max-pixels does not make more memory available."
        )
