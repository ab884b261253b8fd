"""One node per stage part: MGDA -> DR-LDM -> OCFormer -> MGDA -> ... reproduces UnfoldLDM Restore."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from ..unfoldldm.options import MAX_PIXELS
from .bridge import (
    MODEL_TYPE,
    OVERLAP,
    PRIOR_STEPS,
    SEED,
    STATE_TYPE,
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


@dataclass
class ChainState:
    """The socket value of UNFOLDLDM_STATE: the model, the core's stage state and the input's layout."""

    loaded: LoadedModel
    stage: Any  # unfoldldm.archs.StageState
    alpha: torch.Tensor | None
    channels: int


def _start(loaded: LoadedModel, image: torch.Tensor) -> ChainState:
    from ..unfoldldm.imageio import check_image_tensor
    from ..unfoldldm.pipeline import begin, split_channels

    bchw = to_bchw(image)
    check_image_tensor(bchw, "input image", max_pixels=MAX_PIXELS)
    rgb, alpha = split_channels(bchw.float())
    return ChainState(loaded=loaded, stage=begin(loaded.model, rgb), alpha=alpha, channels=bchw.shape[1])


class UnfoldLDMDegradationEstimate:
    """MGDA: estimates the blur kernel and noise map, then takes the degradation-aware gradient step."""

    CATEGORY = "UnfoldLDM"
    RETURN_TYPES = (STATE_TYPE, "IMAGE", "MASK")
    RETURN_NAMES = ("state", "kernel", "noise_map")
    FUNCTION = "run"
    DESCRIPTION = "Stage part 1: what the model thinks is wrong with the picture (kernel, noise), and a gradient step."

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"model": (MODEL_TYPE,), "tile_size": TILE, "overlap": OVERLAP},
            "optional": {
                "image": ("IMAGE", {"tooltip": "the degraded image (first stage)"}),
                "state": (STATE_TYPE, {"tooltip": "the state of the previous stage's Refine node"}),
            },
        }

    def run(self, model: LoadedModel, tile_size: int, overlap: int, image=None, state: ChainState | None = None):
        from ..unfoldldm.errors import UnfoldLDMError
        from ..unfoldldm.pipeline import degradation_step, with_oom_retry

        tile = load_for_tile(model, tile_size)
        if state is None:
            if image is None:
                raise UnfoldLDMError("Connect an image (first stage) or the state of a previous Refine node.")
            state = _start(model, image)
        stages = state.loaded.model.config.stages
        if state.stage.stage >= stages:
            raise UnfoldLDMError(f"All {stages} stages of this model have run; the chain cannot go on.")
        progress = Progress()
        stage, _ = with_oom_retry(lambda t: degradation_step(state.loaded.model, state.stage, t, overlap, progress.tick),
                                  tile, max(state.stage.x.shape[-2:]))
        scale = state.loaded.model.scale
        observed = stage.y[..., : stage.out_size[0] // scale, : stage.out_size[1] // scale]  # unpadded input
        kernel, noise = estimate_outputs(stage.degradation.kernel_image(), stage.noise_map, observed)
        return {
            "ui": {"images": save_previews(kernel, "unfoldldm_kernel")},
            "result": (dataclasses.replace(state, stage=stage), to_comfy(kernel), noise),
        }


class UnfoldLDMDiffusionPrior:
    """DR-LDM: the compact latent diffusion prior of this stage (seeded reverse diffusion)."""

    CATEGORY = "UnfoldLDM"
    RETURN_TYPES = (STATE_TYPE,)
    RETURN_NAMES = ("state",)
    FUNCTION = "run"
    DESCRIPTION = "Stage part 2: the diffusion prior. Same seed, same output; strength 0 turns it off."

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "state": (STATE_TYPE,),
                "steps": PRIOR_STEPS,
                "seed": SEED,
                "strength": STRENGTH,
            }
        }

    def run(self, state: ChainState, steps: int, seed: int, strength: float):
        from ..unfoldldm.limits import check_prior_strength, check_seed
        from ..unfoldldm.pipeline import prior_step

        check_seed(seed)
        check_prior_strength(strength)  # NaN passes ComfyUI's min/max check
        state.loaded.to_device(0)
        Progress.should_stop()
        stage = prior_step(state.loaded.model, state.stage, steps, seed, strength)
        return (dataclasses.replace(state, stage=stage),)


class UnfoldLDMRefine:
    """OCFormer: the prior-guided transformer that restores detail; outputs the stage's image."""

    CATEGORY = "UnfoldLDM"
    RETURN_TYPES = ("IMAGE", STATE_TYPE)
    RETURN_NAMES = ("image", "state")
    FUNCTION = "run"
    DESCRIPTION = "Stage part 3: refinement. Its image is a finished restoration after this many stages."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"state": (STATE_TYPE,), "tile_size": TILE, "overlap": OVERLAP}}

    def run(self, state: ChainState, tile_size: int, overlap: int):
        from ..unfoldldm.pipeline import merge_channels, refine_step, with_oom_retry

        tile = load_for_tile(state.loaded, tile_size)
        progress = Progress()
        stage, _ = with_oom_retry(lambda t: refine_step(state.loaded.model, state.stage, t, overlap, progress.tick),
                                  tile, max(state.stage.x.shape[-2:]))
        rgb = stage.image().float().clamp(0, 1)
        alpha = None if state.alpha is None else state.alpha.to(rgb.device)
        image = merge_channels(rgb, alpha, state.channels, state.loaded.model.scale)
        return (to_comfy(image), dataclasses.replace(state, stage=stage))
