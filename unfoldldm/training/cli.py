"""``python -m unfoldldm train``: argument parsing only; the work is in :mod:`.trainer`."""

from __future__ import annotations

import argparse

from ..argtypes import non_negative_int, positive_float, positive_int

DESCRIPTION = """Train an UnfoldLDM model in two phases (phase 1: teacher prior; phase 2: diffusion prior
distilled from it). The same command runs under `torchrun --nproc_per_node=N` for several GPUs.

examples:
  python -m unfoldldm train --config nano --out runs/nano --steps 200
  python -m unfoldldm train --config restore_small --out runs/restore --budget-minutes 9.5 --compile
  python -m unfoldldm train --resume runs/restore
  torchrun --nproc_per_node=4 -m unfoldldm train --config restore_small --out runs/restore4
"""


def _crop(text: str) -> int:
    value = positive_int(text)
    if value % 16 or value < 32:
        raise argparse.ArgumentTypeError(f"must be a multiple of 16 and at least 32, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.add_argument("--config", help="YAML config file, or the name of a shipped one (e.g. restore_small, nano)")
    parser.add_argument("--out", help="run folder: state, log, config and the exported model.safetensors")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its folder (other options are taken from it)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--steps", type=positive_int, help="total optimisation steps over both phases")
    length.add_argument("--budget-minutes", type=positive_float, help="train for this much wall-clock time instead")
    parser.add_argument("--phases", choices=["both", "1", "2"], default="both", help="which phases to run")
    parser.add_argument("--init", help="start from these weights (.safetensors); phase 2 alone needs a phase-1 model")
    parser.add_argument("--data", nargs="+", help="folders of clean training images (replace the config's)")
    parser.add_argument("--batch", type=positive_int, help="batch size per process (default: the config's)")
    parser.add_argument("--crop", type=_crop, help="crop size, a multiple of 16 of at least 32 (default: the config's)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (under torchrun: one GPU per process)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (pays off on long GPU runs)")
    parser.add_argument("--cuda-graphs", action="store_true",
                        help="record each training step once as a CUDA graph and replay it (one GPU, no torchrun)")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                        help="autocast precision; auto = bf16 on GPUs and on CPUs with native bf16 (AVX512-BF16/AMX)")
    parser.add_argument("--export-every-minutes", type=positive_float, metavar="M",
                        help="also save the state and export model.safetensors every M minutes (a run cut off "
                             "still leaves weights)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (the log file is still written)")
    parser.add_argument("--stop-at", type=non_negative_int, help=argparse.SUPPRESS)  # tests: stop as if interrupted


def run(args: argparse.Namespace) -> int:
    from ..errors import UnfoldLDMError
    from .config import load_train_config
    from .trainer import RunOptions, resume_run, start_run

    if args.resume:
        trainer = resume_run(args.resume, device=None if args.device == "auto" else args.device,
                             stop_at=args.stop_at, progress=not args.no_progress)
    else:
        if not args.config or not args.out:
            raise UnfoldLDMError("train needs --config and --out (or --resume RUN_DIR).")
        opts = RunOptions(
            out=args.out, steps=args.steps, budget_minutes=args.budget_minutes, phases=args.phases,
            data=args.data or [], batch=args.batch, crop=args.crop, init=args.init, compile=args.compile,
            cuda_graphs=args.cuda_graphs, precision=args.precision, export_every_minutes=args.export_every_minutes,
            device=args.device, stop_at=args.stop_at, progress=not args.no_progress,
        )
        trainer = start_run(load_train_config(args.config), opts)
    try:
        path = trainer.run()
    except KeyboardInterrupt:
        if trainer.ranks.main:
            import sys

            print(f"interrupted at step {trainer.step}; continue from the saved state with --resume {trainer.out}",
                  file=sys.stderr)
        return 130
    finally:
        trainer.ranks.close()
    if path is not None:
        print(f"exported {path} (step {trainer.step}, {trainer.elapsed:.0f} s)")
    elif trainer.ranks.main:
        print(f"stopped at step {trainer.step}; resume with --resume {trainer.out}")
    return 0
