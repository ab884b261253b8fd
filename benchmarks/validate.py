"""Score checkpoints on the held-out validation split of the training images (never the test sets).

    python benchmarks/validate.py MODEL.safetensors [MORE.safetensors ...] --data data/train/bsds400
    python benchmarks/validate.py sr4x_small MORE.safetensors --task sr4x --data data/train/bsds400

The split is the one training uses with ``data.holdout_every`` (every n-th image by sorted path,
default 20: 20 of the 400 BSDS images). Restoration (default): each held-out image is centre-cropped
and degraded in the settings the restoration model is meant for, all seeded: 8-bit Gaussian noise
(clipped, rounded), Pillow JPEG, the evaluation's blur kernels with 1% noise, and the clean image
itself (which must come back unchanged); prints mean PSNR (RGB) per setting and model, and the mean
of each model's noise map (x255) beside the true sigma. ``--task sr4x``: the evaluation's two x4
settings (bicubic, blind) on the whole held-out images, Y-channel PSNR with a 4-pixel border crop,
bicubic upsampling as the input column. This is what A/B runs of training recipes are scored on.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unfoldldm.api import load_model  # noqa: E402
from unfoldldm.degradations import blur  # noqa: E402
from unfoldldm.evaluation.metrics import psnr, to_uint8_range  # noqa: E402
from unfoldldm.evaluation.protocol import bicubic_up, deblur_kernels, load_clean, samples, settings_for  # noqa: E402
from unfoldldm.pipeline import restore  # noqa: E402
from unfoldldm.training.data import image_paths, split_holdout  # noqa: E402

SETTINGS = ("clean", "noise5", "noise15", "noise25", "noise50", "jpeg10", "jpeg30", "blur")


def _jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    pixels = (x.permute(1, 2, 0) * 255).round().byte().numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return torch.from_numpy(np.array(Image.open(buffer))).permute(2, 0, 1).float() / 255


def degraded_inputs(clean: list[torch.Tensor], setting: str) -> tuple[list[torch.Tensor], float]:
    """The seeded inputs of ``setting`` for ``clean`` images, and the true noise sigma (x255)."""
    gen = torch.Generator().manual_seed(0)
    out, sigma = [], 0.0
    kernels = deblur_kernels()
    for i, x in enumerate(clean):
        if setting == "clean":
            y = x
        elif setting.startswith("noise"):
            sigma = float(setting[5:])
            y = ((x + sigma / 255 * torch.randn(x.shape, generator=gen)).clamp(0, 1) * 255).round() / 255
        elif setting.startswith("jpeg"):
            y = _jpeg(x, int(setting[4:]))
        else:
            y = blur(x[None], kernels[i % 8][None])[0] + 0.01 * torch.randn(x.shape, generator=gen)
            y = (y.clamp(0, 1) * 255).round() / 255
        out.append(y)
    return out, sigma


def sr_rows(models: list[tuple[str, torch.nn.Module]], paths: list[Path]) -> list[str]:
    """Table rows of the evaluation's x4 settings on ``paths``: bicubic, then each model (Y-PSNR)."""
    rows = []
    for setting in settings_for("sr4x"):
        cases = list(samples(setting, paths))

        def score(outputs: list[torch.Tensor]) -> str:
            values = [psnr(to_uint8_range(out).float() / 255, case.clean, setting.y_channel, setting.crop).item()
                      for out, case in zip(outputs, cases)]
            return f"{statistics.mean(values):.2f}"

        row = [score([bicubic_up(case.degraded, setting.scale) for case in cases])]
        row += [score([restore(model, case.degraded[None]).image[0] for case in cases]) for _, model in models]
        rows.append(f"| x4 {setting.key} | " + " | ".join(row) + " |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--data", required=True, help="the training folder (its held-out split is used)")
    parser.add_argument("--holdout-every", type=int, default=20)
    parser.add_argument("--crop", type=int, default=192, help="centre crop side")
    parser.add_argument("--settings", default=",".join(SETTINGS), help="restoration settings (comma list)")
    parser.add_argument("--task", choices=("restore", "sr4x"), default="restore")
    args = parser.parse_args()
    held = split_holdout(image_paths(args.data), args.holdout_every)[1]
    models = [(Path(m).stem if Path(m).parent.name in ("weights", "") else f"{Path(m).parent.name}/{Path(m).stem}",
               load_model(m, task=args.task, device="cpu")) for m in args.models]
    header = ["| setting | input | " + " | ".join(name for name, _ in models) + " |", "|---|---:|" + "---:|" * len(models)]
    if args.task == "sr4x":
        print(f"# validation: {len(held)} held-out images of {args.data} (every {args.holdout_every}th), "
              "whole images, mean Y-PSNR dB (4-pixel border crop); input = bicubic upsampling\n")
        print("\n".join(header + sr_rows(models, held)))
        return
    clean = []
    for path in held:
        x = load_clean(path)
        top, left = (x.shape[-2] - args.crop) // 2, (x.shape[-1] - args.crop) // 2
        clean.append(x[:, top:top + args.crop, left:left + args.crop].contiguous())
    settings = args.settings.split(",")
    print(f"# validation: {len(clean)} held-out images of {args.data} (every {args.holdout_every}th), "
          f"centre {args.crop}x{args.crop}, mean PSNR dB (RGB) / mean noise map x255\n")
    print("\n".join(header))
    for setting in settings:
        inputs, sigma = degraded_inputs(clean, setting)
        row = [f"{statistics.mean(psnr(y, x).item() for x, y in zip(clean, inputs)):.2f}"]
        for _, model in models:
            scores, noise = [], []
            for x, y in zip(clean, inputs):
                result = restore(model, y[None])
                scores.append(psnr(to_uint8_range(result.image[0]).float() / 255, x).item())
                if result.noise_map is not None:
                    noise.append(result.noise_map.mean().item() * 255)
            cell = f"{statistics.mean(scores):.2f}"
            if noise and (setting.startswith("noise") or setting == "clean"):
                cell += f" / {statistics.mean(noise):.1f}"
            row.append(cell)
        label = setting + (f" (σ={sigma:g})" if sigma else "")
        print(f"| {label} | " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
