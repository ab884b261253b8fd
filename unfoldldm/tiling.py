"""Overlapping tiles with seamless (linear-ramp) blending, for the local parts of a stage.

Tensors live at different resolutions of one x-space grid (x and v at 1, the memory ``h`` at 1/2,
y-space at 1/scale). A tile is chosen in x-space on a grid of ``align`` pixels so that it maps to
whole pixels on every grid.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` with at least ``overlap`` shared."""
    if tile >= length:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def _ramp(length: int, start: int, total: int, overlap: int) -> Tensor:
    """1-D blending weight of one tile: rises over the overlap on sides that touch another tile."""
    w = torch.ones(length)
    if overlap <= 0:
        return w
    ramp = (torch.arange(overlap, dtype=torch.float32) + 1) / (overlap + 1)
    n = min(overlap, length)
    if start > 0:
        w[:n] = ramp[:n]
    if start + length < total:
        w[length - n :] = torch.minimum(w[length - n :], ramp[:n].flip(0))
    return w


def count_tiles(size: tuple[int, int], tile: int | None, overlap: int) -> int:
    if tile is None:
        return 1
    return len(tile_starts(size[0], tile, overlap)) * len(tile_starts(size[1], tile, overlap))


def tiled_apply(
    fn: Callable[..., Sequence[Tensor | None]],
    inputs: Sequence[tuple[Tensor, float]],
    out_factors: Sequence[float],
    size: tuple[int, int],
    tile: int | None,
    overlap: int,
    before_tile: Callable[[], None] | None = None,
) -> list[Tensor | None]:
    """Run ``fn`` over overlapping x-space tiles and blend its outputs.

    ``inputs`` pairs each tensor with its resolution relative to x-space; ``fn`` gets the cropped
    tensors and returns one tensor (or None) per entry of ``out_factors``. With ``tile`` None or
    covering the image, ``fn`` runs once on the whole tensors, so the result is exactly untiled.
    ``before_tile`` runs before each tile (progress, interruption).
    """
    height, width = size
    if tile is None or (tile >= height and tile >= width):
        if before_tile:
            before_tile()
        return list(fn(*(t for t, _ in inputs)))
    overlap = min(overlap, tile // 2)
    outs: list[Tensor | None] = [None] * len(out_factors)
    weight_sums: dict[float, Tensor] = {}
    th, tw = min(tile, height), min(tile, width)
    for top in tile_starts(height, tile, overlap):
        for left in tile_starts(width, tile, overlap):
            if before_tile:
                before_tile()
            crops = [t[..., int(top * f) : int((top + th) * f), int(left * f) : int((left + tw) * f)] for t, f in inputs]
            results = fn(*crops)
            tile_weights: dict[float, Tensor] = {}
            for i, (res, f) in enumerate(zip(results, out_factors)):
                if res is None:
                    continue
                full = (int(height * f), int(width * f))
                r0, c0 = int(top * f), int(left * f)
                rh, rw = res.shape[-2:]
                if f not in tile_weights:
                    ov = int(overlap * f)
                    w = _ramp(rh, r0, full[0], ov)[:, None] * _ramp(rw, c0, full[1], ov)[None]
                    tile_weights[f] = w.to(res.device)
                    sums = weight_sums.setdefault(f, torch.zeros(full, device=res.device))
                    sums[r0 : r0 + rh, c0 : c0 + rw] += tile_weights[f]
                if outs[i] is None:
                    outs[i] = res.new_zeros(*res.shape[:-2], *full)
                outs[i][..., r0 : r0 + rh, c0 : c0 + rw] += res * tile_weights[f].to(res.dtype)
    for i, f in enumerate(out_factors):
        if outs[i] is not None:
            outs[i] = outs[i] / weight_sums[f].to(outs[i].dtype)
    return outs
