"""Fake ``launch`` module of the WebUI, for extension installers.

The WebUI runs an extension's ``install.py`` as ``python install.py`` with its own root folder on
``PYTHONPATH``, so ``import launch`` works there. This fake installs nothing: each call is
appended as a JSON line to the file named by ``$A1111_HARNESS_LAUNCH_LOG`` (if set) and kept in
``calls``.
"""

import importlib.util
import json
import os

calls = []


def _record(name, *args):
    calls.append((name, *args))
    log = os.environ.get("A1111_HARNESS_LAUNCH_LOG")
    if log:
        with open(log, "a", encoding="utf8") as f:
            f.write(json.dumps([name, *args]) + "\n")


def is_installed(package):
    _record("is_installed", package)
    return importlib.util.find_spec(package) is not None


def run_pip(command, desc=None, live=False):
    _record("run_pip", command, desc)
    return ""
