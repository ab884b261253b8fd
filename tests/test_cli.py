"""Tests for the command line (``python -m unfoldldm restore|info``), mostly run in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import unfoldldm.api
import unfoldldm.pipeline
from unfoldldm.cli import main
from unfoldldm.config import preset
from unfoldldm.imageio import Picture, save_image

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("torch_one_thread")
H, W = 40, 48


# --------------------------------------------------------------------------------------------
# Helpers


def _rng(seed: int = 0) -> np.random.RandomState:
    return np.random.RandomState(seed)


def write_rgb(path: Path, seed: int = 0, size: tuple[int, int] = (H, W)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_rng(seed).randint(0, 256, (*size, 3), dtype=np.uint8), "RGB").save(path)
    return path


def write_png16(path: Path, mode: str, seed: int = 0) -> Path:
    """A 16-bit PNG ("RGB" or "L") with values that need all 16 bits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    words = _rng(seed).randint(0, 65536, (3, H, W)).astype(np.float32) / 65535
    rgb = torch.from_numpy(words)
    if mode == "L":
        rgb = rgb[:1].expand(3, -1, -1)
    save_image(path, Picture(rgb=rgb, alpha=None, mode=mode, bit_depth=16, source="test"))
    return path


def png_header(path: Path) -> tuple[int, int, int, int]:
    """(width, height, bit depth, colour type) from a PNG's IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big"), data[24], data[25]


def all_files(folder: Path) -> list[str]:
    """Every file below ``folder`` (hidden and temp files included), relative, sorted."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --------------------------------------------------------------------------------------------
# Help


@pytest.mark.parametrize(
    "argv, expected",
    [
        ([], ["restore", "info", "--task", "--tile", "--device"]),
        (["restore"], ["--task", "--model", "--tile", "--stages", "--seed", "--overwrite", "--save-estimates",
                       "--max-pixels", "--device", "sr4x"]),
        (["info"], ["--json", "model"]),
    ],
)
def test_help(capsys, argv, expected):
    with pytest.raises(SystemExit) as excinfo:
        main([*argv, "--help"])
    assert excinfo.value.code == 0
    out = capsys.readouterr().out
    for word in expected:
        assert word in out, (word, out)


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "restore" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# Default weights


@pytest.mark.parametrize("task", ["restore", "sr4x"])
def test_no_default_weights(tmp_path, capsys, monkeypatch, task):
    empty = tmp_path / "weights"
    empty.mkdir()
    monkeypatch.setattr(unfoldldm.api, "WEIGHTS_DIR", empty)
    src = write_rgb(tmp_path / "sample.png")
    code, _, err = run(capsys, "restore", src, "-o", tmp_path / "out", "--task", task, "--quiet")
    assert code == 2
    assert "No default weights" in err and f"'{task}'" in err and "--model" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------
# Restoring with a checkpoint


def test_file_folder_and_glob(tmp_path, capsys, ckpt):
    write_rgb(tmp_path / "single.png", 1)
    write_rgb(tmp_path / "folder" / "f1.png", 2)
    write_rgb(tmp_path / "folder" / "f2.jpg", 3, size=(33, 21))
    (tmp_path / "folder" / "readme.txt").write_text("not an image")
    write_rgb(tmp_path / "globbed" / "g1.png", 4)
    write_rgb(tmp_path / "globbed" / "g2.png", 5)
    write_rgb(tmp_path / "globbed" / "skip.bmp", 6)
    out = tmp_path / "new" / "out"  # does not exist yet: created on the first write
    code, _, err = run(capsys, "restore", tmp_path / "single.png", tmp_path / "folder", tmp_path / "globbed" / "g*.png",
                       "-o", out, "--model", ckpt, "--quiet")
    assert code == 0, err
    assert "restored 5 of 5" in err
    assert all_files(out) == ["f1.png", "f2.jpg", "g1.png", "g2.png", "single.png"]
    for name in ("f1.png", "g1.png", "g2.png", "single.png"):
        with Image.open(out / name) as img:
            assert img.size == (W, H) and img.mode == "RGB"
    with Image.open(out / "f2.jpg") as img:
        assert img.size == (21, 33) and img.format == "JPEG"
    # The model changes the image (it is not copied through).
    restored = np.asarray(Image.open(out / "single.png"), dtype=np.int16)
    original = np.asarray(Image.open(tmp_path / "single.png"), dtype=np.int16)
    assert np.abs(restored - original).max() > 0


def test_single_output_file(tmp_path, capsys, ckpt):
    src = write_rgb(tmp_path / "in.png")
    code, _, err = run(capsys, "restore", src, "-o", tmp_path / "sub" / "result.png", "--model", ckpt, "--quiet")
    assert code == 0, err
    assert all_files(tmp_path / "sub") == ["result.png"]


@pytest.mark.parametrize("task_flag", [["--task", "sr4x"], []])
def test_sr4x_output_is_four_times_larger(tmp_path, capsys, nano_checkpoints, task_flag):
    """With --model the model's own task decides the scale."""
    src = write_rgb(tmp_path / "small.png")
    code, _, err = run(capsys, "restore", src, "-o", tmp_path / "big.png", "--model", nano_checkpoints["sr4x"],
                       *task_flag, "--quiet")
    assert code == 0, err
    with Image.open(tmp_path / "big.png") as img:
        assert img.size == (4 * W, 4 * H)


def test_rgba_keeps_alpha(tmp_path, capsys, ckpt):
    rgba = _rng(1).randint(0, 256, (H, W, 4), dtype=np.uint8)
    rgba[:10, :, 3] = 0
    rgba[10:20, :, 3] = 255
    src = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(src)
    code, _, err = run(capsys, "restore", src, "-o", tmp_path / "out", "--model", ckpt, "--quiet")
    assert code == 0, err
    with Image.open(tmp_path / "out" / "rgba.png") as img:
        assert img.mode == "RGBA" and img.size == (W, H)
        out = np.asarray(img)
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])
    assert np.abs(out[..., :3].astype(int) - rgba[..., :3]).max() > 0


def test_greyscale_stays_greyscale(tmp_path, capsys, ckpt):
    src = tmp_path / "grey.png"
    Image.fromarray(_rng(2).randint(0, 256, (H, W), dtype=np.uint8), "L").save(src)
    code, _, err = run(capsys, "restore", src, "-o", tmp_path / "out", "--model", ckpt, "--quiet")
    assert code == 0, err
    with Image.open(tmp_path / "out" / "grey.png") as img:
        assert img.mode == "L" and img.size == (W, H)


@pytest.mark.parametrize("mode, colour_type", [("RGB", 2), ("L", 0)])
def test_16bit_png_stays_16bit(tmp_path, capsys, ckpt, mode, colour_type):
    src = write_png16(tmp_path / "deep.png", mode)
    assert png_header(src) == (W, H, 16, colour_type)
    code, _, err = run(capsys, "restore", src, "-o", tmp_path / "out", "--model", ckpt, "--quiet")
    assert code == 0, err
    assert png_header(tmp_path / "out" / "deep.png") == (W, H, 16, colour_type)


def test_save_estimates(tmp_path, capsys, ckpt):
    src = write_rgb(tmp_path / "photo.png")
    code, _, err = run(capsys, "restore", src, "-o", tmp_path / "out", "--model", ckpt, "--save-estimates", "--quiet")
    assert code == 0, err
    assert all_files(tmp_path / "out") == ["photo.png", "photo_kernel.png", "photo_noise.png"]
    with Image.open(tmp_path / "out" / "photo_kernel.png") as img:
        assert img.mode == "RGB" and img.width == img.height > 0
    with Image.open(tmp_path / "out" / "photo_noise.png") as img:
        assert img.mode == "L" and img.size == (W, H)


def test_no_estimates_without_flag(tmp_path, capsys, ckpt):
    src = write_rgb(tmp_path / "photo.png")
    assert run(capsys, "restore", src, "-o", tmp_path / "out", "--model", ckpt, "--quiet")[0] == 0
    assert all_files(tmp_path / "out") == ["photo.png"]


def test_seed_decides_the_output(tmp_path, capsys, ckpt):
    # A 16-bit input, so the seed's effect is not lost to 8-bit rounding.
    src = write_png16(tmp_path / "in" / "x.png", "RGB", seed=4)
    outputs = {}
    for folder, seed, extra in (("a", 1, []), ("b", 1, []), ("c", 2, []), ("a", 2, ["--overwrite"])):
        code, _, err = run(capsys, "restore", src, "-o", tmp_path / folder, "--model", ckpt, "--seed", seed,
                           "--quiet", *extra)
        assert code == 0, err
        outputs[folder, seed] = (tmp_path / folder / "x.png").read_bytes()
    assert outputs["a", 1] == outputs["b", 1]
    assert outputs["a", 1] != outputs["c", 2]
    assert outputs["a", 2] == outputs["c", 2]  # --overwrite replaced the file with the seed-2 result


def test_ensemble_flag_averages_orientations(tmp_path, capsys, ckpt):
    src = write_png16(tmp_path / "in" / "x.png", "RGB", seed=5)
    outputs = {}
    for passes in ("1", "8"):
        code, _, err = run(capsys, "restore", src, "-o", tmp_path / passes, "--model", ckpt, "--ensemble", passes, "--quiet")
        assert code == 0, err
        outputs[passes] = (tmp_path / passes / "x.png").read_bytes()
    code, _, err = run(capsys, "restore", src, "-o", tmp_path / "default", "--model", ckpt, "--quiet")
    assert code == 0, err
    assert (tmp_path / "default" / "x.png").read_bytes() == outputs["1"] != outputs["8"]


def test_tiled_and_untiled_agree_in_size(tmp_path, capsys, ckpt):
    src = write_rgb(tmp_path / "wide.png", size=(40, 150))
    for tile, folder in (("64", "tiled"), ("0", "whole")):
        code, _, err = run(capsys, "restore", src, "-o", tmp_path / folder, "--model", ckpt, "--tile", tile,
                           "--overlap", "16", "--stages", "1", "--quiet")
        assert code == 0, err
        with Image.open(tmp_path / folder / "wide.png") as img:
            assert img.size == (150, 40)


def test_one_pixel_image(tmp_path, capsys, ckpt):
    src = tmp_path / "dot.png"
    Image.fromarray(np.full((1, 1, 3), 120, np.uint8), "RGB").save(src)
    code, _, err = run(capsys, "restore", src, "-o", tmp_path / "out", "--model", ckpt, "--quiet")
    assert code == 0, err
    with Image.open(tmp_path / "out" / "dot.png") as img:
        assert img.size == (1, 1)


# --------------------------------------------------------------------------------------------
# Never overwriting


def test_existing_output_is_kept(tmp_path, capsys, ckpt):
    write_rgb(tmp_path / "in" / "a.png", 1)
    write_rgb(tmp_path / "in" / "b.png", 2)
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"precious")
    code, _, err = run(capsys, "restore", tmp_path / "in", "-o", out, "--model", ckpt, "--quiet")
    assert code == 1
    assert "a.png" in err and "--overwrite" in err and "Traceback" not in err
    assert "restored 1 of 2" in err
    assert (out / "a.png").read_bytes() == b"precious"
    assert all_files(out) == ["a.png", "b.png"]

    code, _, err = run(capsys, "restore", tmp_path / "in", "-o", out, "--model", ckpt, "--quiet", "--overwrite")
    assert code == 0, err
    with Image.open(out / "a.png") as img:
        assert img.size == (W, H)


def test_output_equal_to_input_is_refused(tmp_path, capsys, ckpt):
    src = write_rgb(tmp_path / "in" / "a.png")
    before = src.read_bytes()
    for output in (src, tmp_path / "in"):
        code, _, err = run(capsys, "restore", src, "-o", output, "--model", ckpt, "--quiet")
        assert code == 2
        assert "also an input" in err and "Traceback" not in err
        assert src.read_bytes() == before
    assert all_files(tmp_path / "in") == ["a.png"]


def test_one_output_file_for_two_inputs(tmp_path, capsys, ckpt):
    a, b = write_rgb(tmp_path / "a.png", 1), write_rgb(tmp_path / "b.png", 2)
    code, _, err = run(capsys, "restore", a, b, "-o", tmp_path / "out" / "one.png", "--model", ckpt, "--quiet")
    assert code == 2
    assert "one.png" in err and "2 inputs" in err
    assert not (tmp_path / "out").exists()


def test_inputs_with_the_same_name(tmp_path, capsys, ckpt):
    a, b = write_rgb(tmp_path / "x" / "same.png", 1), write_rgb(tmp_path / "y" / "same.png", 2)
    code, _, err = run(capsys, "restore", a, b, "-o", tmp_path / "out", "--model", ckpt, "--quiet")
    assert code == 2 and "same.png" in err
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------
# Bad inputs: a clear message, nonzero exit, no traceback, nothing written


def _bad_image(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / "in" / "bad.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "missing":
        return path
    if kind == "text":
        path.write_text("definitely not a PNG\n")
    elif kind == "truncated":
        good = write_rgb(tmp_path / "good.png")
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "large":
        write_rgb(path)
    return path


@pytest.mark.parametrize(
    "kind, extra, message",
    [
        ("missing", [], "does not exist"),
        ("text", [], "not an image file"),
        ("truncated", [], "truncated or corrupt"),
        ("empty", [], "empty (0 bytes)"),
        ("large", ["--max-pixels", "1000"], "more than the limit of 1,000"),
    ],
)
def test_bad_input_image(tmp_path, capsys, ckpt, kind, extra, message):
    src = _bad_image(tmp_path, kind)
    out = tmp_path / "out"
    code, _, err = run(capsys, "restore", src, "-o", out, "--model", ckpt, "--quiet", *extra)
    assert code != 0
    assert "error:" in err and message in err and "bad.png" in err, err
    assert "Traceback" not in err
    assert all_files(out) == []


def test_bad_image_does_not_stop_the_others(tmp_path, capsys, ckpt):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a_bad.png").write_bytes(b"")
    write_rgb(tmp_path / "in" / "b_good.png")
    code, _, err = run(capsys, "restore", tmp_path / "in", "-o", tmp_path / "out", "--model", ckpt, "--quiet")
    assert code == 1 and "a_bad.png" in err and "restored 1 of 2" in err
    assert all_files(tmp_path / "out") == ["b_good.png"]


@pytest.mark.parametrize(
    "model, message",
    [
        ("pickle", "pickle"),
        ("mismatched", "do not match"),
        ("missing", "no such checkpoint"),
        ("no_such_name", "No model named"),
    ],
)
def test_bad_model(tmp_path, capsys, nano_checkpoints, model, message):
    if model == "pickle":
        model_arg = tmp_path / "model.pth"
        torch.save({"w": torch.zeros(1)}, model_arg)
    elif model == "mismatched":
        model_arg = nano_checkpoints["mismatched"]
    elif model == "missing":
        model_arg = tmp_path / "nope.safetensors"
    else:
        model_arg = "no_such_model_name"
    src = write_rgb(tmp_path / "in.png")
    code, _, err = run(capsys, "restore", src, "-o", tmp_path / "out", "--model", model_arg, "--quiet")
    assert code == 2
    assert "error:" in err and message in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "device, message, skip",
    [
        ("warp9", "Unknown device", False),
        ("cuda:x", "Unknown device", False),
        ("cuda", "no CUDA GPU", torch.cuda.is_available()),
        ("mps", "no Apple GPU", getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()),
        ("meta", "Unsupported device", False),
    ],
)
def test_bad_device(tmp_path, capsys, ckpt, device, message, skip):
    if skip:
        pytest.skip(f"{device} is available here")
    src = write_rgb(tmp_path / "in.png")
    code, _, err = run(capsys, "restore", src, "-o", tmp_path / "out", "--model", ckpt, "--device", device, "--quiet")
    assert code == 2
    assert message in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv", [["--tile", "abc"], ["--stages", "0"], ["--task", "sr3x"], ["--dtype", "fp8"],
                                  ["--ensemble", "3"]])
def test_bad_option_values(tmp_path, capsys, ckpt, argv):
    src = write_rgb(tmp_path / "in.png")
    with pytest.raises(SystemExit) as excinfo:
        main(["restore", str(src), "-o", str(tmp_path / "out"), "--model", str(ckpt), *argv])
    assert excinfo.value.code == 2
    assert argv[0] in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_too_many_stages(tmp_path, capsys, ckpt):
    src = write_rgb(tmp_path / "in.png")
    code, _, err = run(capsys, "restore", src, "-o", tmp_path / "out", "--model", ckpt, "--stages", "9", "--quiet")
    assert code != 0 and "stages must be between 1 and 2" in err
    assert all_files(tmp_path / "out") == []


# --------------------------------------------------------------------------------------------
# info


def test_info_text(capsys, nano_checkpoints):
    path = nano_checkpoints["sr4x"]
    code, out, err = run(capsys, "info", path)
    assert code == 0, err
    lines = out.splitlines()
    assert any(line.split() == ["task", "sr4x"] for line in lines)
    assert any(line.split() == ["scale", "4"] for line in lines)
    assert any(line.split()[:1] == ["path"] and line.endswith(path.name) for line in lines)
    for key, value in preset("nano", task="sr4x").to_dict().items():
        assert any(line.split()[:1] == [key] and str(value) in line for line in lines), key
    assert any(line.split() == ["steps", "12"] for line in lines)
    assert any(line.split() == ["device", "cpu"] for line in lines)


def test_info_json(capsys, nano_checkpoints):
    code, out, err = run(capsys, "info", nano_checkpoints["restore"], "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["task"] == "restore" and record["scale"] == 1
    assert record["provenance"] == {"steps": 12, "device": "cpu"}
    assert record["config"] == json.loads(preset("nano").to_json())
    assert record["package_version"] == unfoldldm.__version__
    assert record["tensors"] > 0


@pytest.mark.parametrize("which", ["mismatched_name", "pickle", "missing"])
def test_info_errors(tmp_path, capsys, which):
    if which == "pickle":
        model = tmp_path / "m.ckpt"
        model.write_bytes(b"\x80\x04N.")
    elif which == "missing":
        model = tmp_path / "gone.safetensors"
    else:
        model = "restore_small_but_not_installed"
    code, out, err = run(capsys, "info", model)
    assert code == 2 and "error:" in err and "Traceback" not in err
    assert out == ""


# --------------------------------------------------------------------------------------------
# Ctrl-C


def test_ctrl_c_leaves_nothing(tmp_path, capsys, ckpt, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(unfoldldm.pipeline, "restore", interrupted)
    src = write_rgb(tmp_path / "in.png")
    code, _, err = run(capsys, "restore", src, "-o", tmp_path / "out", "--model", ckpt, "--quiet")
    assert code == 130
    assert "interrupted" in err and "Traceback" not in err
    assert all_files(tmp_path / "out") == []
    assert all_files(tmp_path) == ["in.png"]


# --------------------------------------------------------------------------------------------
# Real processes: exit codes and no tracebacks


def _python_m(*argv, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "unfoldldm", *map(str, argv)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_subprocess_success(tmp_path, ckpt):
    src = write_rgb(tmp_path / "in.png")
    proc = _python_m("restore", src, "-o", "out", "--model", ckpt, "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    with Image.open(tmp_path / "out" / "in.png") as img:
        assert img.size == (W, H)


def test_subprocess_failure(tmp_path):
    (tmp_path / "broken.png").write_text("not an image")
    (tmp_path / "model.pth").write_bytes(b"\x80\x04N.")
    proc = _python_m("restore", "broken.png", "-o", "out", "--model", "model.pth", "--device", "cpu", cwd=tmp_path)
    assert proc.returncode == 2
    assert "error:" in proc.stderr and "pickle" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()
