"""The restoration pipeline: any image size and layout, tiling, dtype, OOM retry, progress, interrupt.

Stages run one after another over the whole image ("stage-major"): the image-level parts
(degradation estimate, prior latent) are computed once per stage from the centre window of the
whole image, and the local parts (gradient step, refinement) run tile by tile and are blended. With one
tile covering the image the result is exactly the untiled one.

Front ends call :func:`restore`, or the part functions (:func:`begin`, :func:`degradation_step`,
:func:`prior_step`, :func:`refine_step`) to expose each stage part on its own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .archs import StageState, UnfoldLDM
from .errors import InputImageError, RestorationInterrupted, UnfoldLDMError
from .imageio import check_image_tensor
from .limits import check_restore_options
from .options import DEFAULT_OVERLAP, MAX_PIXELS, MAX_PRIOR_STEPS, MIN_TILE, TILE_ALIGN
from .self_ensemble import BLOCK_GRID, mirrors, orientations, pad_to_grid, turn, turn_back
from .tiling import count_tiles, tiled_apply


Progress = Callable[[int, int], None]
ShouldStop = Callable[[], bool]


@dataclass
class RestoreOptions:
    """Knobs of one restoration. ``tile=None`` restores the whole image at once."""

    stages: int | None = None  # stop after this many stages (anytime restoration)
    tile: int | None = None  # tile side in output pixels; rounded down to a multiple of 16
    overlap: int = DEFAULT_OVERLAP  # tile overlap in output pixels
    prior_steps: int | None = None  # reverse diffusion steps (default: the model's)
    seed: int = 0
    prior_strength: float = 1.0  # 0 = no prior, 1 = as trained
    max_pixels: int = MAX_PIXELS  # refuse larger inputs
    ensemble: int = 1  # orientations averaged (1, 2, 4 or 8): a little better, that many times slower


@dataclass
class RestoreResult:
    """The restored image and what the model estimated about the degradation (last stage)."""

    image: Tensor  # (B, C, s*H, s*W) float32 in [0, 1], same channels as the input
    kernel: Tensor | None  # (B, 3, p, p) separable kernel estimate b a^T per channel
    noise_map: Tensor | None  # (B, 1, H, W) estimated noise std on the [0, 1] scale
    stages: int
    tile: int | None  # tile finally used (smaller than asked after an out-of-memory retry)


class _Ticker:
    """Counts work units, reports progress and raises when the caller asks to stop."""

    def __init__(self, total: int, progress: Progress | None, should_stop: ShouldStop | None) -> None:
        self.done, self.total = 0, total
        self.progress, self.should_stop = progress, should_stop

    def check(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise RestorationInterrupted("Restoration was interrupted; nothing was written.")

    def tick(self) -> None:
        self.check()
        self.done += 1
        if self.progress is not None:
            self.progress(min(self.done, self.total), self.total)


def _param(model: UnfoldLDM) -> Tensor:
    return next(model.parameters())


def _normalise_tile(tile: int | None, overlap: int) -> tuple[int | None, int]:
    """Round the tile down to the 16-pixel grid (at least 64) and the overlap to at most half a tile."""
    overlap = max(0, overlap) // TILE_ALIGN * TILE_ALIGN
    if tile is None or tile <= 0:
        return None, overlap
    tile = max(MIN_TILE, tile // TILE_ALIGN * TILE_ALIGN)
    return tile, min(overlap, tile // 2 // TILE_ALIGN * TILE_ALIGN)


def begin(model: UnfoldLDM, rgb: Tensor) -> StageState:
    """Validate ``rgb`` (B, 3, H, W) in [0, 1], move it to the model's device/dtype, build stage 0."""
    if rgb.ndim != 4 or rgb.shape[1] != 3:
        raise InputImageError(f"Expected an RGB batch of shape (B, 3, H, W), got {tuple(rgb.shape)}.")
    if getattr(model, "_channels_last", False) is False:
        model.to(memory_format=torch.channels_last)  # 2-4x faster convolutions on CPU (oneDNN)
        model._channels_last = True
    p = _param(model)
    y = rgb.to(device=p.device, dtype=p.dtype).clamp(0, 1).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        return model.prepare(y)


def degradation_step(
    model: UnfoldLDM, state: StageState, tile: int | None = None, overlap: int = DEFAULT_OVERLAP,
    before_tile: Callable[[], None] | None = None,
) -> StageState:
    """MGDA for stage ``state.stage``: image-level estimate, then the tiled gradient step."""
    tile, overlap = _normalise_tile(tile, overlap)
    k, d = state.stage, model.describe()
    with torch.inference_mode():
        deg = model.estimate_degradation(state.y, state.x, k)
        v, noise_map = tiled_apply(
            lambda y, x, h: model.gradient_update(y, x, h, deg, k),
            [(state.y, d.side("y")), (state.x, d.side("x")), (state.h, d.side("h"))],
            [d.side("v"), d.side("noise_map")], tuple(state.x.shape[-2:]), tile, overlap, before_tile,
        )
    return dataclasses.replace(state, degradation=deg, v=v, noise_map=noise_map)


def prior_step(
    model: UnfoldLDM, state: StageState, steps: int | None = None, seed: int = 0, strength: float = 1.0
) -> StageState:
    """DR-LDM for stage ``state.stage``: the image-level prior latent (seeded, deterministic)."""
    if state.v is None or state.degradation is None:
        raise UnfoldLDMError("The prior needs the degradation step's output first (run MGDA before DR-LDM).")
    if steps is not None and not 1 <= steps <= MAX_PRIOR_STEPS:
        raise UnfoldLDMError(f"prior steps must be between 1 and {MAX_PRIOR_STEPS}, got {steps}.")
    with torch.inference_mode():
        z = model.prior_latent(state.y, state.v, state.degradation, state.stage, seed=seed, steps=steps, strength=strength)
    return dataclasses.replace(state, latent=z)


def refine_step(
    model: UnfoldLDM, state: StageState, tile: int | None = None, overlap: int = DEFAULT_OVERLAP,
    before_tile: Callable[[], None] | None = None,
) -> StageState:
    """OCFormer for stage ``state.stage``: tiled refinement; returns the state of the next stage."""
    if state.v is None:
        raise UnfoldLDMError("Refinement needs the degradation step's output first (run MGDA before OCFormer).")
    tile, overlap = _normalise_tile(tile, overlap)
    z = state.latent if state.latent is not None else model.null_latent.expand(state.v.shape[0], -1, -1)
    d = model.describe()
    with torch.inference_mode():
        x, h = tiled_apply(
            lambda v, h: model.refine(v, h, z), [(state.v, d.side("v")), (state.h, d.side("h"))],
            [d.side("x"), d.side("h")], tuple(state.v.shape[-2:]), tile, overlap, before_tile,
        )
    return dataclasses.replace(state, x=x, h=h, stage=state.stage + 1, v=None, latent=None)


def with_oom_retry(run: Callable[[int | None], StageState], tile: int | None, side: int) -> tuple[StageState, int | None]:
    """Run ``run(tile)``; on out-of-memory halve the tile (or start tiling) and try again."""
    while True:
        try:
            return run(tile), tile
        except torch.cuda.OutOfMemoryError:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            current = tile if tile is not None else side
            if current <= MIN_TILE:
                raise UnfoldLDMError(
                    f"Out of memory even with {MIN_TILE}px tiles. Close other programs using the GPU, "
                    "use a smaller image, or run on the CPU."
                ) from None
            tile = max(MIN_TILE, current // 2 // TILE_ALIGN * TILE_ALIGN)


def split_channels(image: Tensor) -> tuple[Tensor, Tensor | None]:
    """(B, C, H, W) with C in 1-4 -> an RGB view and the alpha plane (or None)."""
    c = image.shape[1]
    if c == 1:
        return image.expand(-1, 3, -1, -1), None
    if c == 2:
        return image[:, :1].expand(-1, 3, -1, -1), image[:, 1:]
    if c == 3:
        return image, None
    return image[:, :3], image[:, 3:]


def merge_channels(rgb: Tensor, alpha: Tensor | None, channels: int, scale: int) -> Tensor:
    """Inverse of :func:`split_channels` for a result ``scale`` times larger (alpha is upscaled)."""
    out = rgb.mean(dim=1, keepdim=True) if channels in (1, 2) else rgb
    if alpha is None:
        return out
    if scale > 1:
        alpha = F.interpolate(alpha.float(), scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)
    return torch.cat([out, alpha.to(out)], dim=1)


def _pass_size(model: UnfoldLDM, h: int, w: int, code: int) -> tuple[int, int]:
    """Output-space size of the padded state of one self-ensemble pass over an ``h`` x ``w`` input."""
    if mirrors(code):
        h, w = -(-h // BLOCK_GRID) * BLOCK_GRID, -(-w // BLOCK_GRID) * BLOCK_GRID
    if code & 4:
        h, w = w, h
    m = model.size_multiple
    return -(-h // m) * m * model.scale, -(-w // m) * m * model.scale


def restore(
    model: UnfoldLDM,
    image: Tensor,
    options: RestoreOptions | None = None,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> RestoreResult:
    """Restore ``image`` (B, C, H, W) or (C, H, W), C in 1-4, float in [0, 1].

    Greyscale stays greyscale, alpha is kept (upscaled with the image for super-resolution).
    Same options and seed give the same output. ``progress(done, total)`` is called as work
    completes; ``should_stop()`` is polled between tiles and parts and aborts the run. With
    ``options.ensemble`` > 1 the image is restored in that many orientations and the results (and
    the kernel and noise estimates) are turned back and averaged (:mod:`.self_ensemble`).
    """
    opts = options or RestoreOptions()
    if not isinstance(image, Tensor):
        raise InputImageError(f"Expected a torch tensor image, got {type(image).__name__}.")
    if image.ndim == 3:
        image = image[None]
    if image.ndim != 4 or not 1 <= image.shape[1] <= 4:
        raise InputImageError(f"Expected an image of shape (B, C, H, W) with 1-4 channels, got {tuple(image.shape)}.")
    check_restore_options(opts, model)
    check_image_tensor(image, "input image", max_pixels=opts.max_pixels)
    n_stages = model.config.stages if opts.stages is None else opts.stages
    device = image.device
    rgb, alpha = split_channels(image.float())
    tile, overlap = _normalise_tile(opts.tile, opts.overlap)
    codes = orientations(opts.ensemble, model.scale)
    h, w, scale = rgb.shape[-2], rgb.shape[-1], model.scale
    units = sum(2 * count_tiles(_pass_size(model, h, w, code), tile, overlap) + 1 for code in codes)
    ticker = _Ticker(n_stages * units, progress, should_stop)
    total: list[Tensor | None] = [None, None, None]  # image, kernel, noise map, summed over orientations
    for code in codes:
        state = begin(model, turn(pad_to_grid(rgb) if mirrors(code) else rgb, code))
        side = max(state.x.shape[-2:])
        for _ in range(n_stages):
            state, tile = with_oom_retry(lambda t, s=state: degradation_step(model, s, t, overlap, ticker.tick), tile, side)
            ticker.check()
            state = prior_step(model, state, opts.prior_steps, opts.seed, opts.prior_strength)
            ticker.tick()
            state, tile = with_oom_retry(lambda t, s=state: refine_step(model, s, t, overlap, ticker.tick), tile, side)
        # turned back, then the grid padding of a mirrored pass cut off
        kernel = state.degradation.kernel_image() if state.degradation is not None else None
        noise_map = state.noise_map
        parts = [turn_back(state.image().clamp(0, 1).float(), code)[..., : scale * h, : scale * w],
                 None if kernel is None else turn_back(kernel.float(), code), None]
        if noise_map is not None:  # input-sized: the model's padding off, turned back, the grid padding off
            noise_map = noise_map[..., : state.out_size[0] // scale, : state.out_size[1] // scale]
            parts[2] = turn_back(noise_map.float(), code)[..., :h, :w]
        total = parts if total[0] is None else [None if t is None else t + p for t, p in zip(total, parts)]
    if len(codes) > 1:
        total = [None if t is None else t / len(codes) for t in total]
    out, kernel, noise_map = (None if t is None else t.contiguous() for t in total)
    out = merge_channels(out, alpha, image.shape[1], model.scale)
    return RestoreResult(
        image=out.to(device),
        kernel=None if kernel is None else kernel.to(device),
        noise_map=None if noise_map is None else noise_map.to(device),
        stages=n_stages,
        tile=tile,
    )
