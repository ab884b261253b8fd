"""Training crops from folders of clean images, decoded once and kept on the training device."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from ..errors import InputImageError, UnfoldLDMError
from ..imageio import IMAGE_SUFFIXES, load_image


def image_paths(folder: str | Path) -> list[Path]:
    """The images under ``folder`` (recursively), sorted by path."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def split_holdout(paths: Sequence[Path], every: int) -> tuple[list[Path], list[Path]]:
    """(training, held out): every ``every``-th path (from the first) is held out; 0 holds none out."""
    if every <= 0:
        return list(paths), []
    return [p for i, p in enumerate(paths) if i % every], list(paths[::every])


class CropBank:
    """All training images as uint8 tensors on ``device``; random augmented crops in batches.

    Sampling uses its own generator, so the data position is part of the resumable state.
    """

    def __init__(self, folders: Sequence[str | Path], crop: int, device: torch.device, seed: int = 0,
                 holdout_every: int = 0) -> None:
        self.crop = crop
        self.device = device
        self.images: list[Tensor] = []
        self.sources: list[str] = []
        skipped, unreadable = 0, []
        for folder in folders:
            folder = Path(folder)
            if not folder.is_dir():
                raise UnfoldLDMError(f"{folder}: training data folder not found.")
            for path in split_holdout(image_paths(folder), holdout_every)[0]:
                try:  # one corrupt file must not abort a run: skip it with a warning, as `restore` does
                    pic = load_image(path)
                except InputImageError as exc:
                    unreadable.append(str(exc))
                    continue
                if min(pic.rgb.shape[-2:]) < crop:
                    skipped += 1
                    continue
                self.images.append((pic.rgb * 255).round().to(torch.uint8).to(device))
            self.sources.append(str(folder))
        if skipped:
            warnings.warn(f"{skipped} training image(s) smaller than the {crop}px crop were skipped.")
        if unreadable:
            shown = "; ".join(unreadable[:3]) + (f"; and {len(unreadable) - 3} more" if len(unreadable) > 3 else "")
            warnings.warn(f"{len(unreadable)} unreadable training image(s) were skipped: {shown}")
        self.unreadable = len(unreadable)
        if not self.images:
            raise UnfoldLDMError(f"No usable training images (at least {crop}x{crop}) in {list(map(str, folders))}.")
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, batch: int) -> Tensor:
        """A (batch, 3, crop, crop) float batch in [0, 1] with random flips and 90-degree rotations."""
        g, c = self.generator, self.crop
        index = torch.randint(len(self.images), (batch,), generator=g).tolist()
        crops = []
        for i in index:
            img = self.images[i]
            top = int(torch.randint(img.shape[-2] - c + 1, (1,), generator=g))
            left = int(torch.randint(img.shape[-1] - c + 1, (1,), generator=g))
            crops.append(img[:, top : top + c, left : left + c])
        x = torch.stack(crops).float().div_(255)
        # non_blocking: a plain copy to a GPU would also wait for all the work queued on it
        flip, rotate = (torch.rand(2, batch, 1, 1, 1, generator=g) < 0.5).to(self.device, non_blocking=True)
        x = torch.where(flip, x.flip(-1), x)
        return torch.where(rotate, x.rot90(1, (-2, -1)), x)
