"""Command line: ``python -m unfoldldm restore|info|train|eval|app|blend``."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

from .argtypes import bounded_float, bounded_int, non_negative_int, positive_int, threads
from .errors import UnfoldLDMError
from .options import DEFAULT_OVERLAP, DEFAULT_TILE, ENSEMBLE_PASSES, MAX_PRIOR_STEPS, MAX_PRIOR_STRENGTH, MAX_SEED

EPILOG = """examples:
  python -m unfoldldm restore photo.jpg -o restored/
  python -m unfoldldm restore "scans/*.png" -o out/ --tile 512 --device cuda
  python -m unfoldldm restore small.png -o big.png --task sr4x
  python -m unfoldldm info restore_small
"""


# Subcommands that live in their own module: each has add_arguments(parser) and run(args) -> int.
SUBCOMMANDS = [
    ("train", ".training.cli", "train a model (two phases; CPU, GPU or torchrun multi-GPU)"),
    ("eval", ".evaluation.cli", "evaluate models on standard test sets against baselines"),
    ("app", ".ui.cli", "start the standalone Gradio app"),
    ("blend", ".training.blend", "write the weighted average of two checkpoints (one continued from the other)"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m unfoldldm",
        description="UnfoldLDM: blind restoration of noisy, blurry, low-resolution or compressed photos.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    r = sub.add_parser(
        "restore", help="restore images (files, folders or glob patterns)",
        description="Restore images without being told what is wrong with them. Outputs are written "
        "atomically; existing files are never replaced unless --overwrite is given.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    r.add_argument("inputs", nargs="+", help="image files, folders (their images) or quoted glob patterns")
    r.add_argument("-o", "--output", required=True, help="output folder, or a file name when there is one input")
    r.add_argument("--task", default="restore", choices=["restore", "sr4x"],
                   help="restore: same size out; sr4x: 4x super-resolution (picks the matching default weights)")
    r.add_argument("--model", default=None, help="model name or .safetensors path (default: the task's bundled weights)")
    r.add_argument("--stages", type=positive_int, default=None, help="stop after this many stages (faster, less refined)")
    r.add_argument("--tile", type=non_negative_int, default=DEFAULT_TILE,
                   help="tile size in output pixels; 0 restores the whole image at once")
    r.add_argument("--overlap", type=non_negative_int, default=DEFAULT_OVERLAP, help="tile overlap in output pixels")
    r.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    r.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    r.add_argument("--threads", type=threads, default="auto",
                   help="CPU threads; auto uses the cores that are idle at start (one when the machine is busy)")
    r.add_argument("--seed", type=bounded_int(0, MAX_SEED), default=0,
                   help=f"seed of the diffusion prior, 0 to {MAX_SEED} (same seed, same output)")
    r.add_argument("--prior-steps", type=bounded_int(1, MAX_PRIOR_STEPS), default=None,
                   help="reverse diffusion steps (default: the model's)")
    r.add_argument("--prior-strength", type=bounded_float(0.0, MAX_PRIOR_STRENGTH), default=1.0,
                   help=f"0 to {MAX_PRIOR_STRENGTH:g}: 0 disables the learned prior, 1 as trained")
    r.add_argument("--ensemble", type=int, choices=ENSEMBLE_PASSES, default=1,
                   help="restore in this many orientations (transposed, turned, mirrored) and average: a little "
                   "cleaner (about +0.1 dB with 2, +0.2 with 8 on noisy photos), that many times slower; "
                   "x4 models: 1 or 2")
    r.add_argument("--save-estimates", action="store_true",
                   help="also write the estimated blur kernel (NAME_kernel.png) and noise map (NAME_noise.png)")
    r.add_argument("--max-pixels", type=positive_int, default=None, help="refuse inputs with more pixels than this")
    r.add_argument("--overwrite", action="store_true", help="replace existing output files (inputs included)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")

    i = sub.add_parser("info", help="show a model's config and training provenance",
                       description="Print the config, task and training provenance stored in a checkpoint.")
    i.add_argument("model", help="model name (e.g. restore_small) or path to a .safetensors file")
    i.add_argument("--json", action="store_true", help="print JSON instead of text")

    for name, module, help_text in SUBCOMMANDS:
        sub_parser = sub.add_parser(name, help=help_text, formatter_class=argparse.RawDescriptionHelpFormatter)
        importlib.import_module(module, __package__).add_arguments(sub_parser)
    return parser


def _output_paths(inputs: list[Path], output: str) -> list[Path]:
    out = Path(output)
    from .imageio import IMAGE_SUFFIXES

    if out.suffix.lower() in IMAGE_SUFFIXES and not out.is_dir():
        if len(inputs) != 1:
            raise UnfoldLDMError(f"-o {output} names one file, but there are {len(inputs)} inputs; give a folder instead.")
        return [out]
    if out.suffix[1:].isalpha() and not out.is_dir():  # out.txt: a file name, but not of an image
        if out.exists():
            raise UnfoldLDMError(f"-o {output} is an existing file, not a folder; give a folder or an image file name.")
        raise UnfoldLDMError(
            f"-o {output} looks like a file name, but '{out.suffix}' is not an image type UnfoldLDM writes "
            f"({', '.join(IMAGE_SUFFIXES)}). Give a folder, or a file name ending in .png; to write into a "
            f"folder called {out.name}, create it first."
        )
    names = [p.name for p in inputs]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise UnfoldLDMError(f"Several inputs share the file name {clashes[0]}; restore them into separate folders.")
    return [out / p.name for p in inputs]


def _check_not_inputs(inputs: list[Path], outputs: list[Path], overwrite: bool) -> None:
    resolved = {p.resolve() for p in inputs}
    for out in outputs:
        if out.resolve() in resolved and not overwrite:
            raise UnfoldLDMError(f"{out} is also an input; refusing to overwrite it. Pick another output or pass --overwrite.")


def cmd_restore(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from .api import load_model
    from .imageio import check_output_path, expand_inputs, load_image, save_image
    from .limits import check_restore_options
    from .options import MAX_PIXELS
    from .pipeline import RestoreOptions
    from .service import restore_picture

    inputs = expand_inputs(args.inputs)
    outputs = _output_paths(inputs, args.output)
    _check_not_inputs(inputs, outputs, args.overwrite)
    # Under torchrun each process restores its own share of the files, on its own GPU.
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    device = args.device
    if world > 1:
        inputs, outputs = inputs[rank::world], outputs[rank::world]
        if device == "auto" and torch.cuda.is_available():
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0')) % torch.cuda.device_count()}"
    from .runtime import configure_cpu

    configure_cpu(args.threads, device)
    model = load_model(args.model, task=args.task, device=device, dtype=None if args.dtype == "auto" else args.dtype)
    options = RestoreOptions(
        stages=args.stages, tile=args.tile or None, overlap=args.overlap, prior_steps=args.prior_steps,
        seed=args.seed, prior_strength=args.prior_strength, max_pixels=args.max_pixels or MAX_PIXELS,
        ensemble=args.ensemble,
    )
    check_restore_options(options, model)  # e.g. --stages 9 for a 3-stage model: stop now, exit 2
    failures = 0
    bar = tqdm(total=len(inputs), unit="img", disable=args.quiet or rank > 0, file=sys.stderr)
    for src, dst in zip(inputs, outputs):
        bar.set_description(src.name)
        try:
            if dst.exists() and not args.overwrite:
                raise UnfoldLDMError(f"{dst} already exists; pass --overwrite to replace it.")
            check_output_path(dst, src)  # e.g. an input .gif: say so before restoring it
            restored = restore_picture(model, load_image(src, max_pixels=options.max_pixels), options)
            try:  # the output folder is created on the first image written into it
                dst.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UnfoldLDMError(f"{dst.parent}: cannot create the output folder ({exc.strerror or exc}).") from None
            save_image(dst, restored.picture, overwrite=args.overwrite)
            if args.save_estimates:
                stem = dst.with_suffix("")
                for suffix, estimate in (("kernel", restored.kernel), ("noise", restored.noise)):
                    if estimate is not None:
                        save_image(f"{stem}_{suffix}.png", estimate, overwrite=args.overwrite)
        except UnfoldLDMError as exc:
            failures += 1
            tqdm.write(f"error: {exc}", file=sys.stderr)
        except OSError as exc:  # e.g. the output folder turned read-only: report it, go on with the rest
            failures += 1
            tqdm.write(f"error: {src}: {exc.strerror or exc} ({getattr(exc, 'filename', None) or dst})", file=sys.stderr)
        bar.update(1)
    bar.close()
    done = len(inputs) - failures
    share = f" (process {rank} of {world})" if world > 1 else ""
    print(f"restored {done} of {len(inputs)} image(s) into {args.output}{share}", file=sys.stderr)
    return 1 if failures else 0


def cmd_info(args: argparse.Namespace) -> int:
    from .api import resolve_model_path
    from .checkpoint import read_checkpoint_info

    info = read_checkpoint_info(resolve_model_path(args.model))
    record = {
        "path": str(info.path),
        "task": info.task,
        "scale": info.config.scale,
        "package_version": info.metadata.get("package_version"),
        "weights": info.metadata.get("weights"),
        "tensors": info.num_tensors,
        "config": info.config.to_dict(),
        "provenance": info.provenance,
    }
    if args.json:
        print(json.dumps(record, indent=2, default=str))
        return 0
    for key in ("path", "task", "scale", "package_version", "weights", "tensors"):
        print(f"{key:16s} {record[key]}")
    print("config")
    for key, value in record["config"].items():
        print(f"  {key:20s} {value}")
    print("provenance")
    for key, value in sorted(record["provenance"].items()) or [("(none)", "")]:
        print(f"  {key:20s} {value}")
    return 0


def _plain_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings as one line for people ("warning: ..."), without our source file and line."""
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    import warnings

    previous, warnings.formatwarning = warnings.formatwarning, _plain_warning
    try:
        return _main(argv)
    finally:
        warnings.formatwarning = previous  # main() may run inside another program (tests, a host)


def _main(argv: list[str] | None) -> int:
    if (sys.argv[1:] if argv is None else argv)[:1] in (["restore"], ["app"]):
        from .runtime import prefer_short_spinning

        prefer_short_spinning()  # before anything imports torch
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        modules = {name: module for name, module, _ in SUBCOMMANDS}
        if args.command in modules:
            return importlib.import_module(modules[args.command], __package__).run(args)
        return {"restore": cmd_restore, "info": cmd_info}[args.command](args)
    except UnfoldLDMError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; no partial files were left behind", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        sys.stdout = open(os.devnull, "w")
        return 0


if __name__ == "__main__":
    sys.exit(main())
