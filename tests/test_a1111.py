"""The Automatic1111 / Forge extension (``scripts/``, ``install.py``), loaded the way the WebUI loads it.

The WebUIs cannot be started offline, so ``tests/a1111_harness`` stands in for a WebUI checkout: a
fake ``modules`` package with the extension interface the scripts use (``script_callbacks``,
``scripts_postprocessing``, ``shared``, ``devices``, ``paths``, ...) and its script loader, which
executes every ``scripts/*.py`` of an extension with the extension folder in front of ``sys.path``
only while the file runs. The installer runs as ``launch_utils.run_extension_installer`` runs it: a
``python install.py`` subprocess with the WebUI root (holding a fake ``launch``) on ``PYTHONPATH``.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import shutil
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from model_helpers import make_nano
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
HARNESS = Path(__file__).resolve().parent / "a1111_harness"
TAB_FILE = ROOT / "scripts" / "unfoldldm_tab.py"
EXTRAS_FILE = ROOT / "scripts" / "unfoldldm_extras.py"


# ------------------------------------------------------------------------------------------------
# A WebUI with this repository as its only extension


def _forget_harness_modules() -> None:
    for name in [n for n in sys.modules if n == "modules" or n.startswith("modules.")]:
        del sys.modules[name]


@pytest.fixture(scope="module")
def webui(tmp_path_factory, torch_one_thread):
    """The harness WebUI after start-up: scripts loaded, models folder holding nano checkpoints
    (``restore_nano``, ``sr4x_nano``) and a damaged file (``bad``)."""
    pytest.importorskip("gradio")
    from unfoldldm.checkpoint import save_checkpoint

    data = tmp_path_factory.mktemp("webui")
    models = data / "models" / "UnfoldLDM"
    models.mkdir(parents=True)
    save_checkpoint(models / "restore_nano.safetensors", make_nano("restore", seed=1))
    save_checkpoint(models / "sr4x_nano.safetensors", make_nano("sr4x", seed=2))
    (models / "bad.safetensors").write_bytes(b"this is not a safetensors file" * 4)

    _forget_harness_modules()
    sys.path.insert(0, str(HARNESS))
    try:
        from modules import (
            errors,
            paths,
            script_callbacks,
            scripts,
            scripts_postprocessing,
            shared,
        )

        paths.models_path = str(data / "models")
        path_before = list(sys.path)
        scripts.load_scripts([str(ROOT)])
        ns = types.SimpleNamespace(
            errors=errors, paths=paths, script_callbacks=script_callbacks, scripts=scripts, shared=shared,
            pp=scripts_postprocessing, devices=importlib.import_module("modules.devices"),
            models=models, sys_path_changed=sys.path != path_before,
            tab=scripts.loaded_modules[str(TAB_FILE)], extras=scripts.loaded_modules[str(EXTRAS_FILE)],
        )
        yield ns
    finally:
        sys.path.remove(str(HARNESS))
        _forget_harness_modules()


@pytest.fixture(autouse=True)
def fresh_job(request):
    """Each test starts like a new WebUI job: no Interrupt pending, CPU in fp32."""
    if "webui" not in request.fixturenames:
        yield
        return
    webui = request.getfixturevalue("webui")
    webui.shared.state = webui.shared.State()
    webui.devices.device, webui.devices.dtype = torch.device("cpu"), torch.float32
    yield


def photo(width=48, height=40, mode="RGB", seed=0) -> Image.Image:
    gen = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 4, height // 8 + 1, width // 8 + 1, generator=gen)
    arr = torch.nn.functional.interpolate(small, size=(height, width), mode="bicubic").clamp(0, 1)
    arr = (arr[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(arr).convert(mode)


def reference(webui, name: str, image: Image.Image, stages=None, ensemble=1) -> Image.Image:
    """The core library's restoration of ``image`` with checkpoint ``name`` (CPU, fp32)."""
    from unfoldldm.api import load_model
    from unfoldldm.imageio import Picture, picture_from_pil, picture_to_pil
    from unfoldldm.pipeline import RestoreOptions, restore

    model = load_model(webui.models / f"{name}.safetensors", device="cpu", dtype="fp32")
    pic = picture_from_pil(image)
    x = pic.rgb if pic.alpha is None else torch.cat([pic.rgb, pic.alpha])
    out = restore(model, x[None], RestoreOptions(stages=stages, ensemble=ensemble)).image[0]
    return picture_to_pil(Picture(out[:3], out[3:] if out.shape[0] == 4 else None, pic.mode, 8, "ref"))


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image).astype(np.int16)


def extras_script(webui):
    (data,) = webui.scripts.postprocessing_scripts_data
    script = data.script_class()
    script.filename = data.path
    return script


def run_extras(webui, image, **values):
    pp = webui.pp.PostprocessedImage(image)
    extras_script(webui).process(pp, **values)
    return pp


def choices_of(dropdown) -> list[str]:
    """Dropdown choices as names (Gradio 4+ keeps (label, value) pairs, 3.x plain strings)."""
    return [c[1] if isinstance(c, (tuple, list)) else c for c in dropdown.choices]


# ------------------------------------------------------------------------------------------------
# Loading


def test_scripts_load_like_the_webui_and_register_one_tab_and_one_extras_script(webui):
    assert webui.errors.reported == []
    assert not webui.sys_path_changed  # the extension folder was on sys.path only while loading
    classes = [d.script_class for d in webui.scripts.postprocessing_scripts_data]
    assert [c.__name__ for c in classes] == ["UnfoldLDMPostprocessing"]  # not the imported base class
    assert classes[0].name == "UnfoldLDM" and classes[0].order < 900
    assert webui.scripts.scripts_data == []
    (tab_cb,) = webui.script_callbacks.callback_map["callbacks_ui_tabs"]
    assert Path(tab_cb.script) == TAB_FILE
    assert len(webui.script_callbacks.callback_map["callbacks_script_unloaded"]) == 2
    # Gradio 4+ writes a .pyi next to any subclass of its components: nothing may appear here
    assert not [*HARNESS.rglob("*.pyi"), *(ROOT / "scripts").glob("*.pyi")]


def test_the_tab_builds_with_the_host_models_and_no_device_controls(webui):
    import gradio as gr

    tabs = webui.script_callbacks.ui_tabs_callback()
    assert webui.errors.reported == []
    assert len(tabs) == 1
    blocks, title, elem_id = tabs[0]
    assert isinstance(blocks, gr.Blocks) and (title, elem_id) == ("UnfoldLDM", "unfoldldm")
    ui = webui.tab.last_ui
    assert {"bad", "restore_nano", "sr4x_nano"} <= set(choices_of(ui.components["model"]))
    assert ui.components["model"].elem_id == "unfoldldm_model"


def wired_handlers(blocks) -> list:
    """The functions a Blocks' events call (a list in Gradio 3.x, a dict in 4.x+)."""
    fns = blocks.fns.values() if isinstance(blocks.fns, dict) else blocks.fns
    return [f.fn for f in fns]


def test_the_tab_restores_on_the_host_device_in_the_queue(webui):
    ((blocks, _, _),) = webui.script_callbacks.ui_tabs_callback()
    ui = webui.tab.last_ui
    (run,) = [fn for fn in wired_handlers(blocks) if getattr(fn, "__wrapped__", None) is ui.run_image]
    image = photo()
    webui.shared.state.interrupted = True  # left over from an earlier job: must not stop this one
    out, download, _status, kernel, noise, _compare, _pair = run(image, None, "restore_nano", 0, 0, 0, 512, 1.0, "1", 0.5)
    assert np.array_equal(pixels(out), pixels(reference(webui, "restore_nano", image)))
    assert os.path.isfile(download) and kernel is not None and noise is not None
    assert webui.shared.state.interrupted is False

    # the WebUI's dtype is used on GPUs, but not on the CPU, where fp16 is slow or missing
    webui.devices.dtype = torch.float16
    assert next(webui.tab.load("restore_nano").parameters()).dtype == torch.float32

    # the handlers the buttons call run as WebUI jobs: under the GPU lock, stale Interrupt cleared
    seen = {}

    def handler(a, b=2, progress=None):
        from modules.call_queue import queue_lock

        seen.update(locked=queue_lock.locked(), interrupted=webui.shared.state.interrupted)
        return a + b

    webui.shared.state.interrupted = True
    wrapped = webui.tab.run_in_queue(handler)
    assert list(inspect.signature(wrapped).parameters) == ["a", "b", "progress"]  # Gradio injects progress
    assert wrapped(1) == 3 and seen == {"locked": True, "interrupted": False}
    assert webui.shared.state.interrupted is False


def test_the_tab_stops_at_the_webui_interrupt(webui):
    from unfoldldm.ui.builder import build_restore_ui

    if "should_stop" not in inspect.signature(build_restore_ui).parameters:
        pytest.skip("unfoldldm.ui.builder.build_restore_ui takes no should_stop yet: the tab cannot pass "
                    "the WebUI's Interrupt to the restoration")
    webui.script_callbacks.ui_tabs_callback()
    webui.shared.state.interrupted = True
    with pytest.raises(Exception, match="(?i)interrupt"):
        webui.tab.last_ui.run_image(photo(), None, "restore_nano", 0, 0, 0, 512, 1.0, "1", 0.5)


# ------------------------------------------------------------------------------------------------
# Extras


def test_extras_ui_runs_before_the_upscalers_and_passes_values_by_name(webui):
    import gradio as gr

    class Upscale(webui.pp.ScriptPostprocessing):  # the WebUI's built-in upscaler step
        name, order = "Upscale", 1000

        def ui(self):
            return {"upscale_by": gr.Slider(1, 8, value=2)}

        def process(self, pp, upscale_by):
            pp.info["order"] = pp.info.get("order", []) + ["Upscale"]

    data = webui.scripts.postprocessing_scripts_data[0]
    upscale = webui.scripts.ScriptClassData(Upscale, "postprocessing_upscale.py", "", None)
    runner = webui.pp.ScriptPostprocessingRunner([upscale, data])
    assert [s.name for s in runner.scripts_in_preferred_order()] == ["UnfoldLDM", "Upscale"]

    with gr.Blocks(analytics_enabled=False):
        inputs = runner.setup_ui()
    script = runner.scripts_in_preferred_order()[0]
    assert list(script.controls) == ["enable", "model", "visibility", "stages", "ensemble"]
    enable, model, visibility, stages, ensemble = inputs[:5]
    assert enable.value is False and visibility.value == 1.0 and stages.value == 0 and ensemble.value == "1"
    assert {"bad", "restore_nano", "sr4x_nano"} <= set(choices_of(model))

    image = photo()
    pp = webui.pp.PostprocessedImage(image)
    runner.run(pp, [True, "restore_nano", 1.0, 0, "1", 2])
    assert np.array_equal(pixels(pp.image), pixels(reference(webui, "restore_nano", image)))
    assert pp.info["UnfoldLDM model"] == "restore_nano" and pp.info["order"] == ["Upscale"]

    # the defaults (as the page opens) leave the image alone
    pp = webui.pp.PostprocessedImage(image)
    runner.run(pp, [c.value for c in inputs])
    assert pp.image is image

    # the settings' operation order comes first
    webui.shared.opts.postprocessing_operation_order = ["Upscale", "UnfoldLDM"]
    try:
        assert [s.name for s in runner.scripts_in_preferred_order()] == ["Upscale", "UnfoldLDM"]
    finally:
        webui.shared.opts.postprocessing_operation_order = []


def test_extras_visibility_blends_restored_and_original(webui):
    image = photo()
    restored = reference(webui, "restore_nano", image)
    full = run_extras(webui, image, enable=True, model="restore_nano", visibility=1.0, stages=0)
    assert np.array_equal(pixels(full.image), pixels(restored))
    assert not np.array_equal(pixels(full.image), pixels(image))  # the model does change the photo
    half = run_extras(webui, image, enable=True, model="restore_nano", visibility=0.5, stages=0)
    assert np.abs(pixels(half.image) - pixels(Image.blend(image, restored, 0.5))).max() <= 1
    for values in ({"enable": True, "visibility": 0.0}, {"enable": False, "visibility": 1.0}):
        pp = run_extras(webui, image, model="restore_nano", stages=0, **values)
        assert pp.image is image and pp.info == {}


def test_extras_x4_model_makes_the_image_four_times_larger(webui):
    image = photo(32, 24)
    pp = run_extras(webui, image, enable=True, model="sr4x_nano", visibility=1.0, stages=0)
    assert pp.image.size == (128, 96)
    assert np.array_equal(pixels(pp.image), pixels(reference(webui, "sr4x_nano", image)))
    mixed = run_extras(webui, image, enable=True, model="sr4x_nano", visibility=0.3, stages=0)
    assert mixed.image.size == (128, 96)


def test_extras_keeps_greyscale_and_alpha(webui):
    for mode in ("L", "RGBA"):
        image = photo(mode=mode)
        pp = run_extras(webui, image, enable=True, model="restore_nano", visibility=1.0, stages=0)
        assert pp.image.mode == mode and pp.image.size == image.size
        assert np.array_equal(pixels(pp.image), pixels(reference(webui, "restore_nano", image)))


def test_extras_stages_and_api_defaults(webui):
    image = photo()
    one = run_extras(webui, image, enable=True, model="restore_nano", visibility=1.0, stages=1)
    assert np.array_equal(pixels(one.image), pixels(reference(webui, "restore_nano", image, stages=1)))
    assert one.info["UnfoldLDM stages"] == 1
    many = run_extras(webui, image, enable=True, model="restore_nano", visibility=1.0, stages=8)
    assert np.array_equal(pixels(many.image), pixels(reference(webui, "restore_nano", image)))  # at most all
    # an API call (/sdapi/v1/extra-single-image) leaves unset parameters None
    runner = webui.pp.ScriptPostprocessingRunner(webui.scripts.postprocessing_scripts_data)
    args = runner.create_args_for_run({"UnfoldLDM": {"enable": True, "model": "restore_nano"}})
    assert args == [True, "restore_nano", None, None, None]
    pp = webui.pp.PostprocessedImage(image)
    runner.run(pp, args)
    assert np.array_equal(pixels(pp.image), pixels(reference(webui, "restore_nano", image)))
    pp = webui.pp.PostprocessedImage(image)
    runner.run(pp, runner.create_args_for_run({}))
    assert pp.image is image


def test_extras_ensemble_averages_orientations_and_refuses_other_counts(webui):
    image = photo()
    four = run_extras(webui, image, enable=True, model="restore_nano", visibility=1.0, stages=0, ensemble="4")
    assert np.array_equal(pixels(four.image), pixels(reference(webui, "restore_nano", image, ensemble=4)))
    assert not np.array_equal(pixels(four.image), pixels(reference(webui, "restore_nano", image)))
    assert four.info["UnfoldLDM ensemble"] == 4
    with pytest.raises(RuntimeError, match="ensemble must be one of 1, 2, 4, 8"):
        run_extras(webui, image, enable=True, model="restore_nano", visibility=1.0, stages=0, ensemble="5")


def test_extras_caches_the_model_between_images(webui, monkeypatch):
    import unfoldldm.api

    loads = []
    real = unfoldldm.api.load_model
    monkeypatch.setattr(unfoldldm.api, "load_model", lambda *a, **k: loads.append(a) or real(*a, **k))
    webui.script_callbacks.script_unloaded_callback()  # as on "Reload UI": the cache is dropped
    for seed in range(3):
        run_extras(webui, photo(seed=seed), enable=True, model="restore_nano", visibility=1.0, stages=0)
    assert len(loads) == 1
    run_extras(webui, photo(32, 24), enable=True, model="sr4x_nano", visibility=1.0, stages=0)
    assert len(loads) == 2


def test_extras_stops_cleanly_at_the_interrupt_button(webui):
    class PressedDuringTheRun(webui.shared.State):
        """The user presses Interrupt once the restoration has made its first step."""

        @property
        def sampling_step(self):
            return self._step

        @sampling_step.setter
        def sampling_step(self, value):
            self._step = value
            if value >= 1:
                self.interrupted = True

    webui.shared.state = state = PressedDuringTheRun()
    image = photo()
    pp = run_extras(webui, image, enable=True, model="restore_nano", visibility=1.0, stages=0)
    assert pp.image is image and pp.info == {}  # nothing half-done, no error
    assert 1 <= state.sampling_step < state.sampling_steps  # it was running, and it stopped early
    webui.shared.state = webui.shared.State()  # the next job
    pp = run_extras(webui, image, enable=True, model="restore_nano", visibility=1.0, stages=0)
    assert pp.image is not image


def test_extras_errors_say_what_to_do_and_leave_the_image(webui):
    image = photo()
    with pytest.raises(RuntimeError, match=r"UnfoldLDM: bad\.safetensors.*") as bad:
        run_extras(webui, image, enable=True, model="bad", visibility=1.0, stages=0)
    print(bad.value)
    with pytest.raises(RuntimeError, match=r"No UnfoldLDM model named 'gone'.*restore_nano"):
        run_extras(webui, image, enable=True, model="gone", visibility=1.0, stages=0)
    with pytest.raises(RuntimeError, match=r"No UnfoldLDM model is selected.*UnfoldLDM"):
        run_extras(webui, image, enable=True, model=None, visibility=1.0, stages=0)
    with pytest.raises(RuntimeError, match=r"UnfoldLDM: .*pixels"):
        extras = webui.extras
        big = Image.new("RGB", (9000, 8000))
        run_extras(webui, big, enable=True, model="restore_nano", visibility=1.0, stages=0)
    assert extras.registry().names()  # and the script still works afterwards
    pp = run_extras(webui, image, enable=True, model="restore_nano", visibility=1.0, stages=0)
    assert pp.image.size == image.size


# ------------------------------------------------------------------------------------------------
# A fresh WebUI process: the package is found through the extension folder alone


@pytest.mark.parametrize("host", ["a1111", "forge"])
def test_a_fresh_webui_process_loads_the_extension_from_its_folder(tmp_path, host):
    """A1111 puts the extension folder on sys.path only while a script file runs, Forge for good:
    either way the package imports from the extension folder and works after loading."""
    pytest.importorskip("gradio")
    from unfoldldm.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "models" / "UnfoldLDM" / "nano.safetensors", make_nano("sr4x"))
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(HARNESS)!r})
        assert "unfoldldm" not in sys.modules
        from modules import paths, scripts, script_callbacks, scripts_postprocessing, errors
        paths.models_path = {str(tmp_path / "models")!r}
        before = list(sys.path)
        scripts.load_scripts([{str(ROOT)!r}], forge={host == "forge"})
        assert errors.reported == [], errors.reported
        assert sys.path == ([{str(ROOT)!r}] + before if {host == "forge"} else before), sys.path
        import unfoldldm
        assert unfoldldm.__file__.startswith({str(ROOT)!r}), unfoldldm.__file__
        (tab,) = script_callbacks.ui_tabs_callback()
        assert tab[1:] == ("UnfoldLDM", "unfoldldm"), tab
        from PIL import Image
        script = scripts.postprocessing_scripts_data[0].script_class()
        pp = scripts_postprocessing.PostprocessedImage(Image.new("RGB", (20, 12), (90, 120, 30)))
        script.process(pp, enable=True, model="nano", visibility=1.0, stages=0)
        print("OK", pp.image.size)
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "OK (80, 48)" in proc.stdout


# ------------------------------------------------------------------------------------------------
# install.py as the WebUI runs it


def run_installer(extension_dir: Path, log: Path) -> subprocess.CompletedProcess:
    """``launch_utils.run_extension_installer``: ``python install.py`` from the WebUI root, with the
    root (which holds ``launch.py``) on PYTHONPATH. ``-X importtime`` lists every module imported."""
    env = dict(os.environ, PYTHONPATH=f"{HARNESS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               A1111_HARNESS_LAUNCH_LOG=str(log))
    return subprocess.run([sys.executable, "-X", "importtime", str(extension_dir / "install.py")], cwd=HARNESS,
                          env=env, capture_output=True, text=True, timeout=60, check=False)


def imported_modules(stderr: str) -> set[str]:
    return {line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def launch_calls(log: Path) -> list[list]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_installer_in_the_webui_installs_nothing_when_all_is_there(tmp_path):
    log = tmp_path / "launch.jsonl"
    proc = run_installer(ROOT, log)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "all requirements are already installed" in proc.stdout
    calls = launch_calls(log)
    assert {c[1] for c in calls if c[0] == "is_installed"} == {"numpy", "PIL", "safetensors", "tqdm", "yaml"}
    assert not [c for c in calls if c[0] == "run_pip"]
    assert not {m for m in imported_modules(proc.stderr) if m.split(".")[0] == "torch"}


def test_installer_in_the_webui_installs_the_missing_through_launch_never_torch(tmp_path):
    ext = tmp_path / "sd-webui-unfoldldm"
    ext.mkdir()
    shutil.copy(ROOT / "install.py", ext / "install.py")
    requirements = (ROOT / "requirements.txt").read_text() + "unfoldldm-harness-missing-dist>=1.0\n"
    (ext / "requirements.txt").write_text(requirements)
    log = tmp_path / "launch.jsonl"
    proc = run_installer(ext, log)
    assert proc.returncode == 0, proc.stderr[-2000:]
    calls = launch_calls(log)
    assert [c[:2] for c in calls if c[0] == "run_pip"] == [["run_pip", 'install "unfoldldm-harness-missing-dist>=1.0"']]
    assert ["is_installed", "unfoldldm_harness_missing_dist"] in calls
    assert not any("torch" in json.dumps(c) for c in calls)
    assert not {m for m in imported_modules(proc.stderr) if m.split(".")[0] == "torch"}


def test_installer_executed_in_process_with_launch_loaded(monkeypatch):
    """Hosts that exec install.py inside their own process, with ``launch`` already imported."""
    calls = []
    fake = types.ModuleType("launch")
    fake.is_installed = lambda name: calls.append(("is_installed", name)) or True
    fake.run_pip = lambda command, desc=None, live=False: calls.append(("run_pip", command))
    monkeypatch.setitem(sys.modules, "launch", fake)
    spec = importlib.util.spec_from_file_location("install", ROOT / "install.py")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    assert {name for kind, name in calls if kind == "is_installed"} >= {"PIL", "yaml", "tqdm"}
    assert not [c for c in calls if c[0] == "run_pip"]
    assert not any("torch" in str(c) for c in calls)


# ------------------------------------------------------------------------------------------------
# Images sent between tabs


def _event_fn(demo, button):
    """The Python function a click on ``button`` runs (Gradio 3.x lists dependencies, 4.x+ a dict)."""
    deps = demo.dependencies if isinstance(getattr(demo, "dependencies", None), list) else None
    fns = list(demo.fns.values()) if isinstance(demo.fns, dict) else list(demo.fns)
    for i, block_fn in enumerate(fns):
        targets = deps[i]["targets"] if deps is not None else [(t[0] if isinstance(t, tuple) else t)
                                                               for t in getattr(block_fn, "targets", [])]
        ids = [t[0] if isinstance(t, (tuple, list)) else t for t in targets]
        if button._id in ids and block_fn.fn is not None:
            return block_fn.fn
    raise AssertionError(f"no Python handler bound to {button.elem_id}")


def test_images_are_sent_to_the_tab_and_onward_with_the_webui_send_to_buttons(webui):
    """Built like the WebUI builds its page: the txt2img/img2img/Extras output panels (with the
    after-component callbacks), the extension tabs, then connect_paste_params_buttons() in the page."""
    import base64
    import io

    import gradio as gr
    from modules import infotext_utils, ui_common

    infotext_utils.reset()
    galleries = {}
    for tab in ("txt2img", "img2img", "extras"):
        with gr.Blocks():
            galleries[tab] = ui_common.create_output_panel(tab)
            if tab == "img2img":  # the built-in destinations our "Send to ..." buttons need
                for dest in ("img2img", "inpaint"):
                    infotext_utils.add_paste_fields(dest, gr.Image(type="pil"), None)
            if tab == "extras":
                infotext_utils.add_paste_fields("extras", gr.Image(type="pil"), None)
    ((blocks, _, _),) = webui.script_callbacks.ui_tabs_callback()
    with gr.Blocks() as demo:
        blocks.render()
        infotext_utils.connect_paste_params_buttons()
    assert webui.errors.reported == []

    ui = webui.tab.last_ui
    assert infotext_utils.paste_fields["unfoldldm"]["init_img"] is ui.components["input"]
    incoming = {b.paste_button.elem_id: b for b in infotext_utils.registered_param_bindings if b.tabname == "unfoldldm"}
    assert set(incoming) == {"txt2img_send_to_unfoldldm", "img2img_send_to_unfoldldm", "extras_send_to_unfoldldm"}
    assert all(incoming[f"{t}_send_to_unfoldldm"].source_image_component is galleries[t] for t in galleries)

    # What the page's extract_image_from_gallery hands over for the selected txt2img image
    image = photo(40, 32, seed=5)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    data_url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    received = _event_fn(demo, incoming["txt2img_send_to_unfoldldm"].paste_button)([data_url])
    assert (pixels(received) == pixels(image)).all()

    outgoing = {b.tabname: b for b in infotext_utils.registered_param_bindings
                if b.source_image_component is ui.components["output"]}
    assert set(outgoing) == {"img2img", "inpaint", "extras"}
    assert _event_fn(demo, outgoing["img2img"].paste_button)(image) is image

    js = (ROOT / "javascript" / "unfoldldm.js").read_text()
    assert "function switch_to_unfoldldm(" in js and "return Array.from(arguments)" in js
