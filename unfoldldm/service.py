"""Restoring one picture: what the command line, the app and the WebUI scripts share.

A :class:`~unfoldldm.imageio.Picture` goes in and comes out in the same layout (greyscale stays
greyscale, alpha is kept, the bit depth is remembered; larger for a super-resolution model),
together with MGDA's estimates as pictures. The ComfyUI nodes work on ComfyUI's tensors and call
:mod:`unfoldldm.pipeline` directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import pipeline
from .imageio import Picture
from .limits import check_memory_for_image
from .pipeline import Progress, RestoreOptions, RestoreResult, ShouldStop
from .visualize import estimate_images


@dataclass
class RestoredPicture:
    """The restored picture and MGDA's estimates, ready to show or save."""

    picture: Picture  # in the input's layout (mode, bit depth); s times larger for an xs model
    kernel: Picture | None  # the estimated blur kernel, 8-bit RGB (one colour per channel)
    noise: Picture | None  # the estimated noise map, 8-bit greyscale at the input's size
    result: RestoreResult  # the tensors, the stages run and the tile finally used


def restore_picture(
    model,
    picture: Picture,
    options: RestoreOptions,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> RestoredPicture:
    """Restore ``picture`` with ``model``; refuses first an image that would not fit in memory.

    ``progress(done, total)`` is called as work completes; ``should_stop()`` is polled between
    tiles and raises :class:`~unfoldldm.errors.RestorationInterrupted` when it returns True.
    """
    height, width = picture.rgb.shape[-2:]
    check_memory_for_image(model, height, width, options.tile, picture.source)
    pixels = picture.rgb if picture.alpha is None else torch.cat([picture.rgb, picture.alpha])
    result = pipeline.restore(model, pixels[None], options, progress, should_stop)  # looked up now: patchable
    out = result.image[0]
    restored = Picture(rgb=out[:3], alpha=out[3:] if out.shape[0] == 4 else None,
                       mode=picture.mode, bit_depth=picture.bit_depth, source=picture.source)
    kernel, noise = estimate_images(result.kernel, result.noise_map)
    return RestoredPicture(
        picture=restored,
        kernel=None if kernel is None else Picture(kernel[0], None, "RGB", 8, "kernel"),
        noise=None if noise is None else Picture(noise[0].expand(3, -1, -1), None, "L", 8, "noise map"),
        result=result,
    )
