"""Geometric self-ensemble: restore turned and mirrored copies of an image and average them back.

The network's convolutions are not rotation or mirror invariant, so part of its error changes with
the orientation of the input. Restoring the image in several of its eight orientations (the dihedral
group of the square), turning each result back and averaging cancels some of that error, at the cost
of one full restoration per orientation.

Two grids must survive the turn, or the copies are worse than the original (measured: -0.3 to
-0.7 dB on JPEG photos and on decimated x4 input, docs/design.md):
- JPEG's 8x8 (chroma 16x16) blocks start at the top-left pixel. Transposing keeps that corner; a
  mirror moves the far edge there, so before mirroring the image is padded (edge pixels repeated)
  to a multiple of :data:`BLOCK_GRID` on each side, and the padding is cut off again afterwards.
- A super-resolution model's low-resolution pixel ``i`` sits on output pixel ``s * i`` (the
  "decimate" grid it is trained on); mirrored, the grid lands ``s - 1`` output pixels off. So x4
  models use transposes only (at most 2 passes).

An orientation is coded as three bits: 4 = transpose first, 1 = mirror left-right, 2 = mirror
top-bottom. :func:`turn` and :func:`turn_back` act on the last two dimensions, so images, noise maps
and the (p x p) kernel estimates are turned the same way.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .options import ENSEMBLE_PASSES

BLOCK_GRID = 16  # JPEG's largest block (a 4:2:0 chroma block, in pixels)

# The first n entries are the orientations of n passes: the identity and the transpose (grid-safe
# as they are), then the half turn and the anti-transpose, then the other mirrors.
_ORDER = (0, 4, 3, 7, 1, 5, 2, 6)


def orientations(passes: int, scale: int = 1) -> tuple[int, ...]:
    """The orientation codes of a self-ensemble of ``passes`` (one of ``options.ENSEMBLE_PASSES``) for a
    model of this ``scale``; at scale > 1 only the identity and the transpose (``passes`` <= 2)."""
    if passes not in ENSEMBLE_PASSES:
        raise ValueError(f"self-ensemble passes must be one of {ENSEMBLE_PASSES}, got {passes!r}")
    if scale > 1 and passes > 2:
        raise ValueError(f"a x{scale} model's self-ensemble has at most 2 passes (no mirrors), got {passes}")
    return _ORDER[:passes]


def mirrors(code: int) -> bool:
    """Whether orientation ``code`` mirrors the image (and so needs :func:`pad_to_grid` first)."""
    return bool(code & 3)


def pad_to_grid(x: Tensor) -> Tensor:
    """``x`` padded at the bottom and right, edge pixels repeated, to multiples of :data:`BLOCK_GRID`."""
    ph, pw = -x.shape[-2] % BLOCK_GRID, -x.shape[-1] % BLOCK_GRID
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


def turn(x: Tensor, code: int) -> Tensor:
    """``x`` in orientation ``code`` (its last two dimensions transposed and/or mirrored)."""
    if code & 4:
        x = x.transpose(-1, -2)
    if code & 1:
        x = x.flip(-1)
    if code & 2:
        x = x.flip(-2)
    return x


def turn_back(x: Tensor, code: int) -> Tensor:
    """Inverse of :func:`turn`: ``turn_back(turn(x, c), c)`` is ``x``."""
    if code & 2:
        x = x.flip(-2)
    if code & 1:
        x = x.flip(-1)
    if code & 4:
        x = x.transpose(-1, -2)
    return x
