"""Whole-step CUDA graphs: record one training step (forward, backward, clipping, AdamW, EMA) once
and replay it, so a step costs one launch instead of thousands.

Training a small network at batch 32 is bound by the CPU launching kernels, not by the GPU
(benchmarks/RESULTS_gpu.md); a replayed graph removes that cost. The step must keep to static
shapes and must not synchronise with the CPU, which the trainer arranges (see ``Trainer._update``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor


class GraphedStep:
    """Calls ``fn(*inputs)`` by copying ``inputs`` into static buffers and replaying a CUDA graph.

    The first call (and the first after :meth:`reset`) runs ``fn`` ``warmup`` times on a side
    stream, as CUDA graph capture requires (cuDNN picks its algorithms, lazy state is allocated),
    then records one call. ``fn`` must leave the model unchanged during those warm-up calls
    (the trainer sets the learning rate to zero) because they see the same batch.
    """

    def __init__(self, fn: Callable[..., Any], warmup: int = 3) -> None:
        self.fn, self.warmup = fn, warmup
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static: list[Tensor] = []
        self.outputs: Any = None

    def reset(self) -> None:
        """Forget the recorded graph (the step changed, e.g. a new training phase)."""
        self.graph, self.static, self.outputs = None, [], None

    def capture(self, inputs: list[Tensor], before_warmup: Callable[[], None]) -> None:
        """Warm up and record ``fn`` on copies of ``inputs``; ``before_warmup`` runs first (e.g. zero the lr)."""
        self.static = [x.clone() for x in inputs]
        before_warmup()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.warmup):
                self.fn(*self.static)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.outputs = self.fn(*self.static)

    def __call__(self, *inputs: Tensor) -> Any:
        if self.graph is None:
            raise RuntimeError("GraphedStep.capture must run before the first replay.")
        for buf, x in zip(self.static, inputs, strict=True):
            buf.copy_(x)
        self.graph.replay()
        return self.outputs
