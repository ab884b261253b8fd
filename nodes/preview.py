"""Small PNG previews in ComfyUI's temp folder, for the web extension (before/after, kernel)."""

from __future__ import annotations

import os
import uuid

import folder_paths
import numpy as np
import torch
from PIL import Image

MAX_SIDE = 1024


def save_previews(images: torch.Tensor, prefix: str) -> list[dict[str, str]]:
    """Save the first image of a (B, C, H, W) batch (C = 1, 3 or 4) as a temp PNG; return its UI record."""
    img = images[0].detach().float().clamp(0, 1).cpu()
    if img.shape[0] == 1:
        img = img.expand(3, -1, -1)
    pixels = (img.movedim(0, -1).numpy() * 255).round().astype(np.uint8)
    pil = Image.fromarray(pixels[..., :4] if pixels.shape[-1] == 4 else pixels[..., :3])
    pil.thumbnail((MAX_SIDE, MAX_SIDE))
    name = f"{prefix}_{uuid.uuid4().hex[:12]}.png"
    pil.save(os.path.join(folder_paths.get_temp_directory(), name), compress_level=1)
    return [{"filename": name, "subfolder": "", "type": "temp"}]
