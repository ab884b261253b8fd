"""Hostile and careless input, kept so it stays handled: every case of the issue "the app must not
write outside what the user chose, a bad checkpoint must not take a host down, and every bad
option gets a clear error" (items 1-8), each with its clear error or fix.
"""

from __future__ import annotations

import base64
import json
import math
import os
import shlex
import signal
import stat
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image, ImageFile

import unfoldldm
from unfoldldm.checkpoint import load_checkpoint, read_checkpoint_info
from unfoldldm.cli import main
from unfoldldm.config import (
    FIELD_RULES,
    MAX_MODEL_MEMORY_BYTES,
    MAX_PARAMETERS,
    ModelConfig,
    estimate_memory_bytes,
    estimate_parameters,
    preset,
)
from unfoldldm.errors import CheckpointError, InputImageError, UnfoldLDMError
from unfoldldm.imageio import load_image

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _png(path: Path, size=(48, 40), seed=0, mode="RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], len(mode)), dtype=np.uint8)
    Image.fromarray(pixels if len(mode) > 1 else pixels[..., 0]).save(path)
    return path


def _huge_png(path: Path, width: int, height: int) -> Path:
    """A real 1x1 PNG whose header claims width x height pixels (about 70 bytes)."""
    Image.new("RGB", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = bytearray(data[12:29])
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    path.write_bytes(bytes(data))
    return path


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def no_decoding(monkeypatch):
    """Any pixel decoding fails the test (header reads are allowed)."""

    def refuse(self):
        raise AssertionError("pixel data was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


# ================================================================================================
# 1. The app writes only inside --batch-root folders; Host headers are checked


@pytest.fixture
def batch_tree(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    _png(root / "in" / "a.png")
    _png(outside / "victim.png", seed=9)
    (root / "link_out").symlink_to(outside, target_is_directory=True)
    (root / "in_links").mkdir()
    (root / "in_links" / "leak.png").symlink_to(outside / "victim.png")
    return root, outside


@pytest.mark.parametrize("src, dst", [
    ("{outside}", "out"),                   # reading any folder
    ("in", "{outside}"),                    # writing any folder
    ("in", "a/../../outside/deep"),          # creating folders through '..'
    ("in", "link_out"),                      # a symlink inside the root that points out
    ("{home}/.ssh", "out"),                 # probing whether a path exists
    ("{outside}/missing", "out"),
])
def test_batch_folders_must_stay_inside_the_roots(batch_tree, make_nano_model, src, dst):
    from unfoldldm.ui.core import restore_folder

    root, outside = batch_tree
    names = {"outside": outside, "home": Path.home()}
    victim = (outside / "victim.png").read_bytes()
    with pytest.raises(InputImageError, match="must be inside the batch folders") as info:
        restore_folder(make_nano_model(), src.format(**names), dst.format(**names), overwrite=True, roots=[root])
    assert "no such" not in str(info.value)  # a refusal says nothing about whether the path exists
    assert (outside / "victim.png").read_bytes() == victim
    assert sorted(p.name for p in outside.iterdir()) == ["victim.png"]


def test_batch_refusals_do_not_reveal_whether_a_path_exists(batch_tree, make_nano_model):
    from unfoldldm.ui.core import restore_folder

    root, outside = batch_tree
    messages = set()
    for folder in (outside, outside / "missing"):
        with pytest.raises(InputImageError) as info:
            restore_folder(make_nano_model(), str(folder), "out", roots=[root])
        messages.add(str(info.value))
    assert len(messages) == 1


def test_batch_inside_the_root_works_and_skips_links_out(batch_tree, make_nano_model):
    from unfoldldm.ui.core import restore_folder

    root, _ = batch_tree
    report = restore_folder(make_nano_model(), "in", "out/deep", roots=[root])  # relative: inside the root
    assert report.done == ["a.png"] and (root / "out" / "deep" / "a.png").is_file()
    report = restore_folder(make_nano_model(), str(root / "in_links"), "out2", roots=[root])
    assert report.done == [] and "outside the batch folders" in report.failed[0]


def test_app_has_no_batch_tab_without_a_batch_root(tmp_path, ckpt):
    pytest.importorskip("gradio")
    from unfoldldm.ui.app import create_app

    _, ui = create_app([ckpt.parent], device="cpu")
    assert ui.run_batch is None and "batch_in" not in ui.components
    (tmp_path / "photos").mkdir()
    _, ui = create_app([ckpt.parent], device="cpu", batch_root=[tmp_path / "photos"])
    assert ui.run_batch is not None
    with pytest.raises(UnfoldLDMError, match="no such folder"):
        create_app([ckpt.parent], device="cpu", batch_root=[tmp_path / "missing"])


def test_app_cli_has_no_batch_switch_that_opens_every_path():
    from unfoldldm.cli import build_parser

    args = build_parser().parse_args(["app"])
    assert args.batch_root == [] and not hasattr(args, "batch")


@pytest.mark.parametrize("host, listen, allowed, ok", [
    ("127.0.0.1:7861", False, (), True),
    ("localhost:7861", False, (), True),
    ("[::1]:7861", False, (), True),
    ("evil.example:7861", False, (), False),  # DNS rebinding
    ("evil.example:7861", True, (), False),
    ("192.168.1.5:7861", False, (), False),
    ("192.168.1.5:7861", True, (), True),
    ("mybox.lan:7861", True, ("mybox.lan",), True),
    ("MYBOX.LAN.", True, ("mybox.lan",), True),
    ("", False, (), False),
    (None, True, (), False),
])
def test_host_header_check(host, listen, allowed, ok):
    pytest.importorskip("gradio")
    from unfoldldm.ui.app import host_allowed

    assert host_allowed(host, listen, allowed) is ok


def test_host_guard_refuses_before_any_route():
    pytest.importorskip("gradio")
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from unfoldldm.ui.app import HostGuard

    reached = []

    def endpoint(request):
        reached.append(request.url.path)
        return PlainTextResponse("ok")

    app = HostGuard(Starlette(routes=[Route("/gradio_api/upload", endpoint, methods=["GET", "POST"])]))
    client = TestClient(app)
    assert client.post("/gradio_api/upload", headers={"Host": "evil.example:7861"}).status_code == 400
    assert reached == []
    assert client.post("/gradio_api/upload", headers={"Host": "127.0.0.1:7861"}).text == "ok"


# ----- uploads: pixel limit from the header, temp folders, upload cache ---------------------------

def test_image_upload_is_checked_from_its_header_before_decoding(tmp_path, no_decoding):
    pytest.importorskip("gradio")
    from unfoldldm.ui.builder import check_image_payload

    huge = _huge_png(tmp_path / "bomb.png", 13000, 13000)
    for payload in (str(huge), {"path": str(huge)},
                    "data:image/png;base64," + base64.b64encode(huge.read_bytes()).decode()):
        with pytest.raises(InputImageError, match="13000x13000") as info:
            check_image_payload(payload, max_pixels=8192 * 8192, max_upload_bytes=2**20)
        assert str(tmp_path) not in str(info.value)
    check_image_payload(str(_huge_png(tmp_path / "fine.png", 100, 100)), 8192 * 8192, None)


def test_the_app_image_input_refuses_before_gradio_decodes(tmp_path, no_decoding):
    gr = pytest.importorskip("gradio")
    from unfoldldm.ui.builder import build_restore_ui

    with gr.Blocks():
        ui = build_restore_ui(models=lambda: [], load=lambda *a: None, device_choice=False, batch=False)
    component = ui.components["input"]
    payload = component.data_model(path=str(_huge_png(tmp_path / "bomb.png", 13000, 13000)))
    with pytest.raises(gr.Error, match="13000x13000"):
        component.preprocess(payload)


def test_download_folders_are_bounded():
    pytest.importorskip("gradio")
    from unfoldldm.ui.builder import DownloadSpool

    spool = DownloadSpool(keep=3)
    folders = [spool.new_folder() for _ in range(8)]
    assert [f.is_dir() for f in folders] == [False] * 5 + [True] * 3
    assert len(list(folders[0].parent.iterdir())) == 3


def test_upload_cache_is_pruned(tmp_path):
    pytest.importorskip("gradio")
    from unfoldldm.ui.app import prune_cache

    cache = tmp_path / "cache"
    now = time.time()
    for i in range(10):
        path = cache / f"h{i}" / "upload.png"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x" * 1000)
        age = 600 * (10 - i) + 30  # 100 min ... 10 min old
        os.utime(path, (now - age, now - age))
    (cache / "made_by_gradio").mkdir()  # an empty folder of Gradio's own: it must stay (its server needs it)
    prune_cache(cache, max_bytes=10**9, max_age_s=3600)  # the ones over an hour old go, with their folders
    assert len(list(cache.rglob("*.png"))) == 5 and len(list(cache.iterdir())) == 6
    assert (cache / "made_by_gradio").is_dir()
    prune_cache(cache, max_bytes=2500, max_age_s=3600)  # then the oldest, down to the size bound
    assert sorted(p.parent.name for p in cache.rglob("*.png")) == ["h8", "h9"]


def test_image_input_errors_name_the_upload_not_the_server_path(tmp_path, make_nano_model):
    pytest.importorskip("gradio")
    import gradio as gr

    from unfoldldm.ui.builder import build_restore_ui

    bad = tmp_path / "gradio" / "0123abcd" / "photo.png"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with gr.Blocks():
        ui = build_restore_ui(models=lambda: ["m"], load=lambda *a: make_nano_model(), device_choice=False,
                              batch=False)
    for image, file in ((str(bad), None), (None, str(bad))):
        with pytest.raises(gr.Error) as info:
            ui.run_image(image, file, "m", 0, 0, 0, 0, 1.0, "1", 0.5, progress=None)
        assert str(tmp_path) not in str(info.value) and "corrupt" in str(info.value)


# ================================================================================================
# 2. Checkpoint configs are checked field by field, and their size estimated, before building


BAD_CONFIG_VALUES = [
    ("blocks", [1000000, 1, 2]), ("train_timesteps", 1e9), ("train_timesteps", 10**9), ("kernel_size", 1000001),
    ("width", 1e9), ("width", 10**9), ("width", -32), ("width", 30), ("stages", 2.5), ("stages", 0), ("stages", True),
    ("thumb_size", 0), ("diffusion_steps", 0), ("ffn_expansion", float("nan")), ("ffn_expansion", float("inf")),
    ("ffn_expansion", "2"), ("heads", [1, 2]), ("heads", "abc"), ("heads", [0, 1, 1]), ("latent_dim", 30),
    ("latent_tokens", 10**6), ("estimator_width", 10**9), ("memory_channels", -1), ("denoiser_depth", 10**4),
    ("kernel_size", 20), ("task", "sr3x"), ("prior", "gan"), ("name", 5), ("name", "x" * 1000),
]


def _with_config(src: Path, dst: Path, **changes) -> Path:
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(src), framework="pt") as f:
        metadata = dict(f.metadata())
    config = json.loads(metadata["config"])
    config.update(changes)
    save_file(load_file(str(src)), str(dst), metadata={**metadata, "config": json.dumps(config)})
    return dst


@pytest.mark.parametrize("field, value", BAD_CONFIG_VALUES, ids=[f"{f}={str(v)[:12]}" for f, v in BAD_CONFIG_VALUES])
def test_bad_config_value_is_refused_at_once(tmp_path, ckpt, capsys, field, value):
    bad = _with_config(ckpt, tmp_path / "bad.safetensors", **{field: value})
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=field) as info:
        load_checkpoint(bad)
    assert time.perf_counter() - start < 2.0
    assert "bad.safetensors" in str(info.value) and "Invalid model config" in str(info.value)
    code, out, err = _run(capsys, "info", bad)  # `info` reports the problem too
    assert code == 2 and field in err and "Traceback" not in err and out == ""


@pytest.mark.parametrize("changes, words", [
    (dict(width=512, blocks=[32, 32, 32], heads=[1, 1, 1]), "parameters"),
    (dict(thumb_size=1024, estimator_width=1024), "GiB"),
    (dict(diffusion_steps=500, train_timesteps=100), "diffusion_steps"),
    (dict(width=36, heads=[1, 16, 16]), "divisible"),
])
def test_configs_too_large_or_inconsistent_are_refused(tmp_path, ckpt, changes, words):
    bad = _with_config(ckpt, tmp_path / "bad.safetensors", **changes)
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=words):
        read_checkpoint_info(bad)
    assert time.perf_counter() - start < 2.0


def test_damaged_config_metadata(tmp_path, ckpt, rewrite_checkpoint_metadata):
    for text in ("[1, 2]", "\"small\"", "{\"width\": ", "null"):
        def edit(metadata, text=text):
            metadata["config"] = text

        bad = rewrite_checkpoint_metadata(ckpt, tmp_path / "bad.safetensors", edit)
        with pytest.raises(CheckpointError, match="bad.safetensors"):
            read_checkpoint_info(bad)


def test_every_config_field_has_a_rule():
    import dataclasses

    assert [f.name for f in dataclasses.fields(ModelConfig)] == list(FIELD_RULES)


@pytest.mark.parametrize("name", ["nano", "small", "base"])
@pytest.mark.parametrize("parts", [("mgda", "drldm", "ocformer"), ("plain", "none", "unet")])
def test_parameter_estimate_matches_built_models(name, parts):
    from unfoldldm.archs import build_model

    config = preset(name, gradient=parts[0], prior=parts[1], proximal=parts[2])
    real = sum(p.numel() for p in build_model(config).parameters())
    assert estimate_parameters(config) == real
    assert estimate_memory_bytes(config) < MAX_MODEL_MEMORY_BYTES and real < MAX_PARAMETERS


def test_shipped_and_fixture_checkpoints_still_load():
    for path in [*(REPO / "unfoldldm" / "weights").glob("*.safetensors"),
                 REPO / "tests" / "fixtures" / "restore_small_h200_2min.safetensors"]:
        if path.exists():
            assert read_checkpoint_info(path).config.validate()


# ================================================================================================
# 3. Loading images changes no process-wide Pillow setting (safe in threads)


def test_concurrent_loads_never_touch_pillow_settings(tmp_path):
    files = [_png(tmp_path / f"{i}.png", size=(64, 48), seed=i) for i in range(4)]
    files.append(_huge_png(tmp_path / "big.png", 9000, 9000))  # refused from its header
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
    seen, stop, errors = set(), threading.Event(), []

    def watch():
        while not stop.is_set():
            seen.add((Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES))

    def work(seed):
        for i in range(60):
            path = files[(seed + i) % len(files)]
            try:
                load_image(path)
            except InputImageError:
                assert path.name == "big.png"
            except Exception as exc:  # noqa: BLE001
                errors.append(repr(exc))

    watcher = threading.Thread(target=watch)
    workers = [threading.Thread(target=work, args=(n,)) for n in range(3)]
    watcher.start()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    stop.set()
    watcher.join()
    assert not errors
    assert seen == {before} and (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES) == before
    # the host's own guard is still on afterwards
    with pytest.raises(Image.DecompressionBombError):
        Image.open(_huge_png(tmp_path / "bomb.png", 100000, 100000))


# ================================================================================================
# 5. Resume after Ctrl-C is exact


@pytest.fixture
def noise_images(tmp_path):
    for i in range(4):
        _png(tmp_path / "data" / f"img{i}.png", size=(64, 64), seed=i)
    return tmp_path / "data"


def _nano_yaml(folder: Path, steps: int = 30) -> Path:
    raw = yaml.safe_load((REPO / "unfoldldm" / "configs" / "nano.yaml").read_text())
    raw.update(log_every=1, save_every=1000)
    raw["train"]["steps"] = steps
    path = folder / "nano_test.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _train(*argv, cwd: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "unfoldldm", "train", *map(str, argv)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigint_then_resume_gives_the_uninterrupted_weights(tmp_path, noise_images):
    from safetensors.torch import load_file

    config = _nano_yaml(tmp_path)
    common = ["--config", config, "--steps", 30, "--data", noise_images, "--batch", 2, "--crop", 32,
              "--device", "cpu", "--no-progress"]
    full = _train(*common, "--out", tmp_path / "full", cwd=tmp_path)
    assert full.wait(timeout=300) == 0, full.stderr.read()[-2000:]
    split = _train(*common, "--out", tmp_path / "split", cwd=tmp_path)
    log = tmp_path / "split" / "log.txt"
    deadline = time.monotonic() + 240
    while not (log.exists() and "step=12 " in log.read_text()):
        assert split.poll() is None and time.monotonic() < deadline, split.stderr.read()[-2000:]
        time.sleep(0.05)
    split.send_signal(signal.SIGINT)  # somewhere inside a step
    assert split.wait(timeout=120) == 130
    err = split.stderr.read()
    assert "resume" in err and "Traceback" not in err
    assert not (tmp_path / "split" / "model.safetensors").exists()
    resumed = _train("--resume", tmp_path / "split", "--no-progress", cwd=tmp_path)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()[-2000:]
    a, b = load_file(str(tmp_path / "full" / "model.safetensors")), load_file(str(tmp_path / "split" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


# ================================================================================================
# 6. Training options: clear errors, exit 2, no run folder


@pytest.mark.parametrize("extra, words", [
    (["--steps", "-5"], "at least 1"), (["--steps", "0"], "at least 1"), (["--crop", "40"], "multiple of 16"),
    (["--budget-minutes", "-1"], "more than 0"), (["--budget-minutes", "nan"], "finite"),
    (["--batch", "0"], "at least 1"), (["--export-every-minutes", "0"], "more than 0"),
])
def test_bad_training_options(tmp_path, capsys, noise_images, extra, words):
    config = _nano_yaml(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["train", "--config", str(config), "--out", str(tmp_path / "run"), "--data", str(noise_images), *extra])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("edit, words", [
    (lambda raw: raw["data"].update(batch="four"), "data.batch must be a whole number"),
    (lambda raw: raw["train"].update(lr=float("nan")), "train.lr must be a finite number"),
    (lambda raw: raw.update(log_every=0), "log_every must be a whole number at least 1"),
    (lambda raw: raw.update(save_every=0), "save_every must be"),
    (lambda raw: raw["train"].update(steps=0), "train.steps"),
    (lambda raw: raw["train"].update(warmup_fraction=1.5), "warmup_fraction"),
    (lambda raw: raw["losses"].update(kd=-1), "losses.kd"),
    (lambda raw: raw["data"].update(crop=40), "multiple of 16"),
    (lambda raw: raw["model"].update(width="wide"), "width"),
    (lambda raw: raw.update(degradation={"blur_prob": "often"}), "degradation.blur_prob"),
    (lambda raw: raw.update(extra_key=1), "unknown top-level keys"),
])
def test_bad_training_yaml(tmp_path, capsys, noise_images, edit, words):
    raw = yaml.safe_load((REPO / "unfoldldm" / "configs" / "nano.yaml").read_text())
    edit(raw)
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(raw))
    code, _, err = _run(capsys, "train", "--config", config, "--out", tmp_path / "run", "--data", noise_images)
    assert code == 2 and words in err and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()


def test_training_yaml_that_is_a_list(tmp_path, capsys):
    config = tmp_path / "list.yaml"
    config.write_text("- model\n- data\n")
    code, _, err = _run(capsys, "train", "--config", config, "--out", tmp_path / "run")
    assert code == 2 and "mapping" in err and not (tmp_path / "run").exists()


def test_corrupt_training_image_is_skipped_with_a_warning(noise_images):
    from unfoldldm.training.data import CropBank

    (noise_images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (noise_images / "notes.jpg").write_text("not a picture")
    with pytest.warns(UserWarning, match="2 unreadable training image"):
        bank = CropBank([noise_images], 32, torch.device("cpu"))
    assert len(bank) == 4


def test_stale_temp_files_of_a_killed_save_are_removed(tmp_path, noise_images):
    from unfoldldm.training.config import load_train_config
    from unfoldldm.training.trainer import RunOptions, resume_run, start_run

    opts = RunOptions(out=str(tmp_path / "run"), steps=4, data=[str(noise_images)], batch=2, crop=32, device="cpu",
                      progress=False, stop_at=1)
    start_run(load_train_config(_nano_yaml(tmp_path, 4)), opts).run()
    stale = [tmp_path / "run" / ".state.safetensors.k1ll3d.tmp", tmp_path / "run" / ".model.safetensors.x.tmp"]
    for path in stale:
        path.write_bytes(b"")  # what SIGKILL during a save leaves
    resume_run(tmp_path / "run", progress=False)
    assert not any(p.exists() for p in stale) and (tmp_path / "run" / "state.safetensors").exists()


# ================================================================================================
# 7. Other tracebacks and wrong messages


def test_read_only_output_folder_is_reported_and_the_batch_goes_on(tmp_path, capsys, ckpt, monkeypatch):
    import builtins
    import errno

    srcs = [_png(tmp_path / "in" / f"{n}.png", seed=i) for i, n in enumerate("ab")]
    real_open, real_unlink = builtins.open, Path.unlink

    def read_only_open(file, mode="r", *args, **kwargs):  # the first output folder is read-only
        if "x" in str(mode) and "ro" in Path(str(file)).parts:
            raise OSError(errno.EROFS, "Read-only file system", str(file))
        return real_open(file, mode, *args, **kwargs)

    def read_only_unlink(self, missing_ok=False):  # EROFS, not "no such file", even when it is absent
        if "ro" in self.parts:
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(builtins, "open", read_only_open)
    monkeypatch.setattr(Path, "unlink", read_only_unlink)
    code, _, err = _run(capsys, "restore", *srcs, "-o", tmp_path / "ro", "--model", ckpt, "--quiet")
    assert code == 1 and err.count("Read-only file system") == 2 and "Traceback" not in err
    assert "restored 0 of 2" in err


@pytest.mark.parametrize("argv, words", [
    (["--prior-strength", "nan"], "finite"), (["--prior-strength", "inf"], "finite"),
    (["--prior-strength", "-1"], "from 0 to 2"), (["--seed", "99999999999999999999999"], "from 0 to 4294967295"),
    (["--seed", "-1"], "from 0"), (["--tile", "-64"], "0 or more"), (["--overlap", "-1"], "0 or more"),
])
def test_bad_restore_options_stop_at_once(tmp_path, capsys, ckpt, argv, words):
    src = _png(tmp_path / "in.png")
    with pytest.raises(SystemExit) as info:
        main(["restore", str(src), "-o", str(tmp_path / "out"), "--model", str(ckpt), *argv])
    assert info.value.code == 2 and words in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_too_many_stages_stop_up_front(tmp_path, capsys, ckpt):
    srcs = [_png(tmp_path / f"{i}.png", seed=i) for i in range(2)]
    code, _, err = _run(capsys, "restore", *srcs, "-o", tmp_path / "out", "--model", ckpt, "--stages", 9, "--quiet")
    assert code == 2 and err.count("stages must be between 1 and 2") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("field, value, words", [
    ("prior_strength", float("nan"), "finite"), ("prior_strength", float("inf"), "finite"),
    ("seed", 10**23, "seed"), ("stages", 9, "stages"), ("prior_steps", 0, "prior steps"),
])
def test_api_refuses_bad_options_instead_of_returning_nan(make_nano_model, field, value, words):
    from unfoldldm.pipeline import RestoreOptions

    with pytest.raises(UnfoldLDMError, match=words):
        unfoldldm.restore(make_nano_model(), torch.rand(1, 3, 32, 32), RestoreOptions(**{field: value}))


def test_meta_tensor_is_refused(make_nano_model):
    with pytest.raises(InputImageError, match="meta"):
        unfoldldm.restore(make_nano_model(), torch.empty(1, 3, 32, 32, device="meta"))


def test_animated_gif_is_refused_before_restoring(tmp_path, capsys, ckpt, monkeypatch):
    import unfoldldm.pipeline

    frames = [Image.fromarray(np.full((24, 24, 3), 40 * i, np.uint8)) for i in range(3)]
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    monkeypatch.setattr(unfoldldm.pipeline, "restore", lambda *a, **k: pytest.fail("restored a .gif"))
    code, _, err = _run(capsys, "restore", gif, "-o", tmp_path / "out", "--model", ckpt, "--quiet")
    assert code == 1 and ".gif" in err and "ending in .png" in err
    assert not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True


def test_animated_png_warns_that_one_frame_is_restored(tmp_path):
    frames = [Image.fromarray(np.full((24, 24, 3), 40 * i, np.uint8)) for i in range(3)]
    apng = tmp_path / "anim.png"
    frames[0].save(apng, save_all=True, append_images=frames[1:])
    with pytest.warns(UserWarning, match="3 frames; only the first"):
        load_image(apng)


def test_output_name_of_a_non_image_file_is_refused(tmp_path, capsys, ckpt):
    src = _png(tmp_path / "in.png")
    code, _, err = _run(capsys, "restore", src, "-o", tmp_path / "out.txt", "--model", ckpt, "--quiet")
    assert code == 2 and "'.txt' is not an image type" in err
    assert not (tmp_path / "out.txt").exists()
    (tmp_path / "v1.2").mkdir()  # an existing folder with a dot still works
    assert _run(capsys, "restore", src, "-o", tmp_path / "v1.2", "--model", ckpt, "--quiet")[0] == 0


def test_warnings_print_without_source_lines(tmp_path, ckpt):
    src = _png(tmp_path / "in.png", mode="RGBA")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "unfoldldm", "restore", str(src), "-o", str(tmp_path / "out.jpg"),
                           "--model", str(ckpt), "--quiet"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "warning:" in proc.stderr and "transparency" in proc.stderr
    assert ".py:" not in proc.stderr and "warnings.warn" not in proc.stderr


# ================================================================================================
# 8. Smaller leaks


def test_pickle_message_command_is_safe_to_paste(tmp_path):
    name = 'evil";touch INJECTED;echo ".pt'
    path = tmp_path / name
    path.write_bytes(b"\x80\x04N.")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    line = next(ln.strip() for ln in str(info.value).splitlines() if ln.strip().startswith("python -c"))
    argv = shlex.split(line)
    assert argv[:2] == ["python", "-c"] and argv[-1] == str(path) and name not in argv[2]
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python").write_text("#!/bin/sh\nexit 0\n")
    (fake / "python").chmod(stat.S_IRWXU)
    subprocess.run(["bash", "-c", line], cwd=tmp_path, env=dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}"),
                   check=True, timeout=30)
    assert not (tmp_path / "INJECTED").exists()


def test_memory_for_a_raised_pixel_limit_is_checked(tmp_path, capsys, ckpt, monkeypatch):
    import unfoldldm.limits

    monkeypatch.setattr(unfoldldm.limits, "available_memory_bytes", lambda: 10 * 2**20)  # 10 MiB left
    src = _png(tmp_path / "big.png", size=(512, 512))
    code, _, err = _run(capsys, "restore", src, "-o", tmp_path / "out", "--model", ckpt, "--tile", 0,
                        "--max-pixels", 10**9, "--quiet")
    assert code == 1 and "GiB of memory" in err and "available" in err
    assert not (tmp_path / "out" / "big.png").exists()


def test_restore_memory_estimate_is_finite_and_grows_with_the_image():
    from unfoldldm.limits import estimate_restore_bytes

    small = preset("small")
    tiled = estimate_restore_bytes(small, 4096, 4096, 512)
    assert 1.5 * 2**30 < tiled < 3 * 2**30  # README: 2.26 GiB peak for 4096x4096 tiled 512
    assert estimate_restore_bytes(small, 1024, 1024, None) > estimate_restore_bytes(small, 1024, 1024, 256)
    assert math.isfinite(estimate_restore_bytes(preset("base", task="sr4x"), 8192, 8192, 512))
