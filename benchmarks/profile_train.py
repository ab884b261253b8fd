"""Where one training step of UnfoldLDM spends its device time: by part of the model, by operator,
by kernel. Measured through ``Trainer.train_step`` in eager mode (a CUDA graph replays the same
kernels, so the device time per part carries over to ``--cuda-graphs``).

    python benchmarks/profile_train.py --device cuda --preset small --phases 1,2

Parts are profiler ranges around the forward calls (data + degradation synthesis, MGDA estimator,
noise map, decomposed operator and its adjoint, holistic operator, prior, OCFormer, losses) and the
update (clipping, AdamW, EMA). Backward time is the rest; the operator and kernel tables break it
down.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile, record_function

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_train import bench_trainer, random_images  # noqa: E402

from unfoldldm.archs import operators  # noqa: E402
from unfoldldm.training import trainer as trainer_module  # noqa: E402

STEPS = 5
GPU = True  # set from --device


def _scoped(name: str, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with record_function(f"part:{name}"):
            return fn(*args, **kwargs)

    return wrapper


def annotate(trainer) -> None:
    """Wrap the model's parts and the trainer's stages in profiler ranges named ``part:...``."""
    model = trainer.model
    step = model.gradient_step
    for name, obj, attr in [
        ("data+degrade", trainer, "_batch"),
        ("mgda.estimator", step.estimator, "forward"),
        ("mgda.noise_map", step.noise, "forward"),
        ("mgda.holistic_phi", step.holistic, "phi"),
        ("mgda.holistic_psi", step.holistic, "psi"),
        ("ocformer", model.proximal, "forward"),
        ("prior.teacher", model.prior, "teacher_latent"),
        ("prior.sample", model.prior, "sample"),
        ("update.clip_grad", torch.nn.utils, "clip_grad_norm_"),
        ("update.adamw", trainer.optimizer, "step"),
        ("update.ema", trainer, "_update_ema"),
    ]:
        setattr(obj, attr, _scoped(name, getattr(obj, attr)))
    for name in ("decomposed_forward", "decomposed_adjoint"):
        setattr(operators, name, _scoped(f"mgda.{name}", getattr(operators, name)))
    trainer_module.restoration_loss = _scoped("losses", trainer_module.restoration_loss)


def device_time(event) -> float:
    """Device (GPU) time of a profiler row in microseconds, across torch versions (CPU time on a CPU)."""
    for attr in (("device_time_total", "cuda_time_total") if GPU else ("cpu_time_total",)):
        if hasattr(event, attr):
            return float(getattr(event, attr))
    return 0.0


def self_device_time(event) -> float:
    for attr in (("self_device_time_total", "self_cuda_time_total") if GPU else ("self_cpu_time_total",)):
        if hasattr(event, attr):
            return float(getattr(event, attr))
    return 0.0


def report(prof, steps: int) -> None:
    # Kineto lists each range and operator on the host side (its device time is that of the kernels
    # it launched) and again on the device side; count host-side rows only, so nothing counts twice.
    rows = prof.key_averages()
    host = [e for e in rows if getattr(e, "device_type", DeviceType.CPU) == DeviceType.CPU]
    kernels = [e for e in rows if getattr(e, "device_type", DeviceType.CPU) != DeviceType.CPU
               and not e.key.startswith("part:")]
    ops = [e for e in host if not e.key.startswith("part:")]
    total = sum(self_device_time(e) for e in ops) / steps
    print(f"device time per step: {total / 1000:.2f} ms (sum over operators)\n")
    print("| part (forward ranges; nested ones also count in their parent) | device ms/step | share |")
    print("|---|---:|---:|")
    for e in sorted((e for e in host if e.key.startswith("part:")), key=device_time, reverse=True):
        ms = device_time(e) / steps / 1000
        print(f"| {e.key[5:]} | {ms:.2f} | {100 * ms * 1000 / max(total, 1e-9):.1f}% |")
    for title, table in (("operator", ops), ("kernel", kernels)):
        if not table:
            continue
        print(f"\n| {title} (self device time) | calls/step | device ms/step | share |")
        print("|---|---:|---:|---:|")
        for e in sorted(table, key=self_device_time, reverse=True)[:30]:
            ms = self_device_time(e) / steps / 1000
            if ms <= 0:
                break
            print(f"| {e.key[:110]} | {e.count / steps:.0f} | {ms:.3f} | {100 * ms * 1000 / max(total, 1e-9):.1f}% |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--phases", default="1,2")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--crop", type=int, default=None)
    parser.add_argument("--data", help="a folder of training images (default: random textures)")
    args = parser.parse_args()
    device = torch.device(args.device)
    global GPU
    gpu = GPU = device.type == "cuda"
    batch, crop = args.batch or (32 if gpu else 8), args.crop or (128 if gpu else 64)
    data = args.data
    if data is None:
        import tempfile

        data = tempfile.mkdtemp(prefix="profile_train_data_")
        random_images(Path(data), 8, max(2 * crop, 160))
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if gpu else [])
    for phase in (int(p) for p in args.phases.split(",")):
        trainer = bench_trainer(args.preset, phase, "eager", data, batch, crop, args.device)
        params = sum(p.numel() for p in trainer.model.parameters()) / 1e6
        annotate(trainer)

        def step(trainer=trainer):
            return trainer.train_step(1e-4)["total"]

        for _ in range(3):
            step()
        if gpu:
            torch.cuda.synchronize()
        with profile(activities=activities) as prof:
            for _ in range(STEPS):
                step()
            if gpu:
                torch.cuda.synchronize()
        print(f"## {args.preset} ({params:.2f}M), phase {phase}, batch {batch} of {crop}x{crop}, {device}\n")
        report(prof, STEPS)


if __name__ == "__main__":
    main()
