"""Which smaller network would meet the CPU speed targets? Candidate configs timed against FFDNet.

    python benchmarks/bench_presets.py                       # idle, 2 threads, 512 and 1024
    python benchmarks/bench_presets.py --threads 1 --out benchmarks/RESULTS_presets.md

Speed does not depend on the weights, so each candidate (a change of the ``small`` preset) runs with
random weights, untiled fp32, through the same ``restore()`` as the bundled model; the bundled
``restore_small`` runs too, as the reference. Everything alternates in one process (bundled,
candidates, FFDNet, bundled, ...) with the CLI's process settings, and the median of ``--repeats``
runs after a warm-up is reported, with FLOPs and parameters. A candidate's quality is unknown until it
is trained: this only says which ones are worth the training run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_inference  # noqa: E402  (sets the CLI's OpenMP spinning before torch loads)
import op_stats  # noqa: E402
import torch  # noqa: E402

# name -> changes of the `small` preset
CANDIDATES: dict[str, dict] = {
    "blocks 1-1-1": {"blocks": (1, 1, 1)},
    "ffn x1.5": {"ffn_expansion": 1.5},
    "blocks 1-1-1 + ffn x1.5": {"blocks": (1, 1, 1), "ffn_expansion": 1.5},
    "width 24": {"width": 24},
    "2 stages": {"stages": 2},
}


def build(changes: dict) -> torch.nn.Module:
    from unfoldldm.archs import build_model
    from unfoldldm.config import preset

    torch.manual_seed(0)
    return build_model(preset("small", task="restore", **changes)).eval()


def main(argv: list[str] | None = None) -> int:
    from unfoldldm.pipeline import restore
    from unfoldldm.runtime import keep_freed_memory

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="512,1024", help="comma-separated square image sizes")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5, help="alternating timed runs per case (median reported)")
    p.add_argument("--only", help="comma-separated candidate names (default: all)")
    p.add_argument("--out", type=Path, help="also write the Markdown report here")
    args = p.parse_args(argv)
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    names = list(CANDIDATES) if not args.only else [n.strip() for n in args.only.split(",")]
    models = {"bundled small": bench_inference.load_ours()} | {n: build(CANDIDATES[n]) for n in names}
    net = bench_inference.load_ffdnet()
    params = {n: sum(t.numel() for t in m.parameters()) for n, m in (models | {"FFDNet": net}).items() if m is not None}
    lines = [f"# Candidate networks against FFDNet ({args.threads} thread(s), idle, median of {args.repeats})", "",
             f"{json.dumps(bench_inference.machine_info())}", "",
             "| network | size | s | / bundled | / FFDNet | GFLOPs | GFLOP/s | parameters |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for size in [int(s) for s in args.sizes.split(",")]:
        image = torch.rand(1, 3, size, size)
        fns = {n: (lambda m=m: restore(m, image)) for n, m in models.items()}
        if net is not None:
            sigma = torch.full((1,), bench_inference.SIGMA)
            fns["FFDNet"] = lambda: net(image, sigma)
        with torch.inference_mode():
            flops = {n: op_stats.flops(fn) for n, fn in fns.items()}
            medians = bench_inference.alternate(fns, args.repeats)
        for n, t in medians.items():
            vs_ff = f"{t / medians['FFDNet']:.2f}" if "FFDNet" in medians else "-"
            lines.append(f"| {n} | {size} | {t:.3f} | {t / medians['bundled small']:.2f} | {vs_ff} | "
                         f"{flops[n] / 1e9:.1f} | {flops[n] / t / 1e9:.0f} | {params[n]:,} |")
        print("\n".join(lines[-len(medians):]), file=sys.stderr, flush=True)
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
