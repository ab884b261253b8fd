"""Tests of the batched degradation synthesis in unfoldldm.degradations."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

from unfoldldm.degradations import (
    NOISE_KINDS,
    DegradationConfig,
    DegradedBatch,
    add_gaussian_noise,
    add_poisson_noise,
    add_signal_dependent_noise,
    blur,
    degrade,
    downsample,
    gaussian_kernels,
    jpeg_compress,
    motion_kernels,
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1.0 / ((a - b) ** 2).mean().item())


def _smooth_image(h: int = 64, w: int = 64) -> torch.Tensor:
    """A (1, 3, h, w) image of slow gradients and low-frequency waves."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    r = 0.5 + 0.4 * torch.sin(2 * math.pi * xx) * torch.cos(math.pi * yy)
    g = 0.2 + 0.6 * xx * yy
    b = 0.5 + 0.3 * torch.cos(2 * math.pi * (xx + yy) / 2)
    return torch.stack([r, g, b])[None]


def _textured_image(h: int = 64, w: int = 64, seed: int = 0) -> torch.Tensor:
    """Smooth content plus edges and mild blurred texture, so JPEG has real work to do."""
    x = _smooth_image(h, w)
    x[..., h // 4 : h // 2, w // 3 :] = 0.9
    texture = torch.rand(1, 3, h, w, generator=_gen(seed))
    texture = blur(texture, gaussian_kernels(torch.ones(1), torch.ones(1), torch.zeros(1), 5))
    return (0.7 * x + 0.3 * texture).clamp(0, 1)


def _moments(k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean and std of each (B, p, p) kernel along columns (x) and rows (y)."""
    r = torch.arange(k.shape[-1], dtype=k.dtype) - k.shape[-1] // 2
    mx = (k.sum(-2) * r).sum(-1)
    my = (k.sum(-1) * r).sum(-1)
    sx = ((k.sum(-2) * r**2).sum(-1) - mx**2).sqrt()
    sy = ((k.sum(-1) * r**2).sum(-1) - my**2).sqrt()
    return mx, my, sx, sy


# ----------------------------------------------------------------------------- kernels


def test_gaussian_kernels_are_normalised_nonnegative_and_sized():
    sx = torch.tensor([0.2, 1.0, 3.0, 2.0])
    sy = torch.tensor([0.2, 2.5, 0.5, 2.0])
    theta = torch.tensor([0.0, 0.7, 2.0, 1.0])
    k = gaussian_kernels(sx, sy, theta, 21)
    assert k.shape == (4, 21, 21) and k.dtype == torch.float32
    assert (k >= 0).all()
    torch.testing.assert_close(k.sum((-2, -1)), torch.ones(4))
    # centred and point-symmetric
    torch.testing.assert_close(k, k.flip(-2, -1))


@pytest.mark.parametrize("sigma", [1.0, 1.5, 2.5])
def test_isotropic_gaussian_std_matches_sigma(sigma):
    s = torch.tensor([sigma])
    mx, my, sx, sy = _moments(gaussian_kernels(s, s, torch.zeros(1), 25))
    assert abs(mx.item()) < 1e-5 and abs(my.item()) < 1e-5
    assert sx.item() == pytest.approx(sigma, rel=0.01)
    assert sy.item() == pytest.approx(sigma, rel=0.01)


def test_anisotropic_gaussian_axes_follow_theta():
    sx, sy = torch.tensor([3.0, 3.0]), torch.tensor([1.0, 1.0])
    k = gaussian_kernels(sx, sy, torch.tensor([0.0, math.pi / 2]), 25)
    _, _, std_x, std_y = _moments(k)
    assert std_x[0].item() == pytest.approx(3.0, rel=0.01)
    assert std_y[0].item() == pytest.approx(1.0, rel=0.01)
    # rotated by 90 degrees the long axis becomes vertical
    assert std_x[1].item() == pytest.approx(1.0, rel=0.01)
    assert std_y[1].item() == pytest.approx(3.0, rel=0.01)
    # at 45 degrees the kernel is symmetric about the diagonal but not about the axes
    k45 = gaussian_kernels(sx[:1], sy[:1], torch.tensor([math.pi / 4]), 25)[0]
    torch.testing.assert_close(k45, k45.T)
    assert not torch.allclose(k45, k45.flip(-1), atol=1e-4)


def test_motion_kernel_horizontal_and_vertical_lines():
    k = motion_kernels(torch.tensor([7.0, 7.0]), torch.tensor([0.0, math.pi / 2]), 21)
    assert k.shape == (2, 21, 21)
    row = torch.zeros(21)
    row[7:14] = 1 / 7
    expected = torch.zeros(21, 21)
    expected[10] = row
    torch.testing.assert_close(k[0], expected)
    torch.testing.assert_close(k[1], expected.T, atol=1e-5, rtol=0)


def test_motion_kernels_normalised_centred_and_length_controls_spread():
    g = _gen(0)
    length = 3 + 12 * torch.rand(16, generator=g)
    angle = math.pi * torch.rand(16, generator=g)
    k = motion_kernels(length, angle, 21)
    assert (k >= 0).all()
    torch.testing.assert_close(k.sum((-2, -1)), torch.ones(16))
    mx, my, sx, sy = _moments(k)
    assert mx.abs().max() < 1e-4 and my.abs().max() < 1e-4
    # spread along the line grows like the length (a box of width L has std L / sqrt(12))
    along = (sx**2 + sy**2).sqrt()
    assert torch.allclose(along, length / math.sqrt(12), rtol=0.25)
    assert (along[length.argsort()].diff() > -0.15).all()


# ----------------------------------------------------------------------------- blur and resize


def test_blur_with_delta_is_identity():
    x = torch.rand(3, 3, 32, 40, generator=_gen(1))
    delta = torch.zeros(3, 21, 21)
    delta[:, 10, 10] = 1
    torch.testing.assert_close(blur(x, delta), x, atol=0, rtol=0)


def test_blur_keeps_constant_images_constant_even_when_smaller_than_kernel():
    for h, w in [(32, 32), (8, 6)]:  # the second needs the replicate fallback
        x = torch.full((3, 3, h, w), 0.3)
        k = torch.cat(
            [
                gaussian_kernels(torch.tensor([2.0]), torch.tensor([0.7]), torch.tensor([0.4]), 21),
                motion_kernels(torch.tensor([11.0]), torch.tensor([1.0]), 21),
                torch.rand(1, 21, 21, generator=_gen(2)),
            ]
        )
        k = k / k.sum((-2, -1), keepdim=True)
        out = blur(x, k)
        assert out.shape == x.shape
        torch.testing.assert_close(out, x)


def test_blur_is_a_true_convolution_per_sample():
    k = torch.rand(2, 5, 5, generator=_gen(3))
    k = k / k.sum((-2, -1), keepdim=True)
    impulse = torch.zeros(2, 3, 15, 15)
    impulse[..., 7, 7] = 1
    out = blur(impulse, k)
    # the response to a centred impulse is each sample's own kernel, unflipped, in every channel
    for i in range(2):
        for c in range(3):
            torch.testing.assert_close(out[i, c, 5:10, 5:10], k[i])
    assert out[..., :5, :].abs().max() == 0


@pytest.mark.parametrize("mode", ["bicubic", "bilinear", "area", "decimate"])
@pytest.mark.parametrize("scale", [1, 2, 4])
def test_downsample_shapes_and_constants(mode, scale):
    x = torch.full((2, 3, 32, 48), 0.6)
    out = downsample(x, scale, mode)
    assert out.shape == (2, 3, 32 // scale, 48 // scale)
    torch.testing.assert_close(out, torch.full_like(out, 0.6))


def test_decimate_keeps_the_top_left_pixel_of_each_block_like_the_model_operator():
    """The grid of the model's S_s (and the classical blind-SR model): pixel i of the output is
    pixel scale * i of the input; the centred filters put it at scale * i + (scale - 1) / 2."""
    from unfoldldm.archs import operators as ops

    x = torch.rand(1, 3, 16, 20)
    out = downsample(x, 4, "decimate")
    torch.testing.assert_close(out, x[..., ::4, ::4])
    torch.testing.assert_close(out, ops.subsample(x, 4))
    ramp = torch.arange(16.0).reshape(1, 1, 16, 1).expand(1, 3, 16, 16)
    assert downsample(ramp, 4, "area")[0, 0, :, 0].tolist() == [1.5, 5.5, 9.5, 13.5]
    assert downsample(ramp, 4, "decimate")[0, 0, :, 0].tolist() == [0.0, 4.0, 8.0, 12.0]


def test_downsample_rejects_unknown_mode():
    with pytest.raises(ValueError, match="nearest"):
        downsample(torch.rand(1, 3, 8, 8), 2, "nearest")


# ----------------------------------------------------------------------------- noise


def test_gaussian_noise_std_matches_sigma():
    x = torch.full((3, 3, 128, 128), 0.5)
    sigma = torch.tensor([0.0, 0.05, 0.15])
    out = add_gaussian_noise(x, sigma, _gen(4))
    residual = out - x
    assert residual[0].abs().max() == 0
    for i in (1, 2):
        assert residual[i].std().item() == pytest.approx(sigma[i].item(), rel=0.02)
        assert abs(residual[i].mean().item()) < 0.01 * sigma[i].item() * 5


def test_poisson_noise_follows_photon_statistics():
    x = torch.full((2, 3, 128, 128), 0.5)
    peak = torch.tensor([20.0, 500.0])
    out = add_poisson_noise(x, peak, _gen(5))
    for i in range(2):
        assert out[i].mean().item() == pytest.approx(0.5, rel=0.01)
        assert out[i].std().item() == pytest.approx(math.sqrt(0.5 / peak[i].item()), rel=0.03)
    # values are whole photon counts
    counts = out * peak.view(-1, 1, 1, 1)
    torch.testing.assert_close(counts, counts.round(), atol=1e-3, rtol=0)


def test_signal_dependent_noise_variance_is_linear_in_signal():
    a, b = torch.tensor([0.01]), torch.tensor([0.0004])
    for level in (0.2, 0.8):
        x = torch.full((1, 3, 128, 128), level)
        std = (add_signal_dependent_noise(x, a, b, _gen(6)) - x).std().item()
        assert std == pytest.approx(math.sqrt(0.01 * level + 0.0004), rel=0.03)


def test_noise_is_reproducible_from_the_generator():
    x = torch.rand(2, 3, 16, 16, generator=_gen(7))
    s = torch.tensor([0.1, 0.2])
    torch.testing.assert_close(add_gaussian_noise(x, s, _gen(8)), add_gaussian_noise(x, s, _gen(8)))
    assert not torch.equal(add_gaussian_noise(x, s, _gen(8)), add_gaussian_noise(x, s, _gen(9)))
    p = torch.tensor([30.0, 30.0])
    torch.testing.assert_close(add_poisson_noise(x, p, _gen(8)), add_poisson_noise(x, p, _gen(8)))


# ----------------------------------------------------------------------------- JPEG


def test_jpeg_high_quality_is_close_and_low_quality_is_far():
    x = _smooth_image()
    high = _psnr(jpeg_compress(x, torch.tensor([95])), x)
    low = _psnr(jpeg_compress(x, torch.tensor([10])), x)
    assert high > 35
    assert low < high - 8


def test_jpeg_preserves_shape_range_and_dtype_for_odd_sizes():
    x = torch.rand(2, 3, 37, 53, generator=_gen(10))
    out = jpeg_compress(x, torch.tensor([50, 80]))
    assert out.shape == x.shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    torch.testing.assert_close(out * 255, (out * 255).round(), atol=1e-4, rtol=0)


def test_jpeg_quality_is_per_sample():
    x = _textured_image().repeat(3, 1, 1, 1)
    q = torch.tensor([20, 60, 95])
    batched = jpeg_compress(x, q)
    for i in range(3):
        torch.testing.assert_close(batched[i : i + 1], jpeg_compress(x[i : i + 1], q[i : i + 1]))
    errors = [((batched[i] - x[i]) ** 2).mean().item() for i in range(3)]
    assert errors[0] > errors[1] > errors[2]


@pytest.mark.parametrize("quality", [15, 50, 90])
def test_jpeg_matches_libjpeg(quality):
    x = _textured_image(48, 56, seed=11)
    pixels = (x[0].permute(1, 2, 0) * 255).round().byte().numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality, subsampling=2)
    reference = torch.from_numpy(np.array(Image.open(buffer))).permute(2, 0, 1)[None].float() / 255
    ours = jpeg_compress(torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255, torch.tensor([quality]))
    assert _psnr(ours, reference) > 38


# ----------------------------------------------------------------------------- degrade


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_degrade_shapes_and_dtypes(scale):
    x = torch.rand(4, 3, 32, 48, generator=_gen(12))
    config = DegradationConfig(scale=scale, kernel_size=15, jpeg_prob=0.5, second_order_prob=0.5)
    out = degrade(x, config, _gen(13))
    assert isinstance(out, DegradedBatch)
    assert out.y.shape == (4, 3, 32 // scale, 48 // scale)
    assert out.kernel.shape == (4, 15, 15)
    assert out.noise_sigma.shape == out.jpeg_quality.shape == out.second_order.shape == (4,)
    assert out.scale == scale and out.second_order.dtype == torch.bool
    assert out.y.dtype == out.kernel.dtype == out.noise_sigma.dtype == torch.float32
    assert (out.kernel >= 0).all()
    torch.testing.assert_close(out.kernel.sum((-2, -1)), torch.ones(4))
    assert out.y.min() >= 0 and out.y.max() <= 1


def test_degrade_rejects_sizes_not_divisible_by_scale():
    with pytest.raises(ValueError, match="divisible"):
        degrade(torch.rand(1, 3, 30, 32), DegradationConfig(scale=4))
    with pytest.raises(ValueError, match="divisible"):
        degrade(torch.rand(1, 3, 32, 30), DegradationConfig(scale=4))
    with pytest.raises(ValueError):
        degrade(torch.rand(1, 1, 32, 32), DegradationConfig())


def test_degrade_same_seed_same_batch_different_seed_different():
    x = torch.rand(6, 3, 32, 32, generator=_gen(14))
    config = DegradationConfig.preset("sr4x")
    a, b, c = (degrade(x, config, _gen(s)) for s in (15, 15, 16))
    for field in ("y", "kernel", "noise_sigma", "jpeg_quality", "second_order"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field
    assert not torch.equal(a.y, c.y)
    assert not torch.equal(a.kernel, c.kernel)


def test_noise_sigma_is_zero_exactly_where_no_noise_was_added():
    x = torch.full((32, 3, 16, 16), 0.5)
    config = DegradationConfig(blur_prob=0.0, jpeg_prob=0.0, noise_prob=0.5, noise_sigma_range=(0.02, 0.1))
    out = degrade(x, config, _gen(17))
    clean = out.noise_sigma == 0
    assert 0 < clean.sum() < 32
    changed = (out.y != x).flatten(1).any(1)
    assert torch.equal(changed, ~clean)
    none = degrade(x, DegradationConfig(noise_prob=0.0, blur_prob=0.0, jpeg_prob=0.0), _gen(17))
    assert (none.noise_sigma == 0).all() and torch.equal(none.y, x)


@pytest.mark.parametrize("mix", [tuple(float(i == k) for i in range(len(NOISE_KINDS))) for k in range(len(NOISE_KINDS))])
def test_reported_noise_sigma_is_the_std_at_mid_grey(mix):
    x = torch.full((8, 3, 96, 96), 0.5)
    config = DegradationConfig(
        blur_prob=0.0, jpeg_prob=0.0, noise_prob=1.0, noise_mix=mix, noise_sigma_range=(0.02, 0.15), clip=False
    )
    out = degrade(x, config, _gen(18))
    measured = (out.y - x).pow(2).flatten(1).mean(1).sqrt()  # RMS over pixels and channels
    # correlated noise has fewer independent samples per image: a looser estimate
    tolerance = 0.04 if mix[3] == mix[4] == 0 else 0.08
    torch.testing.assert_close(measured, out.noise_sigma, rtol=tolerance, atol=0)
    torch.testing.assert_close(out.noise_std.mean((1, 2, 3)), out.noise_sigma, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", ["poisson", "signal_dependent"])
def test_noise_std_map_follows_the_signal_for_signal_dependent_noise(kind):
    """The per-pixel std the training supervises the noise map with: on a ramp from black to white
    the measured std of many noisy copies matches the reported map column by column."""
    ramp = torch.linspace(0.05, 0.95, 32).reshape(1, 1, 1, 32).expand(256, 3, 8, 32).contiguous()
    mix = tuple(float(k == kind) for k in NOISE_KINDS)
    config = DegradationConfig(blur_prob=0.0, jpeg_prob=0.0, noise_prob=1.0, noise_mix=mix,
                               noise_sigma_range=(0.1, 0.1), clip=False)
    out = degrade(ramp, config, _gen(31))
    measured = (out.y - ramp).pow(2).mean(dim=(0, 1, 2)).sqrt()  # per column, over samples, channels, rows
    if kind == "signal_dependent":  # each sample has its own split of the variance: compare per sample
        measured = (out.y - ramp).pow(2).mean(dim=(1, 2)).sqrt().mean(0)
    reported = out.noise_std.mean(dim=(0, 1, 2))
    torch.testing.assert_close(measured, reported, rtol=0.06, atol=0)
    assert reported[-1] > 1.3 * reported[0]  # brighter pixels are noisier


def test_chroma_noise_is_mostly_colour_and_correlated_noise_is_smooth():
    x = torch.full((4, 3, 64, 64), 0.5)
    base = dict(blur_prob=0.0, jpeg_prob=0.0, noise_prob=1.0, noise_sigma_range=(0.1, 0.1), clip=False)
    white = degrade(x, DegradationConfig(**base, noise_mix=(1, 0, 0, 0, 0)), _gen(32)).y - x
    smooth = degrade(x, DegradationConfig(**base, noise_mix=(0, 0, 0, 1, 0)), _gen(32)).y - x
    chroma = degrade(x, DegradationConfig(**base, noise_mix=(0, 0, 0, 0, 1)), _gen(32)).y - x

    def neighbour_correlation(n):
        return torch.corrcoef(torch.stack([n[..., :-1].flatten(), n[..., 1:].flatten()]))[0, 1].item()

    assert abs(neighbour_correlation(white)) < 0.05 < 0.3 < neighbour_correlation(smooth)
    luma = chroma.mean(1)  # a grey-level change moves the three channels together
    assert luma.pow(2).mean() < 0.5 * chroma.pow(2).mean()


def test_clean_samples_and_8bit_rounding():
    x = (torch.rand(64, 3, 16, 16, generator=_gen(33)) * 255).round() / 255  # 8-bit, like the training crops
    config = DegradationConfig(clean_prob=0.5, quantize_prob=1.0, jpeg_prob=0.0, second_order_prob=0.5)
    out = degrade(x, config, _gen(34))
    untouched = (out.y == x).flatten(1).all(1)
    assert 10 < untouched.sum() < 54
    assert (out.noise_sigma[untouched] == 0).all() and not out.second_order[untouched].any()
    assert torch.equal(out.y, (out.y * 255).round() / 255)  # every sample is stored as 8 bits
    delta = torch.zeros(21, 21)
    delta[10, 10] = 1
    assert all(torch.equal(k, delta) for k in out.kernel[untouched])


def test_clip_controls_the_output_range():
    x = torch.rand(4, 3, 16, 16, generator=_gen(26))
    noisy = dict(blur_prob=0.0, jpeg_prob=0.0, noise_prob=1.0, noise_mix=(1, 0, 0), noise_sigma_range=(0.3, 0.4))
    clipped = degrade(x, DegradationConfig(**noisy), _gen(27)).y
    raw = degrade(x, DegradationConfig(**noisy, clip=False), _gen(27)).y
    assert clipped.min() == 0 and clipped.max() == 1
    assert raw.min() < 0 and raw.max() > 1
    torch.testing.assert_close(clipped, raw.clamp(0, 1))


def test_jpeg_quality_reported_only_where_applied():
    x = _textured_image(32, 32).repeat(16, 1, 1, 1)
    config = DegradationConfig(blur_prob=0.0, noise_prob=0.0, jpeg_prob=0.5, jpeg_quality_range=(40, 60))
    out = degrade(x, config, _gen(19))
    applied = out.jpeg_quality > 0
    assert 0 < applied.sum() < 16
    assert ((out.jpeg_quality[applied] >= 40) & (out.jpeg_quality[applied] <= 60)).all()
    assert torch.equal(out.y[~applied], x[~applied])
    assert not (out.y[applied] == x[applied]).flatten(1).all(1).any()


def test_unblurred_samples_report_a_delta_kernel():
    x = torch.rand(8, 3, 16, 16, generator=_gen(20))
    out = degrade(x, DegradationConfig(blur_prob=0.0, noise_prob=0.0, jpeg_prob=0.0), _gen(21))
    delta = torch.zeros(8, 21, 21)
    delta[:, 10, 10] = 1
    assert torch.equal(out.kernel, delta) and torch.equal(out.y, x)
    blurred = degrade(x, DegradationConfig(blur_prob=1.0, noise_prob=0.0, jpeg_prob=0.0), _gen(21))
    assert (blurred.kernel.amax((-2, -1)) < 1).all()
    torch.testing.assert_close(blurred.y, blur(x, blurred.kernel))


def test_second_order_keeps_first_order_parameters_and_changes_y():
    x = torch.rand(4, 3, 32, 32, generator=_gen(22))
    # a second pass that always blurs and adds noise, so it changes every sample
    first = degrade(x, DegradationConfig(second_order_prob=0.0, blur_prob=1.0, noise_prob=1.0), _gen(23))
    both = degrade(x, DegradationConfig(second_order_prob=1.0, blur_prob=1.0, noise_prob=1.0), _gen(23))
    assert not first.second_order.any() and both.second_order.all()
    for field in ("kernel", "noise_sigma", "jpeg_quality"):
        assert torch.equal(getattr(first, field), getattr(both, field)), field
    assert not (first.y == both.y).flatten(1).all(1).any()


@pytest.mark.parametrize("scale", [1, 4])
def test_operator_known_marks_exactly_the_samples_blurred_by_the_kernel_then_decimated(scale):
    x = torch.rand(24, 3, 32, 32, generator=_gen(40))
    # second-pass blurs at least 0.6 px wide, so they visibly change the sample
    config = DegradationConfig(scale=scale, blur_prob=1.0, noise_prob=0.0, jpeg_prob=0.0, second_order_prob=0.4,
                               sigma_range=(1.2, 3.0))
    out = degrade(x, config, _gen(41))
    known = out.operator_known(config.down_modes)
    expected = blur(x, out.kernel)[..., ::scale, ::scale]
    matches = (out.y - expected.clamp(0, 1)).abs().flatten(1).amax(1) < 1e-6
    assert known.any() and not known.all()
    assert matches[known].all()
    assert not matches[~known].any()
    if scale == 1:
        assert torch.equal(out.down_mode, torch.full((24,), -1)) and torch.equal(known, ~out.second_order)
    else:
        assert set(out.down_mode.tolist()) == set(range(len(config.down_modes)))
        without = DegradationConfig(scale=4, down_modes=("bicubic", "area"))
        assert not degrade(x, without, _gen(41)).operator_known(without.down_modes).any()


def test_presets():
    restore = DegradationConfig.preset("restore")
    assert restore.scale == 1 and restore.clean_prob > 0 and restore.quantize_prob > 0.5
    assert restore.jpeg_quality_range[0] == 10 and min(restore.noise_mix) > 0 and restore.mild_noise_share > 0
    first = DegradationConfig.preset("restore_v1")  # the first shipped model's mixture
    assert first.blur_prob == 0.7 and first.second_order_prob == 0.2 and first.noise_mix[3:] == (0.0, 0.0)
    sr = DegradationConfig.preset("sr4x")
    assert sr.scale == 4 and sr.clean_prob == 0.3 and sr.mild_noise_share > 0 and sr.blur_prob == 0.7
    assert DegradationConfig.preset("sr4x_v1").second_order_prob == 0.2  # the shipped sr4x_small's mixture
    denoise = DegradationConfig.preset("denoise")
    assert denoise.blur_prob == 0 and denoise.jpeg_prob == 0 and denoise.noise_prob > 0
    real = DegradationConfig.preset("realworld")
    assert real.scale == 1 and real.second_order_prob == 1.0
    with pytest.raises(ValueError, match="unknown"):
        DegradationConfig.preset("nope")
    out = degrade(torch.rand(2, 3, 16, 16, generator=_gen(24)), denoise, _gen(25))
    assert (out.jpeg_quality == 0).all() and (out.noise_sigma > 0).all()


def test_config_validation():
    with pytest.raises(ValueError, match="kernel_size"):
        DegradationConfig(kernel_size=20)
    with pytest.raises(ValueError, match="blur_prob"):
        DegradationConfig(blur_prob=1.5)
    with pytest.raises(ValueError, match="down_modes"):
        DegradationConfig(down_modes=("nearest",))
    with pytest.raises(ValueError, match="noise_mix"):
        DegradationConfig(noise_mix=(1.0, 0.0))
    with pytest.raises(ValueError, match="clean_prob"):
        DegradationConfig(clean_prob=-0.1)
    assert DegradationConfig(noise_mix=(1, 1, 1)).noise_mix == (1, 1, 1, 0.0, 0.0)  # configs older than 5 kinds
