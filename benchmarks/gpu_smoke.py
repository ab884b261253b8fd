"""GPU smoke check and inference timing (run on a CUDA machine).

    python benchmarks/gpu_smoke.py

Checks that restoration on CUDA in fp32/bf16/fp16, tiled and untiled, matches the CPU fp32 result
(PSNR), then times `small` at 512x512 and 1024x1024 (median of 5, after warm-up).
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unfoldldm.archs import build_model  # noqa: E402
from unfoldldm.config import preset  # noqa: E402
from unfoldldm.pipeline import RestoreOptions, restore  # noqa: E402


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = ((a.float().cpu() - b.float().cpu()) ** 2).mean().item()
    return float("inf") if mse == 0 else 10 * math.log10(1 / mse)


def main() -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    for task in ("restore", "sr4x"):
        model = build_model(preset("small", task=task)).eval()
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.02 * torch.randn(p.shape, generator=gen))
        img = torch.rand(1, 3, 96, 80, generator=gen)
        ref = restore(model, img).image
        for dtype in (torch.float32, torch.bfloat16, torch.float16):
            gpu_model = build_model(model.config).eval()
            gpu_model.load_state_dict(model.state_dict())
            gpu_model = gpu_model.to("cuda", dtype)
            for tile in (None, 64):
                out = restore(gpu_model, img.cuda(), RestoreOptions(tile=tile)).image
                print(f"{task} cuda {str(dtype):15s} tile={tile}: shape {tuple(out.shape)} finite={bool(torch.isfinite(out).all())} PSNR vs CPU fp32 {psnr(out, ref):.1f} dB")
    model = build_model(preset("small")).eval().cuda()
    for dtype in (torch.float32, torch.bfloat16):
        model = model.to(dtype)
        for size in (512, 1024):
            img = torch.rand(1, 3, size, size, device="cuda")
            restore(model, img)
            times = []
            for _ in range(5):
                torch.cuda.synchronize()
                t = time.perf_counter()
                restore(model, img)
                torch.cuda.synchronize()
                times.append(time.perf_counter() - t)
            print(f"small {str(dtype):15s} {size}x{size}: median {statistics.median(times) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
