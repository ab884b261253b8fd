"""What one call costs in operations and arithmetic: ATen operation counts, FLOPs, the conv limit.

* ``aten_events``: every ATen operation the PyTorch profiler records (views, ``empty``, ``copy_``
  and the nested calls of composite operations included; the count the speed issue quoted);
* ``dispatched``: operations seen by a ``TorchDispatchMode`` (what Python asked for), and how many
  of those computed a tensor of at least 32,768 elements: only those start a parallel region
  (``at::internal::GRAIN_SIZE``), and each region waits for every thread;
* ``flops``: ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix products);
* ``conv_gflops``: what a large 3x3 convolution reaches on this machine, the arithmetic limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

PARALLEL_GRAIN = 32768


class _Dispatched(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.total = self.large = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.total += 1
        if isinstance(out, torch.Tensor) and not func.is_view and out.numel() >= PARALLEL_GRAIN:
            self.large += 1
        return out


def aten_events(fn: Callable[[], object]) -> int:
    """ATen operations the profiler records during ``fn()``."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return sum(1 for e in prof.events() if e.name.startswith("aten::"))


def dispatched(fn: Callable[[], object]) -> tuple[int, int]:
    """(operations dispatched, of which large non-view ones) during ``fn()``."""
    mode = _Dispatched()
    with mode:
        fn()
    return mode.total, mode.large


def flops(fn: Callable[[], object]) -> float:
    """FLOPs of ``fn()`` as counted by ``FlopCounterMode``."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def conv_gflops(channels: int = 96, size: int = 256, repeats: int = 5) -> float:
    """GFLOP/s of a ``channels`` -> ``channels`` 3x3 convolution on a ``size``^2 image (channels-last,
    fp32, median of ``repeats``) with the current thread setting: FFDNet's main layer, near the
    best this machine does."""
    x = torch.randn(1, channels, size, size).contiguous(memory_format=torch.channels_last)
    w = torch.randn(channels, channels, 3, 3).contiguous(memory_format=torch.channels_last)
    work = 2 * channels * channels * 9 * size * size
    with torch.inference_mode():
        F.conv2d(x, w, padding=1)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            F.conv2d(x, w, padding=1)
            times.append(time.perf_counter() - start)
    return work / sorted(times)[len(times) // 2] / 1e9
