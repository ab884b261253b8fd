"""The inference path (no autograd: weights folded per image, channels-last matrix products) computes
what the training path computes; the CPU run-time settings; hosts keep their own thread settings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from model_helpers import perturb

from unfoldldm import runtime
from unfoldldm.archs import build_model, fold
from unfoldldm.config import preset

ROOT = Path(__file__).resolve().parents[1]


def _both_paths(fn):
    """``fn()`` with autograd on (the training formulation) and off (the inference formulation)."""
    with torch.enable_grad():
        train = fn()
    with torch.inference_mode():
        infer = fn()
    return train, infer


def _close(a, b, tol=2e-5):
    scale = max(1.0, float(a.abs().max()))
    assert a.shape == b.shape
    assert (a - b).abs().max().item() <= tol * scale


@pytest.mark.parametrize("name,task", [("nano", "restore"), ("small", "restore"), ("nano", "sr4x"), ("nano", "sr2x")])
@pytest.mark.parametrize("batch,channels_last", [(1, True), (2, True), (1, False)])
def test_inference_path_matches_training_path(name, task, batch, channels_last):
    torch.manual_seed(0)
    model = perturb(build_model(preset(name, task=task)), seed=3, noise=0.05)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    y = torch.rand(batch, 3, 20, 28)
    if channels_last:
        y = y.contiguous(memory_format=torch.channels_last)
    train, infer = _both_paths(lambda: model(y, seed=1))
    for a, b in zip(train.images, infer.images):
        _close(a.detach(), b)
    for a, b in zip(train.noise_maps, infer.noise_maps):
        _close(a.detach(), b)


@pytest.mark.parametrize("batch", [1, 2])
def test_strips_of_rows_match_the_training_path(batch, monkeypatch):
    """Strips of rows (here the smallest, two rows) give the whole-map result."""
    monkeypatch.setattr(fold, "WHOLE_BYTES", 0)
    monkeypatch.setattr(fold, "STRIP_BYTES", 1)
    torch.manual_seed(0)
    model = perturb(build_model(preset("small")), seed=5, noise=0.05)
    y = torch.rand(batch, 3, 44, 36)
    assert len(fold.row_strips(torch.empty(batch, 11, 9, 128), 256)) == 6
    train, infer = _both_paths(lambda: model(y, seed=1))
    for a, b in zip(train.images, infer.images):
        _close(a.detach(), b)


def test_depthwise_rows_with_a_short_last_strip(monkeypatch):
    assert fold.row_strips(torch.empty(1, 7, 5, 4), 4) == [(0, 7)]  # small maps run whole
    monkeypatch.setattr(fold, "WHOLE_BYTES", 0)
    monkeypatch.setattr(fold, "STRIP_BYTES", 3 * 5 * 4 * 4)  # three rows of (1, 7, 5, 4) fp32
    x = torch.randn(1, 7, 5, 4)
    assert fold.row_strips(x, 4) == [(0, 3), (3, 6), (6, 7)]
    conv = torch.nn.Conv2d(4, 4, 3, padding=1, groups=4)
    weight = torch.randn(4, 4)
    with torch.inference_mode():
        whole = fold.depthwise(fold.linear(x, weight), conv)
        strips = fold.by_rows(x, 4, lambda r0, r1: fold.depthwise_rows(x, r0, r1, lambda t: fold.linear(t, weight), conv))
    _close(whole, strips, tol=1e-6)


def test_proximal_inference_on_tile_crops():
    """Tiles hand the parts strided crops of channels-last tensors."""
    torch.manual_seed(0)
    model = perturb(build_model(preset("nano")), seed=4).to(memory_format=torch.channels_last)
    c = model.config
    v = torch.rand(1, 3, 64, 80).contiguous(memory_format=torch.channels_last)[..., 16:48, 16:64]
    h = torch.randn(1, c.memory_channels, 32, 40).contiguous(memory_format=torch.channels_last)[..., 8:24, 8:32]
    z = torch.randn(1, c.latent_tokens, c.latent_dim)
    (x1, h1), (x2, h2) = _both_paths(lambda: model.refine(v, h, z))
    _close(x1.detach(), x2)
    _close(h1.detach(), h2)


def test_training_path_still_has_gradients():
    model = build_model(preset("nano")).train()
    y = torch.rand(2, 3, 16, 16)
    out = model(y, y, prior_mode="teacher")
    out.images[-1].mean().backward()
    assert all(p.grad is not None for p in model.proximal.parameters())


def test_choose_threads(monkeypatch):
    assert runtime.choose_threads(3) == 3
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert 1 <= runtime.choose_threads("auto") <= runtime.allowed_cpus()
    monkeypatch.setattr(runtime, "idle_cpus", lambda: 0.2)  # every core busy: one thread
    assert runtime.choose_threads("auto") == 1
    monkeypatch.setattr(runtime, "idle_cpus", lambda: None)  # cannot measure: all allowed cores
    assert runtime.choose_threads("auto") == runtime.allowed_cpus()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert runtime.choose_threads("auto") == torch.get_num_threads()


def test_configure_cpu_sets_threads_and_leaves_gpu_runs_alone(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert runtime.configure_cpu(1, "cpu") == 1
        assert torch.get_num_threads() == 1
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        torch.set_num_threads(before)
        assert runtime.configure_cpu("auto", "cuda") == before
    finally:
        torch.set_num_threads(before)
    assert isinstance(runtime.keep_freed_memory(), bool)


def test_short_spinning_only_before_torch_loads(monkeypatch):
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    assert runtime.prefer_short_spinning() is False  # torch is loaded here: too late, nothing set
    assert "GOMP_SPINCOUNT" not in __import__("os").environ


@pytest.mark.parametrize("folder", ["nodes", "scripts"])
def test_hosts_keep_their_thread_settings(folder):
    """ComfyUI nodes and WebUI scripts never change process-wide CPU settings (the host owns them)."""
    for path in (ROOT / folder).rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"set_num_threads|set_num_interop_threads|configure_cpu|keep_freed_memory|mallopt|"
                             r"prefer_short_spinning|OMP_WAIT_POLICY|GOMP_SPINCOUNT", text), path
