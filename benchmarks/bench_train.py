"""Training throughput: steps per second and peak memory of one optimisation step.

    python benchmarks/bench_train.py                     # CPU: nano and small, batch 8 of 64x64
    python benchmarks/bench_train.py --device cuda       # GPU: batch 32 of 128x128, bf16 autocast
    python benchmarks/bench_train.py --device cuda --compile

Each step synthesises a degraded batch on the device (the training data path), runs the model with
deep-supervised losses, and takes an AdamW step. Phase 1 drives the stages with the teacher prior;
phase 2 runs the student's reverse diffusion on two degradations of the same images at once (KD +
invariance). The plain Restormer-style network of equal width is measured in the same run as the
baseline (DESIGN 2.7: about 6 steps/s eager at width 48 on an H200; `small` should reach 30).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unfoldldm import losses  # noqa: E402
from unfoldldm.archs import build_model  # noqa: E402
from unfoldldm.archs.plain_restormer import PlainRestormer  # noqa: E402
from unfoldldm.config import preset  # noqa: E402
from unfoldldm.degradations import DegradationConfig, degrade  # noqa: E402


def make_step(net, kind: str, batch: int, crop: int, device: torch.device, amp: bool):
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    clean = torch.rand(batch, 3, crop, crop, device=device)
    gen = torch.Generator(device=device).manual_seed(0)
    deg_cfg = DegradationConfig.preset("restore")
    weights = losses.LossWeights()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()

    def step() -> float:
        y = degrade(clean, deg_cfg, gen).y
        with autocast:
            if kind == "plain":
                loss = losses.charbonnier(net(y), clean)
            elif kind == "phase1":
                out = net(y, clean, prior_mode="teacher")
                loss = losses.restoration_loss(out, clean, y, weights)["total"]
            else:
                y2 = degrade(clean, deg_cfg, gen).y
                out = net(torch.cat([y, y2]), torch.cat([clean, clean]), prior_mode="distill")
                terms = losses.restoration_loss(out, torch.cat([clean, clean]), torch.cat([y, y2]), weights)
                halves = [z.chunk(2) for z in out.latents]
                loss = (terms["total"] + weights.kd * losses.kd_loss(out.latents, out.teacher_latents)
                        + weights.invariance * losses.invariance_loss([a for a, _ in halves], [b for _, b in halves]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        return loss.item()

    return step


def measure(step, device: torch.device, warmup: int, steps: int, repeats: int) -> tuple[float, float]:
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        rates.append(steps / (time.perf_counter() - start))
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return statistics.median(rates), peak


def profile(step, device: torch.device) -> None:
    """Print where 5 steps spend their time, by operator (device time on a GPU)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    step()
    with torch_profile(activities=activities) as prof:
        for _ in range(5):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=sort, row_limit=25, max_name_column_width=60))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--presets", default="nano,small")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--crop", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile'd models")
    parser.add_argument("--kinds", default="plain,phase1,phase2", help="which of plain, phase1, phase2 to run")
    parser.add_argument("--profile", action="store_true", help="print the top operators of 5 steps of each case")
    args = parser.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    batch = args.batch or (32 if gpu else 8)
    crop = args.crop or (128 if gpu else 64)
    steps = args.steps or (20 if gpu else 3)
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name() if gpu else "CPU"
    print(f"# training throughput on {name}, batch {batch} of {crop}x{crop}, torch {torch.__version__}"
          f"{', bf16 autocast' if gpu else ''}\n")
    print("| network | params | phase | compiled | steps/s | peak GPU GiB |")
    print("|---|---|---|---|---|---|")
    for preset_name in args.presets.split(","):
        cfg = preset(preset_name)
        cases = [("plain", lambda cfg=cfg: PlainRestormer(width=cfg.width)),
                 ("phase1", lambda cfg=cfg: build_model(cfg)), ("phase2", lambda cfg=cfg: build_model(cfg))]
        for kind, factory in [c for c in cases if c[0] in args.kinds.split(",")]:
            for compiled in ([False, True] if args.compile else [False]):
                net = factory().to(device).to(memory_format=torch.channels_last).train()
                params = sum(p.numel() for p in net.parameters()) / 1e6
                target = torch.compile(net) if compiled else net
                try:
                    rate, peak = measure(make_step(target, kind, batch, crop, device, gpu), device,
                                         warmup=3 if compiled else 2, steps=steps, repeats=args.repeats)
                except Exception as exc:  # report and go on: one failing case should not hide the rest
                    print(f"| {kind} w{cfg.width} | {params:.2f}M | {kind} | {compiled} | failed: {type(exc).__name__}: {str(exc)[:80]} | |")
                    continue
                label = f"plain Restormer w{cfg.width}" if kind == "plain" else f"{preset_name}"
                print(f"| {label} | {params:.2f}M | {kind} | {compiled} | {rate:.2f} | {peak:.2f} |", flush=True)
                if args.profile:
                    profile(make_step(target, kind, batch, crop, device, gpu), device)
                del net, target
                if gpu:
                    torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
