"""The restoration UI, built inside the caller's ``gr.Blocks`` (standalone app, A1111/Forge tab).

Usage (any host)::

    import gradio as gr
    from unfoldldm.ui.builder import build_restore_ui
    from unfoldldm.ui.core import ModelRegistry

    registry = ModelRegistry(search_dirs=["/host/models/unfoldldm"])
    with gr.Blocks() as demo:
        ui = build_restore_ui(models=registry.names, load=registry.load, device_choice=True)

Works on Gradio 3.41 (A1111 1.x) and 4.x / 5.x: only components, events and ``gr.update`` that
exist in all of them are used, and version-specific keywords go through :mod:`.compat`.
"""

from __future__ import annotations

import base64
import os
import shutil
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import gradio as gr

from ..errors import InputImageError, RestorationInterrupted, UnfoldLDMError
from ..imageio import check_image_file, read_image_size
from ..options import (
    DEFAULT_TILE,
    ENSEMBLE_PASSES,
    MAX_NODE_PRIOR_STEPS,
    MAX_PIXELS,
    MAX_PRIOR_STRENGTH,
    MAX_STAGES,
    TILE_ALIGN,
)
from . import compat
from .core import UIOptions, blend, restore_file, restore_folder, restore_picture

DEVICES = ["auto", "cpu"]
DTYPES = ["auto", "fp32", "fp16", "bf16"]
TILE_SLIDER_MAX = 2048  # the slider's range (larger tiles rarely help); the nodes take up to MAX_TILE


def available_devices() -> list[str]:
    import torch

    devices = list(DEVICES)
    if torch.cuda.is_available():
        devices += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


@dataclass
class RestoreUI:
    """What :func:`build_restore_ui` made: the components (by short name) and the two handlers.

    ``run_image`` and ``run_batch`` are the plain Python functions wired to the buttons (before
    ``on_run_wrapper``); tests and hosts may call them directly.
    """

    components: dict[str, Any] = field(default_factory=dict)
    run_image: Callable[..., tuple] | None = None
    run_batch: Callable[..., str] | None = None
    compare: Callable[..., Any] | None = None
    refresh_models: Callable[[], Any] | None = None


class DownloadSpool:
    """Per-request folders for the PNG downloads, in one private temp folder: Gradio copies a
    returned file into its own cache, so only the newest ``keep`` folders are kept (a request
    still being sent keeps its file) and the rest are removed; the whole spool goes at exit."""

    def __init__(self, keep: int = 4) -> None:
        self.keep = keep
        self._lock = threading.Lock()
        self._root: Path | None = None
        self._folders: list[Path] = []

    def new_folder(self) -> Path:
        with self._lock:
            if self._root is None or not self._root.is_dir():
                import atexit

                self._root = Path(tempfile.mkdtemp(prefix="unfoldldm_downloads_"))
                atexit.register(shutil.rmtree, self._root, True)
            folder = Path(tempfile.mkdtemp(prefix="req_", dir=self._root))
            self._folders.append(folder)
            while len(self._folders) > self.keep:
                shutil.rmtree(self._folders.pop(0), ignore_errors=True)
            return folder


_downloads = DownloadSpool()


def _payload_source(payload: Any) -> tuple[str | None, str | None]:
    """(data URL, file path) of an image component's raw payload, on any Gradio version."""
    if payload is None:
        return None, None
    if isinstance(payload, str):
        return (payload, None) if payload.startswith("data:") else (None, payload)
    if isinstance(payload, dict):
        if "image" in payload and not any(k in payload for k in ("path", "url", "name")):
            return _payload_source(payload["image"])  # 3.x sketch/editor payload
        url, path = payload.get("url"), payload.get("path") or payload.get("name")
    else:  # 4.x+ FileData / ImageData
        url, path = getattr(payload, "url", None), getattr(payload, "path", None)
    if isinstance(url, str) and url.startswith("data:"):
        return url, None
    return None, path if isinstance(path, str) else None


def check_image_payload(payload: Any, max_pixels: int, max_upload_bytes: int | None) -> None:
    """Refuse an image upload from its header, before Gradio decodes it: more than ``max_pixels``
    pixels, or (pasted as a data URL) more than ``max_upload_bytes``."""
    url, path = _payload_source(payload)
    if url is not None:
        encoded = url.split(",", 1)[-1]
        size = len(encoded) * 3 // 4
        if max_upload_bytes is not None and size > max_upload_bytes:
            raise InputImageError(
                f"input image: {size / 2**20:.1f} MB, more than the upload limit of {max_upload_bytes / 2**20:.1f} MB. "
                "Downscale or compress it first, or start the app with a larger --max-upload-mb.")
        try:
            data = base64.b64decode(encoded, validate=False)
        except (ValueError, TypeError):
            raise InputImageError("input image: the pasted data is not valid base64 image data.") from None
        width, height = read_image_size(data, "input image")
    elif path is not None and os.path.isfile(path):
        check_image_file(path, max_pixels, name="input image")
        return
    else:
        return  # nothing to check here (no image, or a form Gradio itself refuses)
    if width * height > max_pixels:
        raise InputImageError(
            f"input image: {width}x{height} = {width * height:,} pixels, more than the limit of {max_pixels:,}. "
            "Downscale or crop it first.")


def _guard_image_input(component, max_pixels: int, max_upload_bytes: int | None) -> None:
    """Run :func:`check_image_payload` before the component's own preprocessing (which decodes)."""
    original = getattr(component, "preprocess", None)
    if original is None:
        return

    def preprocess(payload, *args, **kwargs):
        try:
            check_image_payload(payload, max_pixels, max_upload_bytes)
        except UnfoldLDMError as exc:
            raise gr.Error(str(exc)) from None
        return original(payload, *args, **kwargs)

    component.preprocess = preprocess


def _hide_path(message: str, path: str, shown: str) -> str:
    """A message about an uploaded file, naming the upload instead of the server's temp path."""
    for form in {str(path), os.path.realpath(path), os.path.abspath(path)}:
        message = message.replace(form, shown)
    return message


def _report(progress, fraction: float, desc: str) -> None:
    """Call a gr.Progress if it is usable here (it is a no-op outside a queued event)."""
    if progress is None:
        return
    try:
        progress(fraction, desc=desc)
    except Exception:  # noqa: BLE001 - progress is cosmetic; never fail a run for it
        pass


def _as_gradio_error(exc: BaseException) -> gr.Error:
    """Our messages as they are; anything else (a bug) logged with its traceback, shown in one line."""
    if isinstance(exc, UnfoldLDMError):
        return gr.Error(str(exc))
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    return gr.Error(f"Unexpected error ({type(exc).__name__}: {exc}). The details are in the server log; "
                    "please report it.")


def build_restore_ui(
    *,
    models: Callable[[], list[str]],
    load: Callable[..., Any],
    device_choice: bool,
    on_run_wrapper: Callable[[Callable], Callable] | None = None,
    default_model: str | None = None,
    max_pixels: int | None = None,
    max_upload_bytes: int | None = None,
    batch: bool = True,
    elem_prefix: str = "unfoldldm",
    should_stop: Callable[[], bool] | None = None,
    batch_roots: Sequence[str | Path] | None = None,
) -> RestoreUI:
    """Create the restoration UI inside the current ``gr.Blocks()`` context; return a :class:`RestoreUI`.

    models          called for the model dropdown's choices (at build time and on refresh)
    load            ``load(name)`` -> model; ``load(name, device, dtype)`` when ``device_choice``
                    (device "auto"/"cpu"/"cuda:N"/"mps", dtype "auto"/"fp32"/"fp16"/"bf16").
                    It should cache: it is called on every run.
    device_choice   show device and dtype controls (False in hosts that own the device)
    on_run_wrapper  wraps both handlers before they are wired (e.g. A1111's GPU-queue lock); it
                    must keep the arguments and the return value
    default_model   preselected model (else the first of ``models()``)
    max_pixels      refuse larger inputs (default: unfoldldm.options.MAX_PIXELS)
    max_upload_bytes  refuse larger uploaded files (checked here, for Gradio 3.x, which has no
                    server-side limit; Gradio 4+ hosts also pass ``max_file_size`` to launch)
    batch           show the "batch folder" tab (server-side paths: leave it off for public apps)
    batch_roots     if given, batch folders must resolve to a place inside one of these (relative
                    names are taken inside the first); the standalone app always passes them
    elem_prefix     prefix of every elem_id (unique ids inside a host page)
    should_stop     polled between tiles; True aborts the run (e.g. the WebUI's Interrupt button)
    """
    base = UIOptions(max_upload_bytes=max_upload_bytes)
    base.max_pixels = int(max_pixels) if max_pixels else MAX_PIXELS
    wrap = on_run_wrapper or (lambda fn: fn)
    choices = list(models())
    value = default_model if default_model in choices else (choices[0] if choices else None)
    eid = lambda name: f"{elem_prefix}_{name}"  # noqa: E731
    c: dict[str, Any] = {}

    def options(stages, prior_steps, seed, tile, strength, ensemble) -> UIOptions:
        return UIOptions(stages=int(stages or 0) or None, prior_steps=int(prior_steps or 0) or None,
                         seed=int(seed or 0), tile=int(tile or 0) or None, overlap=base.overlap,
                         prior_strength=float(strength), ensemble=ensemble,
                         max_pixels=base.max_pixels, max_upload_bytes=base.max_upload_bytes)

    def get_model(name, device, dtype):
        return load(name, device, dtype) if device_choice else load(name)

    # ---- layout --------------------------------------------------------------------------
    with gr.Row():
        with gr.Column():
            with gr.Tabs():
                with gr.Tab("Image"):
                    # type="filepath": the upload reaches us undecoded, and its header is checked
                    # against the pixel limit before anything decodes it (_guard_image_input).
                    c["input"] = compat.component(
                        gr.Image, type="filepath", image_mode=None, label="Input image (upload or paste)",
                        elem_id=eid("input"), sources=["upload", "clipboard"], source="upload")
                    _guard_image_input(c["input"], base.max_pixels, base.max_upload_bytes)
                    c["input_file"] = compat.component(
                        gr.File, label="...or an image file (16-bit PNG, EXIF orientation; takes precedence)",
                        elem_id=eid("input_file"))
                    c["run"] = gr.Button("Restore", variant="primary", elem_id=eid("run"))
                if batch:
                    with gr.Tab("Batch folder"):
                        where = (f" (inside {', '.join(str(r) for r in batch_roots)})" if batch_roots
                                 else " (on the server)")
                        c["batch_in"] = gr.Textbox(label=f"Input folder{where}", elem_id=eid("batch_in"))
                        c["batch_out"] = gr.Textbox(label=f"Output folder{where}, created if needed",
                                                    elem_id=eid("batch_out"))
                        c["batch_overwrite"] = gr.Checkbox(value=False, label="Overwrite existing outputs",
                                                           elem_id=eid("batch_overwrite"))
                        c["batch_run"] = gr.Button("Restore folder", variant="primary", elem_id=eid("batch_run"))
                        c["batch_status"] = gr.Textbox(label="Batch result", lines=4, interactive=False,
                                                       elem_id=eid("batch_status"))
            with gr.Row():
                c["model"] = gr.Dropdown(choices=choices, value=value, label="Model", elem_id=eid("model"))
                c["refresh"] = gr.Button("Refresh list", elem_id=eid("refresh"))
            with gr.Row(visible=device_choice):
                c["device"] = gr.Dropdown(choices=available_devices(), value="auto", label="Device",
                                          elem_id=eid("device"))
                c["dtype"] = gr.Dropdown(choices=DTYPES, value="auto", label="Precision", elem_id=eid("dtype"))
            with gr.Accordion("Settings", open=False):
                c["stages"] = gr.Slider(0, MAX_STAGES, value=0, step=1, label="Stages (0 = all of the model's)",
                                        elem_id=eid("stages"))
                c["prior_steps"] = gr.Slider(0, MAX_NODE_PRIOR_STEPS, value=0, step=1,
                                             label="Prior steps (0 = the model's)", elem_id=eid("prior_steps"))
                c["seed"] = gr.Number(value=base.seed, precision=0, label="Seed", elem_id=eid("seed"))
                c["tile"] = gr.Slider(0, TILE_SLIDER_MAX, value=DEFAULT_TILE, step=TILE_ALIGN,
                                      label="Tile size in px (0 = whole image)", elem_id=eid("tile"))
                c["strength"] = gr.Slider(0.0, MAX_PRIOR_STRENGTH, value=base.prior_strength, step=0.05,
                                          label="Prior strength (0 = off)", elem_id=eid("strength"))
                c["ensemble"] = gr.Dropdown(choices=[str(n) for n in ENSEMBLE_PASSES], value="1",
                                            label="Ensemble: orientations averaged (a little cleaner, that many "
                                                  "times slower; 1 = off)", elem_id=eid("ensemble"))
        with gr.Column():
            c["output"] = compat.component(gr.Image, type="pil", label="Restored", interactive=False,
                                           show_download_button=True, format="png", elem_id=eid("output"))
            c["download"] = compat.component(gr.File, label="Download (PNG)", interactive=False,
                                             elem_id=eid("download"))
            c["status"] = gr.Markdown("", elem_id=eid("status"))
            with gr.Row():
                c["kernel"] = compat.component(gr.Image, type="pil", label="Estimated blur kernel (MGDA)",
                                               interactive=False, format="png", elem_id=eid("kernel"))
                c["noise"] = compat.component(gr.Image, type="pil", label="Estimated noise map (MGDA)",
                                              interactive=False, format="png", elem_id=eid("noise"))
            with gr.Accordion("Before / after", open=False):
                c["compare_amount"] = gr.Slider(0.0, 1.0, value=0.5, step=0.01,
                                                label="Before (0) - after (1)", elem_id=eid("compare_amount"))
                c["compare"] = compat.component(gr.Image, type="pil", label="Comparison", interactive=False,
                                                format="png", elem_id=eid("compare"))
    c["pair"] = gr.State(None)

    # ---- handlers ------------------------------------------------------------------------
    def run_image(image, file, model_name, stages, prior_steps, seed, tile, strength, ensemble, amount,
                  device="auto", dtype="auto", progress=gr.Progress()):
        try:
            start = time.perf_counter()
            opts = options(stages, prior_steps, seed, tile, strength, ensemble)
            path = compat.file_path(file)
            if path is None and image is None:
                raise UnfoldLDMError("No input image: upload or paste an image first.")
            _report(progress, 0.0, "loading model")
            model = get_model(model_name, device, dtype)
            tick = lambda done, total: _report(progress, done / max(total, 1), "restoring")  # noqa: E731
            image_path = compat.file_path(image) if image is not None and not hasattr(image, "size") else None
            if path is not None or image_path is not None:
                chosen = path if path is not None else image_path
                shown = os.path.basename(chosen) if path is not None else "input image"
                try:
                    before, out, kernel, noise = restore_file(model, chosen, opts, tick, should_stop=should_stop,
                                                              return_input=True)
                except UnfoldLDMError as exc:  # name the upload, not the server's temp path
                    raise type(exc)(_hide_path(str(exc), chosen, shown)) from None
                stem = os.path.splitext(os.path.basename(chosen))[0] if path is not None else None
            else:
                out, kernel, noise = restore_picture(model, image, opts, tick, should_stop=should_stop)
                before, stem = image, None
            # a file keeps its name; a pasted or uploaded picture (a temp name) is just "restored"
            download = os.path.join(_downloads.new_folder(), f"{stem}_restored.png" if stem else "restored.png")
            out.save(download)
            size_in = f"{before.width}x{before.height}"
            status = (f"Restored {size_in} -> {out.width}x{out.height} with `{model_name}` in "
                      f"{time.perf_counter() - start:.1f} s.")
            return out, download, status, kernel, noise, blend(before, out, amount), (before, out)
        except gr.Error:
            raise
        except (RestorationInterrupted, UnfoldLDMError, Exception) as exc:  # noqa: BLE001
            raise _as_gradio_error(exc) from None

    def run_batch(in_dir, out_dir, overwrite, model_name, stages, prior_steps, seed, tile, strength, ensemble,
                  device="auto", dtype="auto", progress=gr.Progress()):
        try:
            opts = options(stages, prior_steps, seed, tile, strength, ensemble)
            model = get_model(model_name, device, dtype)
            tick = lambda done, total, name: _report(progress, done / max(total, 1), name or "done")  # noqa: E731
            return restore_folder(model, in_dir, out_dir, opts, tick, overwrite=bool(overwrite),
                                  should_stop=should_stop, roots=batch_roots).summary(out_dir)
        except gr.Error:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _as_gradio_error(exc) from None

    def compare(pair, amount):
        if not pair:
            return None
        return blend(pair[0], pair[1], amount)

    def refresh_models(current=None):
        names = list(models())
        keep = current if current in names else (names[0] if names else None)
        return gr.update(choices=names, value=keep)

    # ---- wiring --------------------------------------------------------------------------
    settings = [c["model"], c["stages"], c["prior_steps"], c["seed"], c["tile"], c["strength"], c["ensemble"]]
    queue = dict(concurrency_id=f"{elem_prefix}_device", concurrency_limit=1)
    compat.listen(c["run"].click, wrap(run_image),
                  inputs=[c["input"], c["input_file"], *settings, c["compare_amount"], c["device"], c["dtype"]],
                  outputs=[c["output"], c["download"], c["status"], c["kernel"], c["noise"], c["compare"],
                           c["pair"]],
                  api_name=f"{elem_prefix}_run_image", **queue)
    if batch:
        compat.listen(c["batch_run"].click, wrap(run_batch),
                      inputs=[c["batch_in"], c["batch_out"], c["batch_overwrite"], *settings, c["device"],
                              c["dtype"]],
                      outputs=[c["batch_status"]], api_name=f"{elem_prefix}_run_batch", **queue)
    compat.listen(c["compare_amount"].change, compare, inputs=[c["pair"], c["compare_amount"]],
                  outputs=[c["compare"]], queue=False)
    compat.listen(c["refresh"].click, refresh_models, inputs=[c["model"]], outputs=[c["model"]], queue=False)
    return RestoreUI(components=c, run_image=run_image, run_batch=run_batch if batch else None,
                     compare=compare, refresh_models=refresh_models)


__all__ = ["RestoreUI", "build_restore_ui", "available_devices"]
