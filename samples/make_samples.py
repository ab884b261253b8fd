"""Make the sample images in this folder from scikit-image's public-domain astronaut photo.

Run from anywhere with scikit-image installed:  python samples/make_samples.py
The output is deterministic: the same files come out on every run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data, filters

HERE = Path(__file__).resolve().parent
TOP, LEFT, SIZE = 0, 96, 256  # crop around the face
NOISE_SIGMA = 25 / 255
BLUR_SIGMA = 1.2
SCALE = 4


def clean_crop() -> np.ndarray:
    """Return the 256x256 crop of the astronaut photo as float64 RGB in [0, 1]."""
    photo = data.astronaut()  # (512, 512, 3) uint8
    return photo[TOP:TOP + SIZE, LEFT:LEFT + SIZE].astype(np.float64) / 255


def add_noise(image: np.ndarray) -> np.ndarray:
    """Add white Gaussian noise (sigma 25/255, seed 0) and clip to [0, 1]."""
    rng = np.random.default_rng(0)
    return np.clip(image + rng.normal(0.0, NOISE_SIGMA, image.shape), 0, 1)


def blur_and_downscale(image: np.ndarray) -> np.ndarray:
    """Blur with a Gaussian (sigma 1.2) per channel, then keep every 4th pixel (64x64)."""
    blurred = filters.gaussian(image, sigma=BLUR_SIGMA, channel_axis=-1, mode="reflect",
                               truncate=4.0, preserve_range=True)
    return blurred[::SCALE, ::SCALE]


def save(name: str, image: np.ndarray) -> None:
    """Write float RGB in [0, 1] as an 8-bit PNG next to this script."""
    pixels = np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)
    path = HERE / name
    Image.fromarray(pixels).save(path, optimize=True)
    print(f"wrote {path} ({pixels.shape[1]}x{pixels.shape[0]}, {path.stat().st_size:,} bytes)")


def main() -> None:
    clean = clean_crop()
    save("astronaut_clean.png", clean)
    save("astronaut_noisy.png", add_noise(clean))
    save("astronaut_blurry_small.png", blur_and_downscale(clean))


if __name__ == "__main__":
    main()
