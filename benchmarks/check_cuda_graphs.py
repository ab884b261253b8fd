"""Checks on a CUDA machine that `train --cuda-graphs` trains like the eager trainer.

    python benchmarks/check_cuda_graphs.py [--preset small] [--steps 12]

For each phase, two trainers start from the same seed: one eager, one replaying a recorded CUDA
graph. Their first losses must agree (same weights, same batch: the graph's warm-up runs at
learning rate 0 leave the weights alone), and after ``--steps`` steps both must have lowered the
loss and stay within 20% of each other (the warm-up does update AdamW's moments, so later steps
differ slightly). Exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_train import random_images  # noqa: E402

from unfoldldm.training.config import config_from_dict  # noqa: E402
from unfoldldm.training.trainer import RunOptions, Trainer  # noqa: E402


def losses(preset: str, phase: int, graphs: bool, data: str, steps: int) -> tuple[list[float], bool]:
    cfg = config_from_dict({"model": {"preset": preset, "task": "restore"}, "degradation": "restore",
                            "data": {"folders": [data], "crop": 128, "batch": 32}}, Path("check.yaml"))
    trainer = Trainer(cfg, RunOptions(out=tempfile.mkdtemp(), steps=steps, data=[data], device="cuda",
                                      cuda_graphs=graphs, progress=False))
    trainer.phase = phase
    values = [float(trainer.train_step(5e-4)["total"]) for _ in range(steps)]
    return values, trainer.graphs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 1
    data = tempfile.mkdtemp()
    random_images(Path(data), 8, 256)
    ok = True
    for phase in (1, 2):
        eager, _ = losses(args.preset, phase, False, data, args.steps)
        graphed, still_graphed = losses(args.preset, phase, True, data, args.steps)
        first = abs(eager[0] - graphed[0]) <= 1e-3 * abs(eager[0])
        late = min(eager[-3:]), min(graphed[-3:])
        lowered = late[0] < eager[0] and late[1] < graphed[0]
        close = abs(late[0] - late[1]) <= 0.2 * late[0]
        passed = still_graphed and first and lowered and close
        ok &= passed
        print(f"phase {phase}: {'PASS' if passed else 'FAIL'} graphs_used={still_graphed} first_equal={first} "
              f"lowered={lowered} close={close}")
        print(f"  eager   {' '.join(f'{v:.4f}' for v in eager)}")
        print(f"  graphed {' '.join(f'{v:.4f}' for v in graphed)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
