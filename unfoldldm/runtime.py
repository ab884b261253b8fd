"""CPU run-time settings of the standalone front ends (the CLI and the app): threads and memory reuse.

Only ``python -m unfoldldm restore`` and ``python -m unfoldldm app`` call :func:`configure_cpu`.
Inside ComfyUI or the Automatic1111 WebUI the host owns these process-wide settings and nothing
here is called (the README says what to set there).

* Waiting. Every large PyTorch operation is a parallel region that ends when all of its threads
  are done. By default GNU OpenMP threads spin for a long time while they wait, so beside a busy
  program the thread that finished first keeps its core while the other one waits to be scheduled:
  two threads then run several times slower than one. :func:`prefer_short_spinning` sets
  ``GOMP_SPINCOUNT=10000`` (spin briefly, then sleep) before torch is loaded. Measured on the
  2-core machine, 512x512 at 2 threads: idle 0.49 s (0.48 s default, 0.57 s with
  ``OMP_WAIT_POLICY=PASSIVE``), beside two busy processes 1.09 s (1.75 s default, 0.95 s passive).
* Threads. ``auto`` samples how busy the allowed cores are for a moment and uses as many threads
  as there are idle cores (at least one).
* Memory. glibc returns large freed blocks to the system, so every large tensor of a restore is
  page-faulted in again (about a fifth of CPU restore time here); :func:`keep_freed_memory` makes
  it keep and reuse them instead.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported late, after the thread settings
    import torch

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
SPIN_COUNT = "10000"  # GNU OpenMP spin iterations before a waiting thread sleeps
KEEP_BYTES = 64 << 20  # larger blocks still come from mmap: tiling a 4096x4096 image stays under 3 GiB


def allowed_cpus() -> int:
    """CPUs this process may run on (affinity-aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _cpu_times() -> tuple[float, float] | None:
    """(busy, total) jiffies over all CPUs from /proc/stat, or None where it does not exist."""
    try:
        with open("/proc/stat") as f:
            fields = [float(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def idle_cpus(sample_s: float = 0.1) -> float | None:
    """How many CPUs were idle during a short sample (Linux), or None where it cannot be measured."""
    first = _cpu_times()
    if first is None:
        return None
    time.sleep(sample_s)
    second = _cpu_times()
    if second is None or second[1] <= first[1]:
        return None
    busy = (second[0] - first[0]) / (second[1] - first[1])
    return (1.0 - busy) * (os.cpu_count() or 1)


def prefer_short_spinning() -> bool:
    """Set ``GOMP_SPINCOUNT`` to :data:`SPIN_COUNT` unless the user chose a wait policy or torch is
    already loaded (OpenMP reads it once, when torch loads it); returns whether it was set."""
    if "torch" in sys.modules or any(k in os.environ for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")):
        return False
    os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    return True


def choose_threads(requested: int | str | None = "auto") -> int:
    """The thread count for ``requested``: a positive int is taken as is; ``auto``/None uses the idle
    allowed CPUs (at least one), unless OMP_NUM_THREADS is set, which is respected."""
    import torch

    if requested not in (None, "auto"):
        return max(1, int(requested))
    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    cpus = allowed_cpus()
    idle = idle_cpus()
    if idle is None:
        return cpus
    return max(1, min(cpus, int(idle + 0.5)))


def keep_freed_memory(limit: int = KEEP_BYTES) -> bool:
    """Ask glibc to serve allocations up to ``limit`` bytes from its heap and not to give freed memory
    back, so the tensors of one restore reuse the pages of the previous ones. No-op off glibc."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, limit)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2 * limit))
    except (OSError, AttributeError):
        return False


def configure_cpu(threads: int | str | None = "auto", device: str | torch.device | None = None) -> int:
    """Set torch's intra-op threads (see :func:`choose_threads`) and memory reuse for a standalone run;
    returns the thread count. Only CPU runs are tuned (``device`` None or "auto" counts as one when
    no GPU is visible)."""
    import torch

    on_cpu = device is not None and str(device).startswith("cpu")
    if device is None or str(device) == "auto":
        mps = getattr(torch.backends, "mps", None)
        on_cpu = not torch.cuda.is_available() and not (mps is not None and mps.is_available())
    if not on_cpu and threads in (None, "auto"):
        return torch.get_num_threads()
    n = choose_threads(threads)
    torch.set_num_threads(n)
    if on_cpu:
        keep_freed_memory()
    return n
