"""``python -m unfoldldm eval``: run the evaluation protocol for checkpoints and baselines, write a report.

Only ``argparse`` is imported at module level: the top-level parser is built on every CLI call.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from ..argtypes import positive_int
from ..options import DEFAULT_OVERLAP, DEFAULT_TILE, ENSEMBLE_PASSES

DESCRIPTION = """Evaluate UnfoldLDM checkpoints on standard test sets with the protocol of docs/evaluation.md:
seeded degradations, PSNR/SSIM (RGB for denoise/deblur/jpeg, Y with a 4-px border crop for sr4x),
LPIPS-Alex (offline), seconds per image, and the baselines (degraded input / bicubic, classical
methods, --vs checkpoints) run in the same run on the same inputs. Writes report.md (tables),
results.csv (per image) and crops.png into --out."""

EPILOG = """examples:
  python -m unfoldldm eval --model restore_small.safetensors --task denoise --data data/eval/CBSD68
  python -m unfoldldm eval --model my.safetensors --vs plain.safetensors --task deblur --data DIR1 DIR2 --limit 10
  python -m unfoldldm eval --model sr4x_small --task sr4x --data data/eval/Set5 data/eval/Set14

LPIPS needs a one-time offline conversion: python -m unfoldldm.evaluation.fetch_lpips"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``eval`` options to ``parser``."""
    parser.description, parser.epilog = DESCRIPTION, EPILOG
    parser.add_argument("--model", required=True, help="the checkpoint to evaluate (.safetensors path or bundled name)")
    parser.add_argument("--vs", nargs="+", action="extend", default=[], metavar="MODEL",
                        help="more checkpoints to compare in the same run (e.g. the plain-backbone ablation)")
    parser.add_argument("--task", required=True, choices=["denoise", "deblur", "sr4x", "jpeg"], help="which protocol to run")
    parser.add_argument("--data", nargs="+", required=True, metavar="DIR",
                        help="folders of clean test images, one table each (e.g. data/eval/CBSD68)")
    parser.add_argument("--sigmas", default="15,25,50",
                        help="denoise: comma-separated AWGN levels on the 0-255 scale (0 = the clean image)")
    parser.add_argument("--noise-format", default="both", choices=["both", "float", "8bit"],
                        help="denoise: the literature's unclipped noisy input, the 8-bit one (clipped and rounded, "
                        "as a photo is stored), or both")
    parser.add_argument("--qualities", default="10,20,30,40", help="jpeg: comma-separated JPEG qualities (1-95)")
    parser.add_argument("--out", default="eval_report", help="report folder (report.md, results.csv, crops.png)")
    parser.add_argument("--results", metavar="FILE",
                        help="also put the report into this Markdown file as a section named after --out "
                        "(replaced on a re-run), e.g. benchmarks/RESULTS.md")
    parser.add_argument("--limit", type=positive_int, default=None, help="use only the first N images of each folder")
    parser.add_argument("--baselines", default="all",
                        help="all, none, or a comma list: denoise input,nlm,wavelet,ffdnet (and bm3d, only when "
                        "named: slow); deblur input,wiener,rl; sr4x bicubic; jpeg input")
    lp = parser.add_mutually_exclusive_group()
    lp.add_argument("--no-lpips", action="store_true", help="skip LPIPS")
    lp.add_argument("--lpips", action="store_true", help="require LPIPS (fail if its weights are not converted)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--dtype", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    parser.add_argument("--tile", type=int, default=DEFAULT_TILE, help="tile size in output pixels; 0 = whole image at once")
    parser.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP, help="tile overlap in output pixels")
    parser.add_argument("--stages", type=positive_int, default=None, help="stop the models after this many stages")
    parser.add_argument("--seed", type=int, default=0, help="seed of the diffusion prior")
    parser.add_argument("--prior-steps", type=positive_int, default=None,
                        help="reverse diffusion steps (default: the model's)")
    parser.add_argument("--ensemble", type=int, choices=ENSEMBLE_PASSES, default=1,
                        help="also score --model with this many orientations averaged (a row beside its own)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no tables on stdout")


def _parse_list(text: str, convert, low: float, high: float, flag: str, what: str, example: str) -> tuple:
    """Distinct comma-separated values of ``convert`` in [low, high], or a clear error naming ``flag``."""
    from ..errors import UnfoldLDMError

    try:
        values = tuple(convert(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or any(not low <= v <= high for v in values) or len(set(values)) != len(values):
        raise UnfoldLDMError(f"{flag} {text!r}: give distinct comma-separated {what} in [{low}, {high}], e.g. {example}.")
    return values


def parse_sigmas(text: str) -> tuple[float, ...]:
    """``"0,15,25,50"`` -> (0.0, 15.0, 25.0, 50.0), each in [0, 255] (0: the clean image)."""
    return _parse_list(text, float, 0, 255, "--sigmas", "noise levels", "15,25,50")


def parse_qualities(text: str) -> tuple[int, ...]:
    """``"10,20,30"`` -> (10, 20, 30), each a JPEG quality in [1, 95]."""
    return _parse_list(text, int, 1, 95, "--qualities", "JPEG qualities", "10,20,30")


def command_line(args: argparse.Namespace) -> str:
    """The command that was run: ``sys.argv`` when called as ``python -m unfoldldm eval``, else rebuilt
    from ``args`` (for in-process calls)."""
    argv = sys.argv
    program = argv[0].replace("\\", "/")
    if len(argv) > 1 and "eval" in argv[1:] and program.endswith(("unfoldldm/__main__.py", "unfoldldm")):
        return "python -m unfoldldm " + shlex.join(argv[1:])
    parts = ["python", "-m", "unfoldldm", "eval", "--model", str(args.model)]
    if args.vs:
        parts += ["--vs", *map(str, args.vs)]
    parts += ["--task", args.task, "--data", *map(str, args.data)]
    if args.task == "denoise":
        parts += ["--sigmas", args.sigmas, "--noise-format", args.noise_format]
    if args.task == "jpeg":
        parts += ["--qualities", args.qualities]
    parts += ["--out", str(args.out)]
    if getattr(args, "results", None):
        parts += ["--results", str(args.results)]
    for flag, value, default in (("--limit", args.limit, None), ("--baselines", args.baselines, "all"),
                                 ("--device", args.device, "auto"), ("--dtype", args.dtype, "auto"),
                                 ("--tile", args.tile, DEFAULT_TILE), ("--overlap", args.overlap, DEFAULT_OVERLAP),
                                 ("--stages", args.stages, None), ("--seed", args.seed, 0),
                                 ("--prior-steps", args.prior_steps, None)):
        if value != default:
            parts += [flag, str(value)]
    switches = (("--no-lpips", args.no_lpips), ("--lpips", args.lpips), ("--quiet", args.quiet))
    parts += [flag for flag, on in switches if on]
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    """Run the evaluation described by ``args``; returns the exit code (errors raise UnfoldLDMError)."""
    from .runner import evaluate

    report = evaluate(args, command_line(args))
    if not args.quiet:
        print(report.markdown_tables)
    print(f"wrote {', '.join(str(p) for p in report.files)}", file=sys.stderr)
    return 0
