"""Competing CPU load for benchmarks: processes that keep cores busy for a bounded time.

``busy``: two single-threaded processes spinning in Python (a machine shared with other programs).
``torch``: one PyTorch job multiplying matrices on two threads (another multi-threaded PyTorch job).
Every process exits by itself after ``seconds`` and is also stopped when the context ends.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator

LOADS = ("idle", "busy", "torch")
MAX_SECONDS = 1800

_SPIN = "import time\nend = time.time() + {s}\nwhile time.time() < end:\n    pass\n"
_TORCH = (
    "import time, torch\ntorch.set_num_threads(2)\na = torch.randn(1024, 1024)\nend = time.time() + {s}\n"
    "while time.time() < end:\n    a = torch.tanh(a @ a * 1e-3)\n"
)


@contextlib.contextmanager
def cpu_load(kind: str, seconds: float = 600) -> Iterator[list[int]]:
    """Run the competing load ``kind`` (see :data:`LOADS`) for at most ``seconds``; yields the pids."""
    if kind not in LOADS:
        raise ValueError(f"load must be one of {LOADS}, got {kind!r}")
    seconds = min(float(seconds), MAX_SECONDS)
    scripts = {"idle": [], "busy": [_SPIN, _SPIN], "torch": [_TORCH]}[kind]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}  # default job
    procs = [subprocess.Popen([sys.executable, "-c", s.format(s=seconds)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env=env) for s in scripts]
    try:
        if procs:
            time.sleep(4.0 if kind == "torch" else 1.0)  # let the load start (torch import)
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
