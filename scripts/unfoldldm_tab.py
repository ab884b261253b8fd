"""UnfoldLDM as a top-level tab of Automatic1111 / Forge.

The WebUI executes every ``scripts/*.py`` of an extension at start-up (and on "Reload UI"), with the
extension folder in front of ``sys.path`` only while the file runs. On import this file registers
an ``on_ui_tabs`` callback; when the WebUI builds its page it calls it and adds the returned
``gr.Blocks`` as the tab "UnfoldLDM".

The tab is the shared restoration UI (:func:`unfoldldm.ui.builder.build_restore_ui`), set up for a
host that owns the device:

* models: the checkpoints in ``<WebUI models folder>/UnfoldLDM`` plus the bundled defaults;
* device and dtype: the WebUI's (``modules.devices``; fp32 on the CPU), no device controls;
* each run holds the WebUI's GPU queue lock, so a restoration never runs beside a generation, and
  stops at the WebUI's Interrupt (``shared.state.interrupted``) between tiles;
* images travel with the WebUI's own 'Send to' mechanism (``modules.infotext_utils``): a
  "Send to UnfoldLDM" button beside the built-in ones under the txt2img, img2img and Extras
  galleries, and "Send to img2img / inpaint / extras" buttons under the restored image. The tab
  switch runs ``switch_to_unfoldldm`` from ``javascript/unfoldldm.js``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the extension folder: holds the `unfoldldm` package
if str(ROOT) not in sys.path:  # the WebUI puts it there while this file loads; other hosts may not
    sys.path.insert(0, str(ROOT))

from modules import devices, paths, script_callbacks, shared  # noqa: E402

from unfoldldm.ui.core import (  # noqa: E402
    ModelRegistry,
    folder_registry,
    forget_folder_registries,
    host_device_and_dtype,
    load_from_folder,
)

MODEL_FOLDER = "UnfoldLDM"
TAB_TITLE, TAB_ID = "UnfoldLDM", "unfoldldm"
# Our "Send to UnfoldLDM" button goes after this built-in button of each output panel.
SEND_BUTTON_ANCHORS = {"txt2img": "txt2img_send_to_extras", "img2img": "img2img_send_to_extras",
                       "extras": "extras_send_to_inpaint"}
SEND_TARGETS = ("img2img", "inpaint", "extras")
_galleries: dict[str, object] = {}  # tab name -> its output gallery, seen while the WebUI builds it

last_ui = None  # the RestoreUI of the last tab built (components and handlers), for hosts and tests


def models_dir() -> Path:
    """``<WebUI models folder>/UnfoldLDM`` (read when needed: hosts set it during start-up)."""
    return Path(paths.models_path) / MODEL_FOLDER


def registry() -> ModelRegistry:
    """This folder's checkpoints and the bundled defaults; one cached model for the whole WebUI."""
    return folder_registry(models_dir())


def load(name: str):
    """The selected model on the WebUI's device and dtype (cached, shared with the Extras script)."""
    return load_from_folder(models_dir(), name, *host_device_and_dtype(devices))


def interrupted() -> bool:
    """The WebUI's Interrupt button (and /sdapi/v1/interrupt)."""
    return bool(getattr(shared.state, "interrupted", False))


def _queue_lock():
    try:
        from modules.call_queue import queue_lock
    except ImportError:
        return contextlib.nullcontext()
    return queue_lock


def _begin_job() -> None:
    state = shared.state
    try:
        state.begin(job="UnfoldLDM")
    except TypeError:  # older WebUIs: begin() without a job name
        state.begin()


def _end_job() -> None:
    """As the WebUI does after each job: a stale Interrupt must not stop the next one."""
    state = shared.state
    state.interrupted = False
    state.skipped = False
    if hasattr(state, "end"):
        state.end()


def run_in_queue(fn):
    """Run ``fn`` as a WebUI job: under the GPU queue lock, with Interrupt reset before and after.
    Keeps ``fn``'s signature (Gradio reads it to pass ``gr.Progress``) and its return value."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        with _queue_lock():
            _begin_job()
            try:
                return fn(*args, **kwargs)
            finally:
                _end_job()

    return run


def _copypaste():
    """The WebUI's 'Send to' module (renamed in 1.8); None in hosts without it."""
    for name in ("modules.infotext_utils", "modules.generation_parameters_copypaste"):
        try:
            return __import__(name, fromlist=["register_paste_params_button"])
        except ImportError:
            continue
    return None


def after_component(component, **kwargs) -> None:
    """Add "Send to UnfoldLDM" beside the built-in 'Send to' buttons of each output gallery (called
    for every component the WebUI creates, so it returns at once for all others)."""
    elem_id = kwargs.get("elem_id") or getattr(component, "elem_id", None)
    for tab, anchor in SEND_BUTTON_ANCHORS.items():
        if elem_id == f"{tab}_gallery":
            _galleries[tab] = component
        elif elem_id == anchor and tab in _galleries and (copypaste := _copypaste()) is not None:
            import gradio as gr

            button = gr.Button("Send to UnfoldLDM", elem_id=f"{tab}_send_to_{TAB_ID}")
            copypaste.register_paste_params_button(copypaste.ParamBinding(
                paste_button=button, tabname=TAB_ID, source_image_component=_galleries[tab]))


def _link_with_other_tabs(ui) -> None:
    """Make the input image a 'Send to' destination; add buttons that send the result onward."""
    import gradio as gr

    copypaste = _copypaste()
    if copypaste is None:
        return
    copypaste.add_paste_fields(TAB_ID, ui.components["input"], None)
    with gr.Row():
        for target in SEND_TARGETS:
            button = gr.Button(f"Send to {target}", elem_id=f"{TAB_ID}_send_to_{target}")
            copypaste.register_paste_params_button(copypaste.ParamBinding(
                paste_button=button, tabname=target, source_image_component=ui.components["output"]))


def build_tab():
    """The tab's ``gr.Blocks`` (called by the WebUI through ``on_ui_tabs``)."""
    import gradio as gr

    from unfoldldm.ui.builder import build_restore_ui

    global last_ui
    # Server folders in the batch tab follow the WebUI's own rule for its directory inputs: off when it
    # was started with --hide-ui-dir-config (which public/shared set-ups use).
    hide_dirs = bool(getattr(getattr(shared, "cmd_opts", None), "hide_ui_dir_config", False))
    kwargs = {"models": lambda: registry().names(), "load": load, "device_choice": False,
              "on_run_wrapper": run_in_queue, "elem_prefix": TAB_ID, "batch": not hide_dirs}
    if "should_stop" in inspect.signature(build_restore_ui).parameters:
        kwargs["should_stop"] = interrupted
    with gr.Blocks(analytics_enabled=False) as blocks:
        if not registry().names():
            gr.Markdown(f"**No UnfoldLDM models found.** Put `.safetensors` checkpoints into `{models_dir()}` "
                        "and press the refresh button next to the model list.")
        last_ui = build_restore_ui(**kwargs)
        _link_with_other_tabs(last_ui)
    return blocks


def on_ui_tabs():
    return [(build_tab(), TAB_TITLE, TAB_ID)]


def _release() -> None:
    """Before the WebUI reloads its scripts: drop the cached model (a fresh one is loaded on use)."""
    forget_folder_registries()


script_callbacks.on_ui_tabs(on_ui_tabs)
if hasattr(script_callbacks, "on_after_component"):
    script_callbacks.on_after_component(after_component)
if hasattr(script_callbacks, "on_script_unloaded"):
    script_callbacks.on_script_unloaded(_release)
