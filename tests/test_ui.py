"""The Gradio UI: the gradio-free helpers, and the tab builder on the installed Gradio.

``UNFOLDLDM_OLD_GRADIO=1`` also runs this file and tests/test_a1111.py under Gradio 3.41.2 (A1111
1.x) and 4.40.0 (Forge), each in its own venv (scripts_dev/check_gradio.sh, which builds
.gradio-<version>/ on first use, a minute or two each).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unfoldldm.errors import InputImageError, UnfoldLDMError
from unfoldldm.ui.core import (
    ModelRegistry,
    UIOptions,
    blend,
    restore_folder,
    restore_picture,
)
from unfoldldm.visualize import KERNEL_VIEW_SIDE

REPO = Path(__file__).resolve().parents[1]
FAST = UIOptions(stages=1, tile=0)

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _image(mode="RGB", size=(40, 32), seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}[mode]
    pixels = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    img = Image.fromarray(pixels[..., 0] if channels == 1 else pixels)
    return img if img.mode == mode else img.convert(mode)


@pytest.fixture(scope="module")
def restore_model():
    from model_helpers import make_nano

    return make_nano("restore")


@pytest.fixture(scope="module")
def sr_model():
    from model_helpers import make_nano

    return make_nano("sr4x")


# ---- restore_picture (no gradio) ---------------------------------------------------------------


def test_restore_picture_rgb(restore_model):
    src = _image("RGB")
    out, kernel, noise = restore_picture(restore_model, src, FAST)
    assert out.mode == "RGB" and out.size == src.size
    assert np.asarray(out).dtype == np.uint8
    assert kernel.mode == "RGB" and kernel.width == kernel.height >= KERNEL_VIEW_SIDE  # large enough to read
    assert noise.mode == "L" and noise.size == src.size
    assert not np.array_equal(np.asarray(out), np.asarray(src))


def test_restore_picture_keeps_alpha_and_grey(restore_model):
    src = _image("RGBA")
    alpha = np.asarray(src)[..., 3]
    out, _, _ = restore_picture(restore_model, src, FAST)
    assert out.mode == "RGBA" and out.size == src.size
    assert np.array_equal(np.asarray(out)[..., 3], alpha)  # same size: the alpha plane is passed through
    grey, _, _ = restore_picture(restore_model, _image("L"), FAST)
    assert grey.mode == "L"


def test_restore_picture_sr4x(sr_model):
    src = _image("RGBA", size=(20, 12))
    out, _, noise = restore_picture(sr_model, src, FAST)
    assert out.size == (80, 48) and out.mode == "RGBA"
    assert noise.size == (20, 12)  # the noise map is estimated on the input


def test_restore_picture_bad_inputs(restore_model):
    with pytest.raises(InputImageError, match="No input image"):
        restore_picture(restore_model, None, FAST)
    with pytest.raises(InputImageError, match="Pillow image"):
        restore_picture(restore_model, b"\x89PNG not really", FAST)
    with pytest.raises(InputImageError, match="more than the limit"):
        restore_picture(restore_model, _image("RGB", size=(64, 64)), UIOptions(max_pixels=1000))


def test_restore_folder(restore_model, tmp_path):
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    _image("RGB").save(src / "a.png")
    _image("RGBA", seed=1).save(src / "b.png")
    (src / "c.png").write_bytes(b"broken")
    calls = []
    report = restore_folder(restore_model, src, dst, FAST, lambda d, t, n: calls.append((d, t)))
    assert report.done == ["a.png", "b.png"] and len(report.failed) == 1 and "c.png" in report.failed[0]
    assert Image.open(dst / "b.png").mode == "RGBA"
    assert calls[0] == (0, 3) and calls[-1] == (3, 3)
    again = restore_folder(restore_model, src, dst, FAST)  # nothing existing is replaced
    assert again.skipped == ["a.png", "b.png"] and not again.done
    with pytest.raises(UnfoldLDMError, match="no such folder"):
        restore_folder(restore_model, tmp_path / "missing", dst, FAST)


def test_blend():
    before, after = Image.new("RGB", (4, 4), (0, 0, 0)), Image.new("RGB", (8, 8), (200, 100, 0))
    assert blend(before, after, 0.0).getpixel((1, 1))[:3] == (0, 0, 0)
    assert blend(before, after, 1.0).getpixel((1, 1))[:3] == (200, 100, 0)
    assert blend(before, after, 0.5).size == (8, 8)


def test_model_registry(nano_checkpoints, tmp_path):
    registry = ModelRegistry([nano_checkpoints["restore"].parent])
    names = registry.names()
    assert {"restore_nano", "sr4x_nano"} <= set(names)
    model = registry.load("sr4x_nano", "cpu", "fp32")
    assert model.scale == 4 and registry.load("sr4x_nano", "cpu", "fp32") is model  # cached
    with pytest.raises(UnfoldLDMError, match="No model is selected"):
        registry.load("", "cpu")
    with pytest.raises(UnfoldLDMError, match="No model named"):
        registry.load("nope", "cpu")


# ---- the builder, on the installed gradio ----------------------------------------------------


@pytest.fixture(scope="module")
def gr():
    return pytest.importorskip("gradio")


@pytest.fixture(scope="module")
def built(gr, restore_model, sr_model):
    from unfoldldm.ui.builder import build_restore_ui

    loaded = []
    models = {"restore_nano": restore_model, "sr4x_nano": sr_model}

    def load(name, device="auto", dtype="auto"):
        loaded.append((name, device, dtype))
        if name not in models:
            raise UnfoldLDMError(f"No model named '{name}'.")
        return models[name]

    wrapped = []

    def wrapper(fn):
        wrapped.append(fn.__name__)
        return fn

    with gr.Blocks() as demo:
        ui = build_restore_ui(models=lambda: list(models), load=load, device_choice=True,
                              on_run_wrapper=wrapper, default_model="sr4x_nano")
    return demo, ui, loaded, wrapped


def _args(model="restore_nano", amount=0.5, ensemble="1"):
    return (model, 1, 0, 0, 0, 1.0, ensemble, amount, "cpu", "fp32")


def test_builder_constructs(built, gr):
    demo, ui, _, wrapped = built
    assert isinstance(demo, gr.Blocks)
    assert wrapped == ["run_image", "run_batch"]
    for name in ("input", "input_file", "model", "device", "dtype", "stages", "prior_steps", "seed", "tile",
                 "strength", "ensemble", "run", "output", "kernel", "noise", "compare", "compare_amount", "batch_in",
                 "batch_out", "batch_run", "batch_status"):
        assert name in ui.components, name
    assert ui.components["model"].value == "sr4x_nano"
    update = ui.refresh_models("gone")
    assert update["value"] == "restore_nano" and len(update["choices"]) == 2


def test_run_handler(built, tmp_path):
    _, ui, loaded, _ = built
    src = _image("RGBA", size=(24, 16))
    out, download, status, kernel, noise, compare, pair = ui.run_image(src, None, *_args("sr4x_nano"), progress=None)
    assert loaded[-1] == ("sr4x_nano", "cpu", "fp32")
    assert out.size == (96, 64) and out.mode == "RGBA"
    assert Image.open(download).size == (96, 64) and download.endswith(".png")
    assert "24x16 -> 96x64" in status
    assert kernel.width == kernel.height >= KERNEL_VIEW_SIDE and noise.size == (24, 16)
    assert compare.size == (96, 64) and pair[1] is out
    assert ui.compare(pair, 1.0).getpixel((3, 3)) == out.convert("RGBA").getpixel((3, 3))
    assert ui.compare(None, 0.3) is None


def test_run_handler_file_input(built, tmp_path):
    _, ui, _, _ = built
    path = tmp_path / "in.png"
    _image("L", size=(20, 20)).save(path)
    out = ui.run_image(None, str(path), *_args(), progress=None)[0]
    assert out.size == (20, 20) and out.mode == "L"


def test_run_handler_ensemble(built, gr, tmp_path):
    _, ui, _, _ = built
    path = tmp_path / "in.png"
    _image("RGB", size=(24, 20)).save(path)
    plain = ui.run_image(None, str(path), *_args(), progress=None)[0]
    twice = ui.run_image(None, str(path), *_args(ensemble="2"), progress=None)[0]
    assert twice.size == plain.size == (24, 20) and twice.tobytes() != plain.tobytes()
    with pytest.raises(gr.Error, match="ensemble must be one of 1, 2, 4, 8"):
        ui.run_image(None, str(path), *_args(ensemble="3"), progress=None)


def test_run_handler_errors_are_messages(built, gr, tmp_path):
    _, ui, _, _ = built
    with pytest.raises(gr.Error, match="No input image"):
        ui.run_image(None, None, *_args(), progress=None)
    note = tmp_path / "notes.txt"
    note.write_text("hello")
    with pytest.raises(gr.Error, match="not an image file") as info:
        ui.run_image(None, str(note), *_args(), progress=None)
    assert str(tmp_path) not in str(info.value)  # the server's paths are not shown
    with pytest.raises(gr.Error, match="No model named"):
        ui.run_image(_image(), None, *_args("missing"), progress=None)


def test_batch_handler(built, tmp_path):
    _, ui, _, _ = built
    src = tmp_path / "in"
    src.mkdir()
    _image().save(src / "x.png")
    text = ui.run_batch(str(src), str(tmp_path / "out"), False, *_args()[:7], "cpu", "fp32", progress=None)
    assert "restored 1 image(s)" in text and (tmp_path / "out" / "x.png").exists()


def test_upload_limit_in_handler(gr, restore_model, tmp_path):
    from unfoldldm.ui.builder import build_restore_ui

    with gr.Blocks():
        ui = build_restore_ui(models=lambda: ["m"], load=lambda name: restore_model, device_choice=False,
                              max_upload_bytes=100, batch=False)
    assert ui.run_batch is None and "batch_run" not in ui.components
    path = tmp_path / "big.png"
    _image(size=(32, 32)).save(path)
    with pytest.raises(gr.Error, match="upload limit"):
        ui.run_image(None, str(path), *_args("m"), progress=None)


def test_queue_and_launch_kwargs(gr):
    from unfoldldm.ui import compat

    kwargs = compat.queue_kwargs(concurrency=1)
    assert kwargs.get("default_concurrency_limit", kwargs.get("concurrency_count")) == 1
    assert "max_file_size" in compat.launch_kwargs(max_file_size=10) or compat.GRADIO_MAJOR < 4


def test_core_does_not_import_gradio():
    code = ("import sys, unfoldldm.ui.cli, unfoldldm.ui.core, unfoldldm.cli, unfoldldm.pipeline; "
            "sys.exit('gradio' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_app_subcommand_is_listed():
    from unfoldldm.cli import build_parser

    args = build_parser().parse_args(["app", "--port", "0", "--listen", "--model-dir", "x", "--max-upload-mb", "2"])
    assert args.command == "app" and args.listen and args.model_dir == ["x"] and args.max_upload_mb == 2


@pytest.mark.skipif(os.environ.get("UNFOLDLDM_OLD_GRADIO") != "1",
                    reason="set UNFOLDLDM_OLD_GRADIO=1 to run the UI tests under gradio 3.41.2 and 4.40.0 as well "
                           "(scripts_dev/check_gradio.sh builds .gradio-<version>/, a minute or two each)")
@pytest.mark.parametrize("version", ["3.41.2", "4.40.0"])
def test_under_older_gradio(version):
    start = time.monotonic()
    proc = subprocess.run(["bash", str(REPO / "scripts_dev" / "check_gradio.sh"), version], cwd=REPO,
                          capture_output=True, text=True, timeout=1500)
    tail = (proc.stdout + proc.stderr)[-4000:]
    assert proc.returncode == 0, f"check_gradio.sh {version} failed after {time.monotonic() - start:.0f} s:\n{tail}"
    assert f"gradio {version}" in proc.stdout, tail
