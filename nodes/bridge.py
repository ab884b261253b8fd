"""What the nodes share: ComfyUI's model management, tensor layouts, progress and interruption."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import comfy.model_management as mm
import comfy.model_patcher
import comfy.utils
import folder_paths
import torch

from ..unfoldldm.api import LISTED_SUFFIXES
from ..unfoldldm.options import (
    DEFAULT_OVERLAP,
    DEFAULT_PRIOR_STEPS,
    DEFAULT_TILE,
    MAX_NODE_PRIOR_STEPS,
    MAX_OVERLAP,
    MAX_PRIOR_STRENGTH,
    MAX_SEED,
    MAX_TILE,
    TILE_ALIGN,
)

MODEL_TYPE = "UNFOLDLDM_MODEL"
STATE_TYPE = "UNFOLDLDM_STATE"
FOLDER = "unfoldldm"
BYTES_PER_PIXEL = 2048  # working memory of one tile pixel for `small`, measured on CPU with margin
UNTILED_SIDE = 1024  # an untiled run asks ComfyUI for the memory of a tile this large

# Node inputs shared by several nodes; defaults and bounds from unfoldldm.options. A node's inputs
# are declared before any model is connected, so prior steps show DEFAULT_PRIOR_STEPS (the shipped
# models' own; 0 is not offered, as the nodes always pass the steps on).
TILE = ("INT", {"default": DEFAULT_TILE, "min": 0, "max": MAX_TILE, "step": TILE_ALIGN,
                "tooltip": "tile side in output pixels; 0 = whole image"})
OVERLAP = ("INT", {"default": DEFAULT_OVERLAP, "min": 0, "max": MAX_OVERLAP, "step": TILE_ALIGN})
PRIOR_STEPS = ("INT", {"default": DEFAULT_PRIOR_STEPS, "min": 1, "max": MAX_NODE_PRIOR_STEPS,
                       "tooltip": "reverse diffusion steps"})
SEED = ("INT", {"default": 0, "min": 0, "max": MAX_SEED})
STRENGTH = ("FLOAT", {"default": 1.0, "min": 0.0, "max": MAX_PRIOR_STRENGTH, "step": 0.05})


def register_model_folder() -> None:
    """``models/unfoldldm`` (and any ``unfoldldm:`` entry of extra_model_paths.yaml)."""
    default = os.path.join(folder_paths.models_dir, FOLDER)
    if FOLDER in folder_paths.folder_names_and_paths:
        paths, _ = folder_paths.folder_names_and_paths[FOLDER]
        if default not in paths:
            paths.insert(0, default)
        folder_paths.folder_names_and_paths[FOLDER] = (paths, set(LISTED_SUFFIXES))
    else:
        folder_paths.folder_names_and_paths[FOLDER] = ([default], set(LISTED_SUFFIXES))


@dataclass
class LoadedModel:
    """The socket value of UNFOLDLDM_MODEL: a ModelPatcher ComfyUI can load, offload and free."""

    patcher: Any
    name: str

    @property
    def model(self):
        return self.patcher.model

    def to_device(self, tile_pixels: int) -> None:
        """Ask ComfyUI to make room for the model and one tile of work, and load the model."""
        mm.load_models_gpu([self.patcher], memory_required=tile_pixels * BYTES_PER_PIXEL)


def wrap_model(model, name: str) -> LoadedModel:
    device, offload = mm.get_torch_device(), mm.unet_offload_device()
    params = sum(p.numel() for p in model.parameters())
    if mm.should_use_bf16(device, model_params=params):
        dtype = torch.bfloat16
    elif mm.should_use_fp16(device, model_params=params):
        dtype = torch.float16
    else:
        dtype = torch.float32
    model = model.to(device=offload, dtype=dtype)
    patcher = comfy.model_patcher.ModelPatcher(model, load_device=device, offload_device=offload,
                                               size=mm.module_size(model))
    return LoadedModel(patcher=patcher, name=name)


def to_bchw(image: torch.Tensor) -> torch.Tensor:
    """ComfyUI IMAGE (B, H, W, C) -> (B, C, H, W)."""
    return image.movedim(-1, 1)


def to_comfy(image: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> ComfyUI IMAGE (B, H, W, C) float32 on the intermediate device."""
    return image.movedim(1, -1).float().contiguous().to(mm.intermediate_device())


class Progress:
    """Feeds a ComfyUI progress bar and raises ComfyUI's interruption between tiles and parts."""

    def __init__(self) -> None:
        self.bar = comfy.utils.ProgressBar(1)

    def __call__(self, done: int, total: int) -> None:
        self.bar.update_absolute(done, total)

    @staticmethod
    def should_stop() -> bool:
        mm.throw_exception_if_processing_interrupted()
        return False

    def tick(self) -> None:
        self.should_stop()
        self.bar.update(1)


def load_for_tile(model: LoadedModel, tile_size: int) -> int | None:
    """Load ``model`` with room for one tile of ``tile_size`` (0: untiled); return the tile to use."""
    tile = tile_size if tile_size > 0 else None
    model.to_device((tile or UNTILED_SIDE) ** 2)
    return tile


def estimate_outputs(kernel: torch.Tensor | None, noise_map: torch.Tensor | None, like: torch.Tensor):
    """MGDA's estimates as node outputs: the kernel picture (B, 3, S, S) and the noise map as a MASK
    (B, H, W) at the size of ``like`` (the (B, C, H, W) input); blank where the model has none."""
    from ..unfoldldm.visualize import estimate_images

    height, width = like.shape[-2:]
    if noise_map is not None:
        noise_map = noise_map[..., :height, :width]
    kernel_img, noise_img = estimate_images(kernel, noise_map)
    if kernel_img is None:
        kernel_img = torch.zeros(1, 3, 64, 64)
    if noise_img is None:
        noise_img = torch.zeros_like(like[:, :1])
    return kernel_img, noise_img[:, 0].float().cpu()
