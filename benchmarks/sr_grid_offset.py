"""Blind x4 SR on Set5 with the low-resolution grid moved: does the model's loss to bicubic on the
protocol's blind setting come from where the kept pixels sit?

    python benchmarks/sr_grid_offset.py [--data data/eval/Set5] [--model sr4x_small]

The evaluation protocol blurs with a random Gaussian and keeps every 4th pixel starting at 0, so
low-res pixel i sits at high-res 4i. Training shrinks with centred filters (bicubic / bilinear /
area: high-res 4i + 1.5). Offsets 1 and 2 keep pixels starting there instead, close to centred.
Same kernels and noise as the protocol (seed 0, images in sorted order); Y-channel PSNR, 4-px crop.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unfoldldm.api import load_model  # noqa: E402
from unfoldldm.evaluation import metrics, protocol  # noqa: E402
from unfoldldm.evaluation.baselines import bicubic_up  # noqa: E402
from unfoldldm.pipeline import RestoreOptions, restore  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/eval/Set5")
    parser.add_argument("--model", default=None, help="an x4 checkpoint (default: the bundled sr4x_small)")
    args = parser.parse_args()
    model = load_model(args.model, task="sr4x", device="cpu")
    setting = next(s for s in protocol.settings_for("sr4x") if s.key == "blind")
    paths = protocol.list_images(args.data)
    lo, hi = protocol.SR_BLIND_SIGMA
    print(f"| offset of the kept pixels | ours (dB) | bicubic (dB) | ({len(paths)} images of {Path(args.data).name})")
    print("|---:|---:|---:|")
    for offset in (0, 1, 2):
        noise = torch.Generator().manual_seed(protocol.NOISE_SEED)
        scores = {"ours": 0.0, "bicubic": 0.0}
        for path in paths:
            clean = protocol.load_clean(path, 4)
            kernel = protocol.blind_sr_kernel(lo + (hi - lo) * torch.rand(1, generator=noise).item())
            blurred = protocol.blur(clean[None], kernel[None])[0]
            blurred = torch.nn.functional.pad(blurred, (0, offset, 0, offset), mode="replicate")[:, offset:, offset:]
            low = blurred[:, ::4, ::4]
            low = (low + setting.sigma * torch.randn(low.shape, generator=noise)).clamp(0, 1)
            with torch.no_grad():
                ours = restore(model, low[None], RestoreOptions(tile=512, overlap=32)).image[0]
            for name, image in (("ours", ours), ("bicubic", bicubic_up(low, 4))):
                image = metrics.to_uint8_range(image).float() / 255
                scores[name] += metrics.psnr(image, clean, setting.y_channel, setting.crop).item() / len(paths)
        print(f"| {offset} | {scores['ours']:.2f} | {scores['bicubic']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
