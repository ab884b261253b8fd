"""UnfoldLDM Restore: the whole restoration in one node."""

from __future__ import annotations

from ..unfoldldm.options import ENSEMBLE_PASSES, MAX_PIXELS, MAX_STAGES
from .bridge import (
    MODEL_TYPE,
    OVERLAP,
    PRIOR_STEPS,
    SEED,
    STRENGTH,
    TILE,
    LoadedModel,
    Progress,
    estimate_outputs,
    load_for_tile,
    to_bchw,
    to_comfy,
)
from .preview import save_previews


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
                "stages": ("INT", {"default": 0, "min": 0, "max": MAX_STAGES,
                                   "tooltip": "stop after this many stages; 0 = all"}),
                "prior_steps": PRIOR_STEPS,
                "seed": SEED,
                "prior_strength": STRENGTH,
                "tile_size": TILE,
                "overlap": OVERLAP,
            },
            "optional": {  # optional: workflows saved before it existed keep working
                "ensemble": ([str(n) for n in ENSEMBLE_PASSES], {
                    "default": "1",
                    "tooltip": "restore in this many orientations (transposed, turned, mirrored) and average "
                               "them: a little cleaner, that many times slower; 1 = off; x4 models: 1 or 2"}),
            },
        }

    def run(self, model: LoadedModel, image, stages: int, prior_steps: int, seed: int, prior_strength: float,
            tile_size: int, overlap: int, ensemble: str = "1"):
        from ..unfoldldm.limits import check_restore_options, ensemble_from_widget
        from ..unfoldldm.pipeline import RestoreOptions, restore

        tile = load_for_tile(model, tile_size)
        options = RestoreOptions(stages=stages or None, tile=tile, overlap=overlap, prior_steps=prior_steps,
                                 seed=seed, prior_strength=prior_strength, max_pixels=MAX_PIXELS,
                                 ensemble=ensemble_from_widget(ensemble))
        check_restore_options(options, model.model)  # e.g. a NaN strength passes ComfyUI's min/max check
        progress = Progress()
        bchw = to_bchw(image)
        result = restore(model.model, bchw, options, progress=progress, should_stop=progress.should_stop)
        kernel, noise = estimate_outputs(result.kernel, result.noise_map, bchw)
        compare = save_previews(bchw, "unfoldldm_before") + save_previews(result.image, "unfoldldm_after")
        return {
            "ui": {"unfoldldm_compare": compare},
            "result": (to_comfy(result.image), to_comfy(kernel), noise),
        }
