"""Loading the ``scripts/`` folder of every extension, as the WebUI does at start-up."""

from __future__ import annotations

import inspect
import os
import sys
from typing import NamedTuple

from modules import (
    errors,
    paths,
    script_callbacks,
    script_loading,
    scripts_postprocessing,
)


class Script:
    """Base class of txt2img/img2img scripts (only its identity matters here)."""


class ScriptFile(NamedTuple):
    basedir: str
    filename: str
    path: str


class ScriptClassData(NamedTuple):
    script_class: type
    path: str
    basedir: str
    module: object


scripts_data: list[ScriptClassData] = []
postprocessing_scripts_data: list[ScriptClassData] = []
loaded_modules: dict[str, object] = {}  # path -> module (not in the WebUI: lets tests reach a script's globals)
current_basedir = paths.script_path


def list_scripts(extension_dirs) -> list[ScriptFile]:
    found = []
    for ext in extension_dirs:
        folder = os.path.join(ext, "scripts")
        if os.path.isdir(folder):
            for filename in sorted(os.listdir(folder)):
                path = os.path.join(folder, filename)
                if os.path.splitext(filename)[1].lower() == ".py" and os.path.isfile(path):
                    found.append(ScriptFile(os.fspath(ext), filename, path))
    return found


def load_scripts(extension_dirs, *, forge: bool = False) -> None:
    """Execute every ``<extension>/scripts/*.py`` and register the script classes they define.

    A1111: the extension folder is put in front of ``sys.path`` while its file runs, and
    ``sys.path`` is put back afterwards. Forge (``forge=True``) first puts every extension folder
    in front of ``sys.path`` for good. A file that fails to load is reported and the others still
    load.
    """
    global current_basedir
    scripts_data.clear()
    postprocessing_scripts_data.clear()
    loaded_modules.clear()
    script_callbacks.clear_callbacks()
    if forge:
        for scriptfile in list_scripts(extension_dirs):
            if scriptfile.basedir not in sys.path:
                sys.path = [scriptfile.basedir] + sys.path
    syspath = sys.path

    def register_scripts_from_module(module, scriptfile):
        for script_class in module.__dict__.values():
            if not inspect.isclass(script_class):
                continue
            data = ScriptClassData(script_class, scriptfile.path, scriptfile.basedir, module)
            if issubclass(script_class, Script):
                scripts_data.append(data)
            elif issubclass(script_class, scripts_postprocessing.ScriptPostprocessing):
                postprocessing_scripts_data.append(data)

    for scriptfile in list_scripts(extension_dirs):
        try:
            if scriptfile.basedir != paths.script_path:
                sys.path = [scriptfile.basedir] + sys.path
            current_basedir = scriptfile.basedir
            module = script_loading.load_module(scriptfile.path)
            loaded_modules[scriptfile.path] = module
            register_scripts_from_module(module, scriptfile)
        except Exception:  # noqa: BLE001 - reported and skipped, as the WebUI does
            errors.report(f"Error loading script: {scriptfile.filename}", exc_info=True)
        finally:
            sys.path = syspath
            current_basedir = paths.script_path
