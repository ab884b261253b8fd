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

MODEL_TYPE = "UNFOLDLDM_MODEL"
STATE_TYPE = "UNFOLDLDM_STATE"
FOLDER = "unfoldldm"
BUNDLED_PREFIX = "[bundled] "
# Listed so that a pickle dropped into the folder is shown and refused with a clear message.
LISTED_SUFFIXES = {".safetensors", ".pt", ".pth", ".ckpt", ".bin"}
MAX_PIXELS = 8192 * 8192
BYTES_PER_PIXEL = 2048  # working memory of one tile pixel for `small`, measured on CPU with margin


def register_model_folder() -> None:
    """``models/unfoldldm`` (and any ``unfoldldm:`` entry of extra_model_paths.yaml)."""
    default = os.path.join(folder_paths.models_dir, FOLDER)
    if FOLDER in folder_paths.folder_names_and_paths:
        paths, _ = folder_paths.folder_names_and_paths[FOLDER]
        if default not in paths:
            paths.insert(0, default)
        folder_paths.folder_names_and_paths[FOLDER] = (paths, LISTED_SUFFIXES)
    else:
        folder_paths.folder_names_and_paths[FOLDER] = ([default], LISTED_SUFFIXES)


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


def tile_or_none(tile_size: int) -> int | None:
    return tile_size if tile_size > 0 else None
