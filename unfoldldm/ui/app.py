"""The standalone Gradio app: ``python -m unfoldldm app`` (see :mod:`unfoldldm.ui.cli`).

One device, one job at a time: the queue runs a single restoration (or batch) at once, whatever
the Gradio version (``concurrency_count=1`` on 3.x, ``default_concurrency_limit=1`` on 4.x+).

What a request can reach is limited: batch folders only under the ``--batch-root`` folders (off
without one), requests only with a ``Host`` header naming this machine (so a web page cannot reach
the app through DNS rebinding), uploads checked against the pixel limit before decoding, and the
upload cache pruned.
"""

from __future__ import annotations

import ipaddress
import os
import sys
import threading
import time
from pathlib import Path
from typing import Iterable

import gradio as gr

from ..options import MAX_PIXELS
from . import compat
from .builder import RestoreUI, build_restore_ui
from .core import ModelRegistry, batch_roots

TITLE = "UnfoldLDM - blind image restoration"
LOOPBACK_NAMES = ("localhost",)
CACHE_MAX_AGE_S = 3600  # uploads older than this are removed from the cache...
CACHE_MIN_BYTES = 512 * 2**20  # ...and the oldest go first once the cache holds more than this


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
    max_pixels: int = MAX_PIXELS,
    max_upload_bytes: int | None = None,
    batch_root: Iterable[str | Path] = (),
) -> tuple[gr.Blocks, RestoreUI]:
    """Build the app (queued, one job at a time). ``device`` fixes the device and hides the choice.
    ``batch_root``: folders the batch tab may read and write under; without any, no batch tab."""
    from ..api import resolve_model_path

    extra = []
    model_dirs = list(model_dirs)
    roots = batch_roots(batch_root)
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

    blocks_kwargs = compat.supported(gr.Blocks.__init__, delete_cache=(600, CACHE_MAX_AGE_S))
    with gr.Blocks(title=TITLE, analytics_enabled=False, theme=_offline_theme(), **blocks_kwargs) as demo:
        gr.Markdown(f"## {TITLE}\nUpload a noisy, blurry, low-resolution or compressed photo and press "
                    "**Restore**. The MGDA estimates show what the model thinks went wrong.")
        if not registry.names():
            gr.Markdown("**No models found.** Trained weights have not been shipped with this version yet: "
                        "start the app with `--model PATH` or `--model-dir FOLDER` (a `.safetensors` file "
                        "written by `python -m unfoldldm train`).")
        ui = build_restore_ui(models=registry.names, load=load, device_choice=fixed is None,
                              default_model=default, max_pixels=max_pixels, max_upload_bytes=max_upload_bytes,
                              batch=bool(roots), batch_roots=roots)
    demo.queue(**compat.queue_kwargs(concurrency=1, max_size=64))
    return demo, ui


# ----- Host header check ----------------------------------------------------------------------

def _host_name(header: str) -> str:
    """The host part of a Host header: ``name:port``, ``[v6]:port``, ``name``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    if header.count(":") == 1:
        return header.split(":", 1)[0]
    return header.rstrip(".")


def host_allowed(header: str | None, listen: bool, allowed_names: Iterable[str] = ()) -> bool:
    """Whether a request's Host header may reach the app.

    Loopback names and addresses always; with ``listen``, any IP address too (a browser sends an
    address it was given as the Host itself, so that is not DNS rebinding); other names only if
    they are in ``allowed_names`` (``--allow-host``).
    """
    if not header:
        return False
    name = _host_name(header)
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    if name in {n.strip().lower().rstrip(".") for n in allowed_names}:
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return address.is_loopback or listen


class HostGuard:
    """ASGI middleware: requests whose Host header is not allowed get 400 (HTTP) or are closed
    (WebSocket) before they reach any route."""

    def __init__(self, app, listen: bool = False, allowed_names: Iterable[str] = ()) -> None:
        self.app, self.listen, self.allowed_names = app, listen, tuple(allowed_names)

    async def __call__(self, scope, receive, send):
        if scope.get("type") in ("http", "websocket"):
            headers = dict(scope.get("headers") or [])
            host = headers.get(b"host", b"").decode("latin-1")
            if not host_allowed(host, self.listen, self.allowed_names):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                body = (b"Host header not allowed. Open the app at 127.0.0.1 or localhost (or by IP address "
                        b"with --listen), or start it with --allow-host NAME.\n")
                await send({"type": "http.response.start", "status": 400,
                            "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


# ----- upload cache ---------------------------------------------------------------------------

def prune_cache(folder: str | Path, max_bytes: int, max_age_s: float = CACHE_MAX_AGE_S) -> int:
    """Remove files older than ``max_age_s`` from Gradio's upload cache, then the oldest until it
    holds at most ``max_bytes``; returns how many files were removed. A folder this emptied goes too;
    folders that were empty already are Gradio's own (it makes some at start) and stay."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    files = []
    for path in folder.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink():
                stat = path.stat()
                files.append((stat.st_mtime, stat.st_size, path))
        except OSError:
            continue
    files.sort()
    now, total, removed = time.time(), sum(size for _, size, _ in files), 0
    touched: set[Path] = set()  # folders under the cache that held a removed file
    for mtime, size, path in files:
        if now - mtime <= max_age_s and total <= max_bytes:
            break
        try:
            path.unlink()
            total -= size
            removed += 1
            touched.update(p for p in path.parents if folder in p.parents)
        except OSError:
            pass
    for sub in sorted(touched, key=lambda p: len(p.parts), reverse=True):
        try:
            sub.rmdir()  # only if empty now
        except OSError:
            pass
    return removed


def upload_cache_folder() -> Path:
    """Where this Gradio keeps uploads (``GRADIO_TEMP_DIR``, else ``<tmp>/gradio``)."""
    import tempfile

    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")


def start_cache_pruner(max_bytes: int, every_s: float = 60.0) -> threading.Thread:
    """Prune the upload cache now and every ``every_s`` seconds (a daemon thread)."""

    def loop() -> None:
        while True:
            try:
                prune_cache(upload_cache_folder(), max_bytes)
            except Exception as exc:  # noqa: BLE001 - pruning must never stop the app
                print(f"warning: could not prune the upload cache ({exc})", file=sys.stderr)
            time.sleep(every_s)

    thread = threading.Thread(target=loop, name="unfoldldm-cache-pruner", daemon=True)
    thread.start()
    return thread


def launch(demo: gr.Blocks, host: str = "127.0.0.1", port: int | None = None,
           max_upload_bytes: int | None = None, block: bool = True, allowed_hosts: Iterable[str] = ()):
    """Start the server; ``max_file_size`` refuses large uploads on Gradio 4+ (3.x: the handler does).
    Every request's Host header is checked (:class:`HostGuard`)."""
    from starlette.middleware import Middleware

    listen = host not in ("127.0.0.1", "localhost", "::1")
    guard = Middleware(HostGuard, listen=listen, allowed_names=tuple(allowed_hosts))
    kwargs = compat.launch_kwargs(
        server_name=host, server_port=port, max_file_size=max_upload_bytes, show_error=True,
        prevent_thread_lock=not block, inbrowser=False, share=False, quiet=False, show_api=True,
        app_kwargs={"middleware": [guard]},
    )
    if "app_kwargs" not in kwargs:
        print("warning: this Gradio cannot take middleware, so Host headers are not checked; "
              "do not open other web pages while the app runs.", file=sys.stderr)
    start_cache_pruner(max(CACHE_MIN_BYTES, 20 * (max_upload_bytes or 0)))
    return demo.launch(**kwargs)
