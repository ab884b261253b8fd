"""The standalone Gradio app: ``python -m unfoldldm app`` (see :mod:`unfoldldm.ui.cli`).

One device, one job at a time: the queue runs a single restoration (or batch) at once, whatever
the Gradio version (``concurrency_count=1`` on 3.x, ``default_concurrency_limit=1`` on 4.x+).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import gradio as gr

from ..imageio import DEFAULT_MAX_PIXELS
from . import compat
from .builder import RestoreUI, build_restore_ui
from .core import ModelRegistry

TITLE = "UnfoldLDM - blind image restoration"


def _offline_theme():
    """The default theme with system fonts: no font downloads from the internet (offline, private)."""
    try:
        return gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                                 font_mono=["ui-monospace", "Consolas", "monospace"])
    except Exception:  # noqa: BLE001 - a theme is cosmetic
        return None


def create_app(
    model_dirs: Iterable[str | Path] = (),
    model: str | None = None,
    device: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_upload_bytes: int | None = None,
    batch: bool = True,
) -> tuple[gr.Blocks, RestoreUI]:
    """Build the app (queued, one job at a time). ``device`` fixes the device and hides the choice."""
    from ..api import resolve_model_path

    extra = []
    model_dirs = list(model_dirs)
    default = None
    if model:
        path = resolve_model_path(model, search_dirs=model_dirs)  # a name or a path
        extra.append(path)
    registry = ModelRegistry(model_dirs, extra)
    if model:
        default = next((n for n, p in registry.paths().items() if Path(p) == Path(path)), None)

    fixed = device if device not in (None, "", "auto") else None
    if fixed:
        from ..api import pick_device

        pick_device(fixed)  # a clear error now rather than on the first run

    def load(name, dev="auto", dtype="auto"):
        return registry.load(name, fixed or dev, dtype)

    with gr.Blocks(title=TITLE, analytics_enabled=False, theme=_offline_theme()) as demo:
        gr.Markdown(f"## {TITLE}\nUpload a noisy, blurry, low-resolution or compressed photo and press "
                    "**Restore**. The MGDA estimates show what the model thinks went wrong.")
        if not registry.names():
            gr.Markdown("**No models found.** Trained weights have not been shipped with this version yet: "
                        "start the app with `--model PATH` or `--model-dir FOLDER` (a `.safetensors` file "
                        "written by `python -m unfoldldm train`).")
        ui = build_restore_ui(models=registry.names, load=load, device_choice=fixed is None,
                              default_model=default, max_pixels=max_pixels, max_upload_bytes=max_upload_bytes,
                              batch=batch)
    demo.queue(**compat.queue_kwargs(concurrency=1, max_size=64))
    return demo, ui


def launch(demo: gr.Blocks, host: str = "127.0.0.1", port: int | None = None,
           max_upload_bytes: int | None = None, block: bool = True):
    """Start the server; ``max_file_size`` refuses large uploads on Gradio 4+ (3.x: the handler does)."""
    kwargs = compat.launch_kwargs(
        server_name=host, server_port=port, max_file_size=max_upload_bytes, show_error=True,
        prevent_thread_lock=not block, inbrowser=False, share=False, quiet=False, show_api=True,
    )
    return demo.launch(**kwargs)
