"""The restoration pipeline: tiling, seeds, stage cut-off, layouts, dtypes, progress, interrupt, OOM."""

from __future__ import annotations

import math

import pytest
import torch
from model_helpers import perturb

from unfoldldm.archs import build_model
from unfoldldm.config import preset
from unfoldldm.errors import InputImageError, RestorationInterrupted, UnfoldLDMError
from unfoldldm.pipeline import (
    RestoreOptions,
    begin,
    degradation_step,
    prior_step,
    refine_step,
    restore,
)
from unfoldldm.tiling import tile_starts


@pytest.fixture(scope="module")
def nano():
    return perturb(build_model(preset("nano")), noise=0.02)


@pytest.fixture(scope="module")
def nano_sr4():
    return perturb(build_model(preset("nano", task="sr4x")), noise=0.02)


def smooth_image(h, w, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.nn.functional.interpolate(torch.rand(1, 3, h // 8 + 1, w // 8 + 1, generator=gen), size=(h, w), mode="bicubic").clamp(0, 1)


def psnr(a, b):
    return 10 * math.log10(1 / ((a - b) ** 2).mean().item())


def test_tile_starts_cover_the_length():
    assert tile_starts(100, 200, 16) == [0]
    starts = tile_starts(224, 64, 16)
    assert starts[0] == 0 and starts[-1] == 224 - 64
    assert all(b - a <= 64 - 16 for a, b in zip(starts, starts[1:]))


def test_one_tile_covering_the_image_is_exactly_untiled(nano):
    img = smooth_image(100, 90)
    whole = restore(nano, img).image
    one_tile = restore(nano, img, RestoreOptions(tile=128)).image
    assert torch.equal(whole, one_tile)


@pytest.mark.parametrize("fixture,size", [("nano", (160, 144)), ("nano_sr4", (40, 36))])
def test_small_tiles_have_no_visible_seams(fixture, size, request):
    model = request.getfixturevalue(fixture)
    img = smooth_image(*size)
    whole = restore(model, img).image
    tiled = restore(model, img, RestoreOptions(tile=64, overlap=32)).image
    value = psnr(tiled, whole)
    print(f"tiled vs untiled PSNR ({fixture}, random weights): {value:.1f} dB")
    assert value > 40
    # A seam is a jump in (tiled - untiled) concentrated on tile borders. Compare the mean jump
    # across border columns/rows with the mean jump everywhere.
    diff = tiled - whole
    h, w = diff.shape[-2:]
    tile_px = 64  # tiles are counted in output pixels
    for axis, length in ((-1, w), (-2, h)):
        jumps = diff.diff(dim=axis).abs().mean(dim=[d for d in range(4) if d != diff.ndim + axis])
        borders = sorted({s for s in tile_starts(length, tile_px, 32) if s > 0} | {s + tile_px for s in tile_starts(length, tile_px, 32) if s + tile_px < length})
        at_borders = jumps[[b - 1 for b in borders]].mean()
        print(f"mean jump across tile borders {float(at_borders) * 255:.2f}/255, everywhere {float(jumps.mean()) * 255:.2f}/255")
        assert at_borders < 1 / 255


def test_same_seed_same_output_other_seed_other_prior(nano):
    img = smooth_image(48, 48)
    a = restore(nano, img, RestoreOptions(seed=3)).image
    b = restore(nano, img, RestoreOptions(seed=3, tile=64)).image
    c = restore(nano, img, RestoreOptions(seed=4)).image
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_stage_cutoff_and_the_part_functions_reproduce_restore(nano):
    img = smooth_image(64, 48)
    first = restore(nano, img, RestoreOptions(stages=1)).image
    full = restore(nano, img).image
    assert not torch.equal(first, full)
    state = begin(nano, img)
    for k in range(nano.config.stages):
        state = degradation_step(nano, state, tile=None)
        state = prior_step(nano, state, seed=0)
        state = refine_step(nano, state, tile=None)
        if k == 0:
            assert torch.equal(state.image().clamp(0, 1), first)
    assert torch.equal(state.image().clamp(0, 1), full)
    with pytest.raises(UnfoldLDMError, match="stages must be between"):
        restore(nano, img, RestoreOptions(stages=nano.config.stages + 1))


def test_part_order_errors_are_clear(nano):
    state = begin(nano, smooth_image(32, 32))
    with pytest.raises(UnfoldLDMError, match="MGDA before DR-LDM"):
        prior_step(nano, state)
    with pytest.raises(UnfoldLDMError, match="MGDA before OCFormer"):
        refine_step(nano, state)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_layouts_keep_channels_and_alpha(nano, channels):
    img = torch.rand(2, channels, 33, 17)
    out = restore(nano, img).image
    assert out.shape == img.shape
    if channels in (2, 4):
        assert torch.equal(out[:, -1:], img[:, -1:])


def test_super_resolution_upscales_image_and_alpha(nano_sr4):
    img = torch.rand(1, 4, 20, 30)
    result = restore(nano_sr4, img)
    assert result.image.shape == (1, 4, 80, 120)
    assert result.kernel.shape[-2:] == (nano_sr4.config.kernel_size,) * 2
    assert result.noise_map.shape == (1, 1, 20, 30)
    assert 0 <= result.image.min() and result.image.max() <= 1


def test_tiny_images_and_unbatched_input(nano):
    assert restore(nano, torch.rand(1, 3, 1, 1)).image.shape == (1, 3, 1, 1)
    assert restore(nano, torch.rand(3, 5, 7)).image.shape == (1, 3, 5, 7)


def test_bfloat16_runs_and_stays_close_to_fp32():
    model = perturb(build_model(preset("nano")), noise=0.02)
    img = smooth_image(48, 48)
    ref = restore(model, img).image
    low = restore(model.to(torch.bfloat16), img).image
    assert low.dtype == torch.float32
    assert psnr(low, ref) > 30


def test_progress_reports_every_unit_and_interrupt_stops(nano):
    img = smooth_image(96, 96)
    seen = []
    restore(nano, img, RestoreOptions(tile=64, overlap=32), progress=lambda d, t: seen.append((d, t)))
    total = seen[-1][1]
    assert [d for d, _ in seen] == list(range(1, total + 1))
    assert total == nano.config.stages * (2 * 4 + 1)  # 4 tiles x 2 local parts + the prior, per stage
    calls = []

    def stop_after_three():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(RestorationInterrupted):
        restore(nano, img, RestoreOptions(tile=64), should_stop=stop_after_three)


def test_out_of_memory_halves_the_tile_and_retries(nano, monkeypatch):
    img = smooth_image(128, 128)
    expected = restore(nano, img, RestoreOptions(tile=64, overlap=32)).image
    original = nano.gradient_update

    def step_with_small_memory(y, x, h, deg, k):
        if x.shape[-1] > 64:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return original(y, x, h, deg, k)

    monkeypatch.setattr(nano, "gradient_update", step_with_small_memory)
    result = restore(nano, img, RestoreOptions(tile=None, overlap=32))
    assert result.tile == 64
    assert torch.equal(result.image, expected)

    def always_oom(v, h, z):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(nano, "refine", always_oom)
    with pytest.raises(UnfoldLDMError, match="Out of memory even with"):
        restore(nano, img)


@pytest.mark.parametrize(
    "image,match",
    [
        (torch.full((1, 3, 8, 8), float("nan")), "NaN|finite"),
        (torch.rand(1, 3, 0, 8), "size|empty|zero"),
        (torch.rand(1, 5, 8, 8), "channels"),
        (torch.rand(8, 8), "shape"),
    ],
)
def test_bad_tensors_get_clear_errors(nano, image, match):
    with pytest.raises(InputImageError, match=match):
        restore(nano, image)


def test_pixel_limit_is_enforced_before_any_work(nano):
    with pytest.raises(InputImageError, match="pixel"):
        restore(nano, torch.rand(1, 3, 64, 64), RestoreOptions(max_pixels=1000))


def test_not_a_tensor(nano):
    with pytest.raises(InputImageError, match="tensor"):
        restore(nano, [[0.5]])


@pytest.mark.parametrize("fixture", ["nano", "nano_sr4"])
def test_training_forward_and_restore_run_the_same_stages(fixture, request):
    """What is trained is what runs: the training forward (autograd on, its own stage loop) and the
    inference pipeline (tiles, folded inference path) give the same images, kernels and noise maps."""
    model = request.getfixturevalue(fixture)
    y = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(11))
    trained = model(y, seed=5, steps=3)  # autograd on: the training code path
    result = restore(model, y, RestoreOptions(seed=5, prior_steps=3))
    assert (result.image - trained.images[-1].clamp(0, 1)).abs().max().item() <= 1e-5
    assert (result.kernel - trained.degradations[-1].kernel_image()).abs().max().item() <= 1e-6
    noise = trained.noise_maps[-1][..., : y.shape[-2], : y.shape[-1]]
    assert (result.noise_map - noise).abs().max().item() <= 1e-6
