"""install.py: installs only what is missing, never torch; under A1111/Forge it asks the WebUI's
``launch.is_installed`` with import names and installs through ``launch.run_pip``."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IMPORTS = {"numpy", "PIL", "safetensors", "tqdm", "yaml"}


@pytest.fixture
def installer(monkeypatch):
    """install.py as a module, in a Python where tqdm and safetensors cannot be imported."""
    spec = importlib.util.spec_from_file_location("unfoldldm_install", ROOT / "install.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("tqdm", "safetensors") else real_find_spec(name, *a))
    monkeypatch.delitem(sys.modules, "launch", raising=False)
    return module


def fake_launch(missing: set[str]):
    calls = []
    launch = types.SimpleNamespace(
        is_installed=lambda name: calls.append(("is_installed", name)) or name not in missing,
        run_pip=lambda args, desc=None: calls.append(("run_pip", args)),
    )
    return launch, calls


def test_requirements_never_include_torch_and_map_to_import_names(installer):
    reqs = installer.requirements()
    assert "torch" not in {installer.distribution_name(r).lower() for r in reqs}
    assert {installer.import_name(r) for r in reqs} == IMPORTS


def test_plain_mode_pip_installs_only_the_missing(installer, monkeypatch):
    calls = []
    monkeypatch.setattr(installer.subprocess, "check_call", lambda cmd: calls.append(cmd))
    assert installer.main([]) == 0
    installed = sorted(cmd[-1].split(">")[0].split("<")[0] for cmd in calls)
    assert installed == ["safetensors", "tqdm"]
    assert all(cmd[:3] == [sys.executable, "-m", "pip"] for cmd in calls)


def test_a1111_mode_asks_is_installed_by_import_name_and_uses_run_pip(installer, monkeypatch):
    launch, calls = fake_launch(missing={"PIL", "yaml"})
    monkeypatch.setitem(sys.modules, "launch", launch)
    monkeypatch.setattr(installer.subprocess, "check_call", lambda cmd: pytest.fail("must go through launch"))
    installer.main([])
    assert {name for kind, name in calls if kind == "is_installed"} == IMPORTS
    pips = [args for kind, args in calls if kind == "run_pip"]
    assert [p.split('"')[1].split(">")[0] for p in pips] == ["pillow", "pyyaml"]
    assert not any("torch" in str(c) for c in calls)


def test_a_version_outside_the_bounds_is_reinstalled_within_them(installer, monkeypatch):
    real_version = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda n: "4.0.0" if n == "tqdm" else real_version(n))
    launch, calls = fake_launch(missing=set())
    monkeypatch.setitem(sys.modules, "launch", launch)
    installer.main([])
    assert [args for kind, args in calls if kind == "run_pip"] == ['install "tqdm>=4.60,<5"']


def test_dry_run_installs_nothing(installer, monkeypatch, capsys):
    monkeypatch.setattr(installer.subprocess, "check_call", lambda cmd: pytest.fail("must not install"))
    installer.main(["--dry-run"])
    assert "tqdm" in capsys.readouterr().out
