"""Callbacks scripts register while they load, called by the WebUI later (``on_ui_tabs`` & co.)."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import NamedTuple

from modules import errors


class ScriptCallback(NamedTuple):
    script: str  # the file that registered it
    callback: Callable
    name: str | None = None


callback_map: dict[str, list[ScriptCallback]] = {
    "callbacks_app_started": [],
    "callbacks_ui_tabs": [],
    "callbacks_ui_settings": [],
    "callbacks_script_unloaded": [],
    "callbacks_after_component": [],
}


def _caller_file() -> str:
    here = os.path.abspath(__file__)
    for frame in inspect.stack()[1:]:
        if os.path.abspath(frame.filename) != here:
            return frame.filename
    return "unknown file"


def add_callback(callbacks: list[ScriptCallback], fun: Callable, *, name: str | None = None) -> None:
    callbacks.append(ScriptCallback(_caller_file(), fun, name))


def report_exception(c: ScriptCallback, job: str) -> None:
    errors.report(f"Error executing callback {job} for {c.script}", exc_info=True)


def clear_callbacks() -> None:
    for callbacks in callback_map.values():
        callbacks.clear()


def on_ui_tabs(callback: Callable, *, name: str | None = None) -> None:
    """``callback()`` returns None or a list of ``(gradio_component, title, elem_id)`` tuples:
    the component (usually a ``gr.Blocks``) becomes a top-level tab named ``title``."""
    add_callback(callback_map["callbacks_ui_tabs"], callback, name=name)


def on_ui_settings(callback: Callable, *, name: str | None = None) -> None:
    add_callback(callback_map["callbacks_ui_settings"], callback, name=name)


def on_app_started(callback: Callable, *, name: str | None = None) -> None:
    """``callback(demo, app)`` once the Gradio app is up."""
    add_callback(callback_map["callbacks_app_started"], callback, name=name)


def on_script_unloaded(callback: Callable, *, name: str | None = None) -> None:
    """``callback()`` before the scripts are reloaded (Reload UI) or the server stops."""
    add_callback(callback_map["callbacks_script_unloaded"], callback, name=name)


def on_after_component(callback: Callable, *, name: str | None = None) -> None:
    """``callback(component, **kwargs)`` after every component the WebUI creates; ``kwargs`` are
    the constructor's keyword arguments (``elem_id``, ``label``, ...)."""
    add_callback(callback_map["callbacks_after_component"], callback, name=name)


def after_component_callback(component, **kwargs) -> None:
    for c in callback_map["callbacks_after_component"]:
        try:
            c.callback(component, **kwargs)
        except Exception:  # noqa: BLE001 - reported and skipped, as the WebUI does
            report_exception(c, "after_component_callback")


def ui_tabs_callback() -> list:
    res = []
    for c in callback_map["callbacks_ui_tabs"]:
        try:
            res += c.callback() or []
        except Exception:  # noqa: BLE001 - reported and skipped, as the WebUI does
            report_exception(c, "ui_tabs_callback")
    return res


def ui_settings_callback() -> None:
    for c in callback_map["callbacks_ui_settings"]:
        try:
            c.callback()
        except Exception:  # noqa: BLE001 - reported and skipped, as the WebUI does
            report_exception(c, "ui_settings_callback")


def app_started_callback(demo, app) -> None:
    for c in callback_map["callbacks_app_started"]:
        try:
            c.callback(demo, app)
        except Exception:  # noqa: BLE001 - reported and skipped, as the WebUI does
            report_exception(c, "app_started_callback")


def script_unloaded_callback() -> None:
    for c in reversed(callback_map["callbacks_script_unloaded"]):
        try:
            c.callback()
        except Exception:  # noqa: BLE001 - reported and skipped, as the WebUI does
            report_exception(c, "script_unloaded")
