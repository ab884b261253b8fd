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


# ----- self-ensemble ---------------------------------------------------------------------------

def test_orientation_codes_are_the_eight_turns_and_invert():
    from unfoldldm.self_ensemble import mirrors, orientations, turn, turn_back

    x = torch.arange(2 * 3 * 4, dtype=torch.float32).view(1, 2, 3, 4)
    turned = [turn(x, c) for c in orientations(8)]
    assert len({tuple(t.flatten().tolist()) for t in turned}) == 8  # all different
    assert all(torch.equal(turn_back(t, c), x) for t, c in zip(turned, orientations(8)))
    assert torch.equal(turn(x, orientations(2)[1]), x.transpose(-1, -2))
    assert torch.equal(turn(x, orientations(4)[2]), torch.rot90(x, 2, (-2, -1)))
    assert not any(mirrors(c) for c in orientations(2, scale=4))
    with pytest.raises(ValueError, match="one of"):
        orientations(3)
    with pytest.raises(ValueError, match="at most 2"):
        orientations(4, scale=4)


def test_mirrored_passes_keep_the_jpeg_block_grid():
    from unfoldldm.self_ensemble import BLOCK_GRID, orientations, pad_to_grid, turn

    # each whole 8x8 JPEG block of a 37 x 45 picture gets its own number (-1 for the partial blocks):
    # in every turned (and, for mirrors, padded) copy each aligned 8x8 block must hold one number
    h, w = 37, 45
    rows, cols = torch.arange(h)[:, None] // 8, torch.arange(w)[None, :] // 8
    ids = (rows * 100 + cols).float()
    ids[(rows >= h // 8) | (cols >= w // 8)] = -1
    ids = ids[None, None]
    for code in orientations(8):
        turned = turn(pad_to_grid(ids) if code & 3 else ids, code)[0, 0]
        assert not code & 3 or (turned.shape[0] % BLOCK_GRID == 0 and turned.shape[1] % BLOCK_GRID == 0)
        found = set()
        for r in range(0, turned.shape[0] - 7, 8):
            for c in range(0, turned.shape[1] - 7, 8):
                values = set(turned[r:r + 8, c:c + 8].unique().tolist()) - {-1.0}
                if values:
                    assert len(values) == 1 and (turned[r:r + 8, c:c + 8] >= 0).all(), (code, r, c, values)
                    found |= values
        assert len(found) == (h // 8) * (w // 8), code


def test_one_pass_is_the_plain_restore_and_more_passes_average_the_turned_restores(nano):
    from unfoldldm.self_ensemble import mirrors, orientations, pad_to_grid, turn, turn_back

    img = smooth_image(40, 72, seed=3)  # not square: the transposes swap the sides; sides multiples of 16
    plain = restore(nano, img)
    one = restore(nano, img, RestoreOptions(ensemble=1))
    assert torch.equal(one.image, plain.image) and torch.equal(one.noise_map, plain.noise_map)
    assert torch.equal(one.kernel, plain.kernel)
    for passes in (2, 8):
        codes = orientations(passes)
        runs = [restore(nano, turn(pad_to_grid(img) if mirrors(c) else img, c)) for c in codes]
        got = restore(nano, img, RestoreOptions(ensemble=passes))
        expected = torch.stack([turn_back(r.image, c)[..., :40, :72] for r, c in zip(runs, codes)]).mean(0)
        noise = torch.stack([turn_back(r.noise_map, c)[..., :40, :72] for r, c in zip(runs, codes)]).mean(0)
        kernel = torch.stack([turn_back(r.kernel, c) for r, c in zip(runs, codes)]).mean(0)
        assert got.image.shape == img.shape and got.noise_map.shape == (1, 1, 40, 72)
        torch.testing.assert_close(got.image, expected, rtol=0, atol=1e-6)
        torch.testing.assert_close(got.noise_map, noise, rtol=0, atol=1e-6)
        torch.testing.assert_close(got.kernel, kernel, rtol=0, atol=1e-6)
        assert (got.image - plain.image).abs().max() > 1e-4  # the orientations do differ


def test_ensemble_keeps_layouts_odd_sizes_tiles_and_scale(nano, nano_sr4):
    grey = smooth_image(37, 53)[:, :1]
    rgba = torch.cat([smooth_image(37, 53), torch.rand(1, 1, 37, 53)], dim=1)
    out = restore(nano, grey, RestoreOptions(ensemble=8))
    assert out.image.shape == (1, 1, 37, 53) and out.noise_map.shape == (1, 1, 37, 53)
    out = restore(nano, rgba, RestoreOptions(ensemble=4)).image
    assert out.shape == (1, 4, 37, 53) and torch.equal(out[:, 3:], rgba[:, 3:])
    assert restore(nano_sr4, smooth_image(19, 27), RestoreOptions(ensemble=2)).image.shape == (1, 3, 76, 108)
    whole = restore(nano, smooth_image(100, 90), RestoreOptions(ensemble=4)).image
    tiled = restore(nano, smooth_image(100, 90), RestoreOptions(ensemble=4, tile=64, overlap=16)).image
    assert psnr(whole, tiled) > 35


def test_ensemble_progress_counts_every_pass_and_interrupt_stops(nano):
    for size, passes in (((64, 64), 2), ((37, 53), 8)):  # 37 x 53: the mirrored passes are padded
        seen = []
        restore(nano, smooth_image(*size), RestoreOptions(ensemble=passes, tile=64, overlap=16),
                progress=lambda d, t: seen.append((d, t)))
        assert [d for d, _ in seen] == list(range(1, seen[-1][1] + 1))
    single = []
    restore(nano, smooth_image(64, 64), progress=lambda d, t: single.append((d, t)))
    calls = []
    with pytest.raises(RestorationInterrupted):
        restore(nano, smooth_image(64, 64), RestoreOptions(ensemble=8),
                should_stop=lambda: calls.append(1) or len(calls) > single[-1][1] + 2)


@pytest.mark.parametrize("value", [0, 3, 16, 2.0, True, "2", None])
def test_bad_ensemble_values_are_refused_by_name(nano, value):
    with pytest.raises(UnfoldLDMError, match="ensemble must be one of 1, 2, 4, 8"):
        restore(nano, smooth_image(32, 32), RestoreOptions(ensemble=value))


def test_super_resolution_ensemble_is_transposes_only(nano_sr4):
    with pytest.raises(UnfoldLDMError, match="1 or 2 for a x4"):
        restore(nano_sr4, smooth_image(16, 16), RestoreOptions(ensemble=4))
