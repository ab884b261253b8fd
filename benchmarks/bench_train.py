"""Training throughput: steps per second and peak memory of one optimisation step.

    python benchmarks/bench_train.py                                  # CPU: nano and small, batch 8 of 64x64
    python benchmarks/bench_train.py --presets small --precisions fp32,bf16 --batch 8 --crop 96 --kinds phase1,phase2
    python benchmarks/bench_train.py --device cuda                    # GPU: batch 32 of 128x128, bf16 autocast
    python benchmarks/bench_train.py --device cuda --modes eager,graphs,compile,compile+graphs

UnfoldLDM's phases are measured through the trainer itself (``Trainer.train_step``: crops from the
on-device bank, degradations synthesised on the device, losses, AdamW, EMA), so the numbers are
what `python -m unfoldldm train` gets. Phase 1 drives the stages with the teacher prior; phase 2
runs the student's reverse diffusion on two degradations of the same crops at once. A plain
Restormer-style network of equal width, trained on the same degraded batches with a Charbonnier
loss, is the baseline measured in the same run.

Modes: ``eager``; ``compile`` (torch.compile of the network); ``graphs`` (each step recorded
once as a CUDA graph and replayed, `train --cuda-graphs`); ``compile+graphs``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unfoldldm import losses  # noqa: E402
from unfoldldm.archs.plain_restormer import PlainRestormer  # noqa: E402
from unfoldldm.config import preset  # noqa: E402
from unfoldldm.degradations import DegradationConfig, degrade  # noqa: E402
from unfoldldm.training.config import config_from_dict  # noqa: E402
from unfoldldm.training.trainer import RunOptions, Trainer  # noqa: E402


def random_images(folder: Path, count: int, size: int) -> None:
    """``count`` random-texture PNGs of ``size`` px: enough data for a speed test."""
    from PIL import Image

    gen = torch.Generator().manual_seed(0)
    for i in range(count):
        low = torch.rand(3, size // 8, size // 8, generator=gen)
        img = torch.nn.functional.interpolate(low[None], size=(size, size), mode="bicubic")[0].clamp(0, 1)
        Image.fromarray((img.permute(1, 2, 0) * 255).byte().numpy()).save(folder / f"{i}.png")


def bench_trainer(preset_name: str, phase: int, mode: str, data: str, batch: int, crop: int, device: str,
                  precision: str = "auto") -> Trainer:
    """A ``Trainer`` of a restoration run with model ``preset_name`` on the images in ``data`` (the
    shipped configs' degradations and losses), set to ``phase``."""
    cfg = config_from_dict({"model": {"preset": preset_name, "task": "restore"}, "degradation": "restore",
                            "data": {"folders": [data], "crop": crop, "batch": batch}}, Path(f"bench_{preset_name}.yaml"))
    opts = RunOptions(out=tempfile.mkdtemp(prefix="bench_train_"), steps=10**9, data=[data], device=device,
                      compile="compile" in mode, cuda_graphs="graphs" in mode, progress=False, precision=precision)
    trainer = Trainer(cfg, opts)
    trainer.phase = phase
    return trainer


def trainer_step(preset_name: str, phase: int, mode: str, data: str, batch: int, crop: int, device: str,
                 precision: str = "auto"):
    """``Trainer.train_step`` of :func:`bench_trainer`, and the model's size in millions."""
    trainer = bench_trainer(preset_name, phase, mode, data, batch, crop, device, precision)
    params = sum(p.numel() for p in trainer.model.parameters()) / 1e6
    return (lambda: trainer.train_step(1e-4)["total"]), params


def plain_step(width: int, mode: str, batch: int, crop: int, device: torch.device):
    """The baseline: a plain Restormer on the same kind of degraded batches, eager or compiled."""
    net = PlainRestormer(width=width).to(device).to(memory_format=torch.channels_last).train()
    target = torch.compile(net) if "compile" in mode else net
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, foreach=True)
    clean = torch.rand(batch, 3, crop, crop, device=device)
    gen = torch.Generator(device=device).manual_seed(0)
    deg_cfg = DegradationConfig.preset("restore")

    def step():
        y = degrade(clean, deg_cfg, gen).y
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = losses.charbonnier(target(y), clean)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0, foreach=True)
        opt.step()
        return loss.detach()

    return step, sum(p.numel() for p in net.parameters()) / 1e6


def measure(step, device: torch.device, warmup: int, steps: int, repeats: int) -> tuple[float, float, float]:
    """(median steps/s over ``repeats`` runs of ``steps`` steps, peak GPU GiB, last loss)."""
    if device.type == "cuda":  # before the warm-up: a CUDA graph takes its memory when it is recorded
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    rates, loss = [], float("nan")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            out = step()
        loss = float(out)  # waits for the device
        rates.append(steps / (time.perf_counter() - start))
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return statistics.median(rates), peak, loss


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
    parser.add_argument("--modes", default="eager", help="comma list of eager, compile, graphs, compile+graphs")
    parser.add_argument("--kinds", default="plain,phase1,phase2", help="which of plain, phase1, phase2 to run")
    parser.add_argument("--precisions", default="auto",
                        help="comma list of auto, fp32, bf16 (autocast; bf16 needs a GPU or a CPU with native bf16)")
    parser.add_argument("--data", help="a folder of training images (default: random textures)")
    parser.add_argument("--profile", action="store_true", help="print the top operators of 5 steps of each case")
    args = parser.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    batch = args.batch or (32 if gpu else 8)
    crop = args.crop or (128 if gpu else 64)
    steps = args.steps or (20 if gpu else 3)
    data = args.data
    if data is None:
        data = tempfile.mkdtemp(prefix="bench_train_data_")
        random_images(Path(data), 8, max(2 * crop, 160))
    name = torch.cuda.get_device_name() if gpu else "CPU"
    print(f"# training throughput on {name}, batch {batch} of {crop}x{crop}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads\n")
    print("| network | params | phase | mode | precision | steps/s | training Mpixel/s | peak GPU GiB | loss after |")
    print("|---|---|---|---|---|---|---|---|---|")
    # phase 2 trains on two degradations of each crop: twice the pixels per step
    pixels = {"plain": batch * crop * crop, "phase1": batch * crop * crop, "phase2": 2 * batch * crop * crop}
    for preset_name in args.presets.split(","):
        width = preset(preset_name).width
        for kind in args.kinds.split(","):
            for mode, precision in ((m, p) for m in args.modes.split(",") for p in args.precisions.split(",")):
                label = f"plain Restormer w{width}" if kind == "plain" else preset_name
                if kind == "plain" and ("graphs" in mode or precision != args.precisions.split(",")[0]):
                    continue  # the baseline is measured as a user would train it: eager or compiled
                try:
                    if kind == "plain":
                        step, params = plain_step(width, mode, batch, crop, device)
                    else:
                        step, params = trainer_step(preset_name, int(kind[-1]), mode, data, batch, crop, args.device,
                                                    precision)
                    rate, peak, loss = measure(step, device, warmup=3 if mode != "eager" else 2, steps=steps,
                                               repeats=args.repeats)
                except Exception as exc:  # report and go on: one failing case should not hide the rest
                    print(f"| {label} | | {kind} | {mode} | {precision} | failed: {type(exc).__name__}: "
                          f"{str(exc)[:160]} | | | |", flush=True)
                    continue
                print(f"| {label} | {params:.2f}M | {kind} | {mode} | {precision} | {rate:.2f} "
                      f"| {rate * pixels[kind] / 1e6:.3f} | {peak:.2f} | {loss:.4f} |", flush=True)
                if args.profile:
                    profile(step, device)
                del step
                if gpu:
                    torch.cuda.empty_cache()
                torch._dynamo.reset()


if __name__ == "__main__":
    main()
