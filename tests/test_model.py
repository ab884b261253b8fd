"""The model: operator adjoints, shapes per task and config, the parts framework, losses, overfitting."""

from __future__ import annotations

import pytest
import torch
from model_helpers import perturb

from unfoldldm import losses
from unfoldldm.archs import build_model
from unfoldldm.archs import operators as ops
from unfoldldm.archs.blocks import haar_dwt, haar_idwt
from unfoldldm.config import PRESETS, ModelConfig, preset
from unfoldldm.errors import CheckpointError


@pytest.mark.parametrize("scale", [1, 2, 4])
@pytest.mark.parametrize("size", [(32, 24), (9, 5), (1, 1)])
def test_decomposed_operator_adjoint(scale, size):
    gen = torch.Generator().manual_seed(0)
    h, w = size[0] * scale, size[1] * scale
    x = torch.randn(2, 3, h, w, generator=gen, dtype=torch.float64)
    a = torch.rand(2, 3, 7, generator=gen, dtype=torch.float64)
    b = torch.rand(2, 3, 7, generator=gen, dtype=torch.float64)
    a, b = a / a.sum(-1, keepdim=True), b / b.sum(-1, keepdim=True)
    dx = ops.decomposed_forward(x, a, b, scale)
    assert dx.shape == (2, 3, size[0], size[1])
    u = torch.randn(dx.shape, generator=gen, dtype=torch.float64)
    lhs = (dx * u).sum()
    rhs = (x * ops.decomposed_adjoint(u, a, b, scale, (h, w))).sum()
    assert torch.allclose(lhs, rhs, rtol=1e-12, atol=1e-12)


def test_separable_blur_matches_2d_kernel_and_keeps_constants():
    gen = torch.Generator().manual_seed(1)
    a = torch.rand(1, 3, 5, generator=gen)
    b = torch.rand(1, 3, 5, generator=gen)
    a, b = a / a.sum(-1, keepdim=True), b / b.sum(-1, keepdim=True)
    flat = torch.full((1, 3, 12, 10), 0.3)
    assert torch.allclose(ops.separable_blur(flat, a, b), flat, atol=1e-6)
    x = torch.rand(1, 3, 12, 10, generator=gen)
    k2d = ops.kernel_image(a, b)  # (1, 3, 5, 5) = b a^T
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="replicate")
    ref = torch.nn.functional.conv2d(padded, k2d.reshape(3, 1, 5, 5), groups=3)
    assert torch.allclose(ops.separable_blur(x, a, b), ref, atol=1e-6)


def test_haar_transform_is_orthonormal_and_invertible():
    x = torch.randn(2, 3, 8, 6)
    bands = haar_dwt(x)
    assert bands.shape == (2, 12, 4, 3)
    assert torch.allclose(haar_idwt(bands), x, atol=1e-6)
    assert torch.allclose(bands.pow(2).sum(), x.pow(2).sum(), rtol=1e-5)


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("task,scale", [("restore", 1), ("sr2x", 2), ("sr4x", 4)])
def test_output_shapes_every_config_and_task(name, task, scale):
    model = build_model(preset(name, task=task)).eval()
    y = torch.rand(1, 3, 13, 21)  # deliberately not a multiple of anything
    with torch.inference_mode():
        out = model(y)
    assert len(out.images) == model.config.stages
    for img in out.images:
        assert img.shape == (1, 3, 13 * scale, 21 * scale)
        assert torch.isfinite(img).all()
    deg = out.degradations[-1]
    p = model.config.kernel_size
    assert deg.row.shape == (1, 3, p) and deg.col.shape == (1, 3, p)
    assert torch.allclose(deg.row.sum(-1), torch.ones(1, 3)) and (deg.row >= 0).all()
    assert deg.kernel_image().shape == (1, 3, p, p)
    m = 16 // scale  # y-space is padded to this multiple
    assert out.noise_maps[-1].shape[-2:] == (-(-13 // m) * m, -(-21 // m) * m)


@pytest.mark.parametrize(
    "parts", [("mgda", "drldm", "ocformer"), ("mgda", "none", "ocformer"), ("plain", "none", "unet"), ("plain", "drldm", "unet")]
)
def test_parts_are_swappable_from_the_config(parts):
    gradient, prior, proximal = parts
    model = perturb(build_model(preset("nano", gradient=gradient, prior=prior, proximal=proximal)), noise=0.02)
    assert (model.prior is None) == (prior == "none")
    with torch.inference_mode():
        out = model(torch.rand(2, 3, 32, 32))
    assert out.images[-1].shape == (2, 3, 32, 32)
    assert (out.degradations[0].row is None) == (gradient == "plain")


def test_untrained_model_starts_close_to_the_gradient_step():
    # Zero-initialised heads: a fresh model is a pure (MGDA) gradient step scheme, not noise.
    model = build_model(preset("nano")).eval()
    y = torch.rand(1, 3, 32, 32)
    with torch.inference_mode():
        out = model(y)
    assert (out.images[-1] - y).abs().mean() < 0.2


def test_seed_controls_the_prior_and_nothing_else_is_random():
    model = perturb(build_model(preset("nano")), noise=0.02)
    y = torch.rand(1, 3, 32, 32)
    with torch.inference_mode():
        a, b, c = model(y, seed=5), model(y, seed=5), model(y, seed=6)
    assert torch.equal(a.images[-1], b.images[-1])
    assert not torch.equal(a.latents[0], c.latents[0])
    assert not torch.equal(a.images[-1], c.images[-1])


def test_prior_strength_zero_uses_the_null_latent():
    model = perturb(build_model(preset("nano")), noise=0.02)
    y = torch.rand(1, 3, 32, 32)
    with torch.inference_mode():
        out = model(y, strength=0.0)
    assert torch.allclose(out.latents[0], model.null_latent.expand(1, -1, -1))


def test_prior_modes_and_their_errors():
    model = perturb(build_model(preset("nano")), noise=0.02)
    y, gt = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    out = model(y, gt, prior_mode="distill")
    assert len(out.teacher_latents) == model.config.stages and not out.teacher_latents[0].requires_grad
    assert out.latents[0].requires_grad
    assert len(out.explanations) == model.config.stages
    teacher = model(y, gt, prior_mode="teacher")
    assert torch.equal(teacher.latents[0], teacher.teacher_latents[0])
    with pytest.raises(ValueError, match="ground truth"):
        model(y, prior_mode="teacher")
    with pytest.raises(ValueError, match="prior_mode"):
        model(y, prior_mode="oracle")


def test_gradients_flow_through_the_whole_reverse_chain():
    model = perturb(build_model(preset("nano")), noise=0.02)
    model.train()
    y, gt = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    out = model(y, gt, prior_mode="distill")
    losses.kd_loss(out.latents, out.teacher_latents).backward()
    denoiser_grad = sum(p.grad.abs().sum() for p in model.prior.denoiser.parameters() if p.grad is not None)
    condition_grad = sum(p.grad.abs().sum() for p in model.prior.condition.parameters() if p.grad is not None)
    assert denoiser_grad > 0 and condition_grad > 0
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.prior.teacher.parameters())


def test_stage_cutoff_returns_the_intermediate_image():
    model = perturb(build_model(preset("nano")), noise=0.02)
    y = torch.rand(1, 3, 32, 32)
    with torch.inference_mode():
        full = model(y)
        first = model(y, stages=1)
    assert len(first.images) == 1
    assert torch.equal(first.images[0], full.images[0])
    assert not torch.equal(first.images[0], full.images[-1])


def test_first_stages_is_the_model_stopped_early():
    from unfoldldm.archs import first_stages

    model = perturb(build_model(preset("nano", stages=3)), noise=0.02)
    y = torch.rand(1, 3, 32, 32)
    cut = first_stages(model, 2)
    assert cut.config.stages == 2 and cut.gradient_step.step_size.shape == (2,)
    with torch.inference_mode():
        assert torch.equal(cut(y, seed=5).images[-1], model(y, stages=2, seed=5).images[-1])
    with pytest.raises(ValueError, match="from 1 to the model's 3"):
        first_stages(model, 4)


def test_config_validation_and_json_round_trip():
    cfg = preset("small", task="sr4x")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.scale == 4
    with pytest.raises(CheckpointError, match="kernel_size"):
        preset("nano", kernel_size=10)
    with pytest.raises(CheckpointError, match="prior"):
        preset("nano", prior="gan")
    with pytest.raises(CheckpointError, match="Unknown model preset"):
        preset("huge")


def test_kernel_loss_scores_the_estimate_against_the_flipped_true_kernel_on_known_samples():
    from unfoldldm.archs.mgda import Degradation
    from unfoldldm.degradations import gaussian_kernels

    p = 11
    taps = torch.arange(p, dtype=torch.float32) - p // 2
    row = torch.softmax(-0.5 * (taps / 1.5) ** 2, dim=0).expand(2, 3, p)
    col = torch.softmax(-0.5 * (taps / 0.8) ** 2, dim=0).expand(2, 3, p)
    estimate = Degradation(row=row, col=col, descriptor=torch.zeros(2, 4))
    true = (col[:, 0, :, None] * row[:, 0, None, :]).clone()  # what the model correlates with
    shifted = torch.roll(true, 2, dims=-1)  # asymmetric: flipping moves it the other way
    both = torch.ones(2, dtype=torch.bool)
    assert losses.kernel_loss([estimate], true.flip(-2, -1), both) < 1e-5
    assert losses.kernel_loss([estimate], shifted.flip(-2, -1), both) > 0.5
    assert losses.kernel_loss([estimate], shifted, both) > 0.5
    # only the known samples count; none known costs nothing
    mixed = torch.stack([true[0].flip(-2, -1), shifted[1]])
    assert losses.kernel_loss([estimate], mixed, torch.tensor([True, False])) < 1e-5
    assert losses.kernel_loss([estimate], mixed, torch.zeros(2, dtype=torch.bool)) == 0
    # a 21x21 target is centre-cropped to the model's 11x11 and renormalised
    wide = gaussian_kernels(torch.full((2,), 0.9), torch.full((2,), 0.9), torch.zeros(2), 21)
    narrow = gaussian_kernels(torch.full((2,), 0.9), torch.full((2,), 0.9), torch.zeros(2), p)
    assert torch.allclose(losses.kernel_loss([estimate], wide, both), losses.kernel_loss([estimate], narrow, both), atol=1e-5)


def test_losses_are_zero_at_the_target_and_positive_elsewhere():
    x = torch.rand(2, 3, 16, 16)
    z = x + 0.1 * torch.randn_like(x)
    assert losses.frequency_loss(x, x) == 0 and losses.frequency_loss(z, x) > 0
    assert losses.band_loss(x, x) == 0 and losses.band_loss(z, x) > 0
    assert losses.charbonnier(x, x) == pytest.approx(1e-3, rel=1e-3)  # the eps floor
    assert losses.charbonnier(z, x) > 0.05
    assert losses.deep_supervision([z, x], x) < losses.deep_supervision([x, z], x)  # later stages weigh more
    assert losses.isda_loss([[x, x]], x) == 0 and losses.isda_loss([[z]], x) > 0
    assert losses.kd_loss([x], [x]) == 0 and losses.invariance_loss([x], [z]) > 0
    # the band loss weights the high bands: a high-frequency error costs more than the same low one
    checker = torch.zeros(1, 3, 16, 16)
    checker[..., ::2, ::2] = 0.1
    flat = torch.full((1, 3, 16, 16), checker.mean().item())
    zero = torch.zeros(1, 3, 16, 16)
    assert losses.band_loss(checker, zero) > losses.band_loss(flat, zero)


def test_isda_is_small_when_the_estimated_operator_is_the_true_one():
    # With the true kernel plugged into the decomposed operator, D(x_gt) explains a blurred y exactly.
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(1, 3, 16, 16, generator=gen)
    a = torch.softmax(torch.randn(1, 3, 5, generator=gen), -1)
    b = torch.softmax(torch.randn(1, 3, 5, generator=gen), -1)
    y = ops.decomposed_forward(x, a, b, 2)
    assert losses.isda_loss([[ops.decomposed_forward(x, a, b, 2)]], y) < 1e-6
    assert losses.isda_loss([[ops.subsample(x, 2)]], y) > 1e-3


def test_nano_overfits_one_small_batch():
    torch.manual_seed(0)
    model = build_model(preset("nano"))
    gen = torch.Generator().manual_seed(1)
    x = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 64, 64, generator=gen), 2)
    y = (x + 0.1 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    history = []
    for _ in range(250):
        out = model(y, x, prior_mode="teacher")
        loss = losses.charbonnier(out.images[-1], x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert history[-1] < history[0] / 10, history[::25]


def _diffusers_ddim(train_timesteps: int, steps: int):
    """diffusers' DDIM scheduler configured as the prior's chain (the reference; tests only)."""
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(num_train_timesteps=train_timesteps, beta_schedule="squaredcos_cap_v2",
                              prediction_type="sample", clip_sample=False, set_alpha_to_one=True)
    scheduler.set_timesteps(steps)
    return scheduler


@pytest.mark.parametrize("steps", [1, 4, 10])
def test_ddim_schedule_reproduces_the_diffusers_step(steps):
    """The prior's reverse chain uses our own Python coefficients (so inference needs no diffusers, and
    the chain compiles and captures in CUDA graphs); each update must equal ``DDIMScheduler.step``."""
    from unfoldldm.archs.drldm import alphas_cumprod, ddim_schedule

    scheduler = _diffusers_ddim(1000, steps)
    assert torch.equal(alphas_cumprod(1000), scheduler.alphas_cumprod)
    schedule = ddim_schedule(1000, steps)
    assert [t for t, _, _ in schedule] == [int(t) for t in scheduler.timesteps]
    gen = torch.Generator().manual_seed(steps)
    z_t = torch.randn(2, 8, 16, generator=gen)
    for t, c0, ct in schedule:
        z0 = torch.randn(2, 8, 16, generator=gen)
        expected = scheduler.step(z0, t, z_t, eta=0.0).prev_sample
        z_t = c0 * z0 + ct * z_t
        torch.testing.assert_close(z_t, expected, rtol=1e-5, atol=1e-5)
        z_t = expected


def test_inference_runs_without_diffusers(tmp_path):
    """ComfyUI does not ship diffusers: loading the bundled model and restoring must not import it."""
    import subprocess
    import sys

    script = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'diffusers':\n"
        "            raise ImportError('diffusers is blocked in this test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import torch\n"
        "from unfoldldm.api import load_model\n"
        "from unfoldldm.pipeline import restore, RestoreOptions\n"
        "model = load_model(None, task='restore', device='cpu')\n"
        "out = restore(model, torch.rand(1, 3, 40, 48), RestoreOptions(prior_steps=3))\n"
        "assert out.image.shape == (1, 3, 40, 48)\n"
        "assert 'diffusers' not in sys.modules\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


@pytest.mark.parametrize("task", ["restore", "sr4x"])
def test_image_level_view_is_a_native_resolution_window(task):
    """Image-level estimates read the centre window of y at its own resolution (what training crops
    look like), and the same region of output-space tensors, so a large photo's blur is not shrunk
    away before the kernel estimate sees it."""
    net = build_model(preset("nano", task=task))
    s, side = net.scale, net.config.thumb_size
    y = torch.rand(1, 3, side + 50, side + 31)
    x = torch.rand(1, 3, s * y.shape[-2], s * y.shape[-1])
    y_t, x_t = net._image_level_view(y, x)
    top, left = 25, 15
    assert torch.equal(y_t, y[..., top:top + side, left:left + side])
    region = x[..., s * top:s * (top + side), s * left:s * (left + side)]
    assert torch.allclose(x_t, torch.nn.functional.avg_pool2d(region, s) if s > 1 else region)
    small = torch.rand(1, 3, side // 2, side // 3)
    assert torch.equal(net._image_level_view(small)[0], small)  # crops no bigger than the window pass whole
