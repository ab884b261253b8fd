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
  stops at the WebUI's Interrupt (``shared.state.interrupted``) between tiles.
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


def build_tab():
    """The tab's ``gr.Blocks`` (called by the WebUI through ``on_ui_tabs``)."""
    import gradio as gr

    from unfoldldm.ui.builder import build_restore_ui

    global last_ui
    kwargs = {"models": lambda: registry().names(), "load": load, "device_choice": False,
              "on_run_wrapper": run_in_queue, "elem_prefix": TAB_ID}
    if "should_stop" in inspect.signature(build_restore_ui).parameters:
        kwargs["should_stop"] = interrupted
    with gr.Blocks(analytics_enabled=False) as blocks:
        if not registry().names():
            gr.Markdown(f"**No UnfoldLDM models found.** Put `.safetensors` checkpoints into `{models_dir()}` "
                        "and press the refresh button next to the model list (trained weights are not "
                        "shipped with this version yet).")
        last_ui = build_restore_ui(**kwargs)
    return blocks


def on_ui_tabs():
    return [(build_tab(), TAB_TITLE, TAB_ID)]


def _release() -> None:
    """Before the WebUI reloads its scripts: drop the cached model (a fresh one is loaded on use)."""
    forget_folder_registries()


script_callbacks.on_ui_tabs(on_ui_tabs)
if hasattr(script_callbacks, "on_script_unloaded"):
    script_callbacks.on_script_unloaded(_release)
