"""Calling Gradio the same way on 3.41 (A1111 1.x) and on 4.x / 5.x.

Keyword arguments that an installed Gradio does not know are dropped (``supported``), instead of
branching on version numbers: e.g. ``show_download_button`` / ``format`` on ``gr.Image``,
``max_file_size`` on ``launch``, ``concurrency_id`` on event listeners.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import gradio as gr

GRADIO_VERSION = getattr(gr, "__version__", "0")
GRADIO_MAJOR = int(GRADIO_VERSION.split(".")[0] or 0)


def _parameters(fn: Callable) -> set[str] | None:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None  # takes **kwargs: pass everything
    return set(params)


def _named_parameters(fn: Callable) -> set[str] | None:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return None
    return {n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}


def supported(fn: Callable, **kwargs: Any) -> dict[str, Any]:
    """The subset of ``kwargs`` that ``fn`` names (Gradio 3.x components also take ``**kwargs``,
    but only warn about and ignore the ones they do not know)."""
    names = _named_parameters(fn)
    return dict(kwargs) if names is None else {k: v for k, v in kwargs.items() if k in names}


def component(cls, **kwargs: Any):
    """Create a gradio component, dropping keyword arguments this Gradio does not know."""
    return cls(**supported(cls.__init__, **kwargs))


def listen(event: Callable, fn: Callable, **kwargs: Any):
    """``button.click(fn, ...)`` with the 4.x-only keywords dropped on 3.x."""
    return event(fn, **supported(event, **kwargs))


def queue_kwargs(concurrency: int = 1, max_size: int | None = None) -> dict[str, Any]:
    """``demo.queue`` arguments for one job at a time: ``concurrency_count`` (3.x) or
    ``default_concurrency_limit`` (4.x+)."""
    names = _parameters(gr.Blocks.queue) or set()
    kwargs: dict[str, Any] = {"max_size": max_size}
    if "default_concurrency_limit" in names:
        kwargs["default_concurrency_limit"] = concurrency
    elif "concurrency_count" in names:
        kwargs["concurrency_count"] = concurrency
    return kwargs


def launch_kwargs(**kwargs: Any) -> dict[str, Any]:
    """``demo.launch`` arguments this Gradio knows (``max_file_size`` is 4.x+)."""
    return supported(gr.Blocks.launch, **kwargs)


def launch_enforces_upload_limit() -> bool:
    return "max_file_size" in (_parameters(gr.Blocks.launch) or set())


def file_path(value: Any) -> str | None:
    """The path of a ``gr.File`` value: a str (4.x+), a tempfile wrapper with ``.name`` (3.x) or a dict."""
    if value is None:
        return None
    if isinstance(value, dict):
        return value.get("path") or value.get("name")
    return str(getattr(value, "name", value))
