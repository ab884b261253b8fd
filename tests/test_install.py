"""install.py: installs only what is missing, never torch, through A1111's launch module when present."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def installer(monkeypatch):
    spec = importlib.util.spec_from_file_location("unfoldldm_install", ROOT / "install.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    real_version = importlib.metadata.version

    def version(name):
        if name in ("tqdm", "safetensors"):
            raise importlib.metadata.PackageNotFoundError(name)
        return real_version(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    return module


def test_requirements_never_include_torch(installer):
    names = {installer.distribution_name(r).lower() for r in installer.requirements()}
    assert "torch" not in names and {"numpy", "diffusers", "safetensors"} <= names


def test_plain_mode_pip_installs_only_the_missing(installer, monkeypatch):
    calls = []
    monkeypatch.setattr(installer.subprocess, "check_call", lambda cmd: calls.append(cmd))
    monkeypatch.delitem(sys.modules, "launch", raising=False)
    assert installer.main([]) == 0
    installed = sorted(cmd[-1].split(">")[0].split("<")[0] for cmd in calls)
    assert installed == ["safetensors", "tqdm"]
    assert all(cmd[:3] == [sys.executable, "-m", "pip"] for cmd in calls)


def test_a1111_mode_uses_launch_run_pip(installer, monkeypatch):
    calls = []
    fake_launch = types.SimpleNamespace(run_pip=lambda args, desc: calls.append(args), is_installed=lambda n: True)
    monkeypatch.setitem(sys.modules, "launch", fake_launch)
    installer.main([])
    assert len(calls) == 2 and all(c.startswith("install ") for c in calls)
    assert not any("torch" in c for c in calls)


def test_dry_run_installs_nothing(installer, monkeypatch, capsys):
    monkeypatch.setattr(installer.subprocess, "check_call", lambda cmd: pytest.fail("must not install"))
    installer.main(["--dry-run"])
    assert "tqdm" in capsys.readouterr().out
