"""UnfoldLDM Restore: the whole restoration in one node."""

from __future__ import annotations

from .bridge import (
    MAX_PIXELS,
    MODEL_TYPE,
    LoadedModel,
    Progress,
    tile_or_none,
    to_bchw,
    to_comfy,
)
from .preview import save_previews
from .stage_parts import OVERLAP, TILE


class UnfoldLDMRestore:
    """Blind restoration (or super-resolution, with an x4 model) of a batch of images."""

    CATEGORY = "UnfoldLDM"
    RETURN_TYPES = ("IMAGE", "IMAGE", "MASK")
    RETURN_NAMES = ("image", "kernel", "noise_map")
    FUNCTION = "run"
    DESCRIPTION = "Restore noisy, blurry, low-resolution or compressed images without being told what is wrong."

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (MODEL_TYPE,),
                "image": ("IMAGE",),
                "stages": ("INT", {"default": 0, "min": 0, "max": 8, "tooltip": "stop after this many stages; 0 = all"}),
                "prior_steps": ("INT", {"default": 4, "min": 1, "max": 50}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFF}),
                "prior_strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 2.0, "step": 0.05}),
                "tile_size": TILE,
                "overlap": OVERLAP,
            }
        }

    def run(self, model: LoadedModel, image, stages: int, prior_steps: int, seed: int, prior_strength: float,
            tile_size: int, overlap: int):
        import torch

        from ..unfoldldm.limits import check_restore_options
        from ..unfoldldm.pipeline import RestoreOptions, restore
        from ..unfoldldm.visualize import kernel_to_image, noise_map_to_image

        tile = tile_or_none(tile_size)
        model.to_device((tile or 1024) ** 2)
        options = RestoreOptions(stages=stages or None, tile=tile, overlap=overlap, prior_steps=prior_steps,
                                 seed=seed, prior_strength=prior_strength, max_pixels=MAX_PIXELS)
        check_restore_options(options, model.model)  # e.g. a NaN strength passes ComfyUI's min/max check
        progress = Progress()
        bchw = to_bchw(image)
        result = restore(model.model, bchw, options, progress=progress, should_stop=progress.should_stop)
        kernel = kernel_to_image(result.kernel) if result.kernel is not None else torch.zeros(1, 3, 64, 64)
        noise = result.noise_map if result.noise_map is not None else torch.zeros_like(bchw[:, :1])
        compare = save_previews(bchw, "unfoldldm_before") + save_previews(result.image, "unfoldldm_after")
        return {
            "ui": {"unfoldldm_compare": compare},
            "result": (to_comfy(result.image), to_comfy(kernel), noise_map_to_image(noise)[:, 0].float().cpu()),
        }
