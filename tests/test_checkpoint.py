"""Tests for unfoldldm.checkpoint: exact round trips, metadata, refusing every kind of bad file, atomic saves."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import safetensors
import safetensors.torch
import torch

import unfoldldm
from unfoldldm.checkpoint import (
    FORMAT_NAME,
    FORMAT_VERSION,
    load_checkpoint,
    read_checkpoint_info,
    save_checkpoint,
)
from unfoldldm.config import preset
from unfoldldm.errors import CheckpointError, UnfoldLDMError
from unfoldldm.pipeline import RestoreOptions, restore

PROVENANCE = {"steps": 12, "device": "cpu"}
pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _files(folder: Path) -> list[str]:
    """Every entry of ``folder``, hidden temp files included."""
    return sorted(os.listdir(folder))


# --------------------------------------------------------------------------------------------
# Round trip


@pytest.mark.parametrize("task, scale", [("restore", 1), ("sr4x", 4)])
def test_round_trip_is_exact(tmp_path, make_nano_model, task, scale):
    model = make_nano_model(task, seed=3)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    path = save_checkpoint(tmp_path / f"{task}.safetensors", model, provenance=PROVENANCE)
    assert path == tmp_path / f"{task}.safetensors" and path.is_file()

    loaded = load_checkpoint(path)
    assert not loaded.training
    after = loaded.state_dict()
    assert set(after) == set(before)
    for key, value in before.items():
        assert after[key].dtype == value.dtype, key
        assert torch.equal(after[key], value), key
    assert loaded.config == model.config == preset("nano", task=task)

    info = loaded.checkpoint_info
    assert info.task == task and info.config.scale == scale
    assert info.provenance == PROVENANCE
    assert info.num_tensors == len(before)
    meta = info.metadata
    assert meta["format"] == FORMAT_NAME == "unfoldldm"
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["package_version"] == unfoldldm.__version__
    assert meta["task"] == task and meta["scale"] == str(scale)
    assert json.loads(meta["config"]) == json.loads(model.config.to_json())

    x = torch.rand(1, 3, 40, 48, generator=torch.Generator().manual_seed(7))
    opts = RestoreOptions(seed=5)
    expected = restore(model, x, opts).image
    got = restore(loaded, x, opts).image
    assert got.shape == (1, 3, 40 * scale, 48 * scale)
    assert torch.equal(got, expected)


def test_loaded_outputs_depend_on_the_weights(tmp_path, make_nano_model):
    """Guards the round-trip test: a model with other weights gives another output."""
    x = torch.rand(1, 3, 40, 48, generator=torch.Generator().manual_seed(7))
    a = load_checkpoint(save_checkpoint(tmp_path / "a.safetensors", make_nano_model(seed=1)))
    b = load_checkpoint(save_checkpoint(tmp_path / "b.safetensors", make_nano_model(seed=2)))
    assert not torch.equal(restore(a, x).image, restore(b, x).image)


def test_weights_with_nan_are_refused_with_the_likely_cause(tmp_path, make_nano_model):
    """A diverged training run exports NaN weights; loading them must say so, not restore NaN images."""
    model = make_nano_model(seed=1)
    with torch.no_grad():
        next(model.proximal.parameters()).view(-1)[0] = float("nan")
        next(model.gradient_step.parameters()).fill_(float("inf"))
    path = save_checkpoint(tmp_path / "diverged.safetensors", model)
    with pytest.raises(CheckpointError, match="hold NaN or infinite values.*diverged"):
        load_checkpoint(path)


def test_provenance_defaults_to_empty(tmp_path, make_nano_model):
    path = save_checkpoint(tmp_path / "m.safetensors", make_nano_model())
    assert read_checkpoint_info(path).provenance == {}


def test_info_reads_no_tensors(tmp_path, make_nano_model, monkeypatch):
    path = save_checkpoint(tmp_path / "sr.safetensors", make_nano_model("sr4x"), provenance=PROVENANCE)
    n_tensors = len(make_nano_model("sr4x").state_dict())

    def forbidden(*args, **kwargs):
        raise AssertionError("read_checkpoint_info must not read tensor data")

    real_safe_open = safetensors.safe_open

    class HeaderOnly:
        def __init__(self, *args, **kwargs):
            self._inner = real_safe_open(*args, **kwargs)

        def __enter__(self):
            self._f = self._inner.__enter__()
            return self

        def __exit__(self, *exc):
            return self._inner.__exit__(*exc)

        def metadata(self):
            return self._f.metadata()

        def keys(self):
            return self._f.keys()

        get_tensor = get_slice = forbidden

    monkeypatch.setattr(safetensors, "safe_open", HeaderOnly)
    monkeypatch.setattr(safetensors.torch, "load_file", forbidden)
    monkeypatch.setattr(safetensors.torch, "load", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    info = read_checkpoint_info(path)
    assert info.task == "sr4x"
    assert info.config == preset("nano", task="sr4x")
    assert info.provenance == PROVENANCE
    assert info.num_tensors == n_tensors
    assert info.path == path


# --------------------------------------------------------------------------------------------
# Refused files: every error is a CheckpointError naming the file and the problem


def _refused(path, loader=load_checkpoint, **kwargs) -> str:
    with pytest.raises(CheckpointError) as excinfo:
        loader(path, **kwargs)
    message = str(excinfo.value)
    assert Path(path).name in message, message
    assert isinstance(excinfo.value, UnfoldLDMError)
    return message


@pytest.mark.parametrize("loader", [load_checkpoint, read_checkpoint_info])
def test_missing_file(tmp_path, loader):
    message = _refused(tmp_path / "nowhere.safetensors", loader)
    assert "no such" in message.lower()


@pytest.mark.parametrize("loader", [load_checkpoint, read_checkpoint_info])
def test_folder(tmp_path, loader):
    folder = tmp_path / "model.safetensors"
    folder.mkdir()
    message = _refused(folder, loader)
    assert "folder" in message.lower()


class _Payload:
    """Unpickling this creates the marker file: proof that a pickle was (not) loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".ckpt"])
@pytest.mark.parametrize("loader", [load_checkpoint, read_checkpoint_info])
def test_pickles_are_refused_unopened(tmp_path, suffix, loader):
    marker = tmp_path / "unpickled.marker"
    path = tmp_path / f"model{suffix}"
    torch.save({"weight": torch.zeros(2), "payload": _Payload(marker)}, path)
    # The payload is live: what unpickling would call (its __reduce__ recipe) creates the marker.
    call, args = _Payload(marker).__reduce__()
    call(*args).close()
    assert marker.exists()
    marker.unlink()

    message = _refused(path, loader)
    assert not marker.exists(), "the pickle was unpickled"
    assert "pickle" in message.lower()
    assert "safetensors" in message and "convert" in message.lower()


def test_pickle_refused_by_suffix_case_insensitively(tmp_path):
    path = tmp_path / "MODEL.PTH"
    path.write_bytes(pickle.dumps({"a": 1}))
    assert "pickle" in _refused(path).lower()


def test_text_file_named_safetensors(tmp_path):
    path = tmp_path / "notes.safetensors"
    path.write_text("these are not the weights you are looking for\n" * 20)
    message = _refused(path)
    assert "not a readable safetensors file" in message


def test_other_suffix(tmp_path):
    path = tmp_path / "weights.onnx"
    path.write_bytes(b"\0" * 64)
    assert ".safetensors" in _refused(path)


@pytest.mark.parametrize("loader", [load_checkpoint, read_checkpoint_info])
def test_truncated_checkpoint(tmp_path, make_nano_model, loader):
    full = save_checkpoint(tmp_path / "full.safetensors", make_nano_model())
    data = full.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    message = _refused(cut, loader)
    assert "truncated" in message or "damaged" in message


def test_foreign_safetensors(tmp_path):
    path = tmp_path / "other_net.safetensors"
    safetensors.torch.save_file({"conv.weight": torch.randn(4, 3, 3, 3), "conv.bias": torch.randn(4)}, str(path))
    assert "not an UnfoldLDM checkpoint" in _refused(path)
    assert "not an UnfoldLDM checkpoint" in _refused(path, read_checkpoint_info)


def test_config_of_another_preset(tmp_path, make_nano_model, rewrite_checkpoint_metadata):
    nano = save_checkpoint(tmp_path / "nano.safetensors", make_nano_model())

    def claim_small(metadata):
        metadata["config"] = preset("small").to_json()

    path = rewrite_checkpoint_metadata(nano, tmp_path / "claims_small.safetensors", claim_small)
    assert read_checkpoint_info(path).config.name == "small"  # the header alone looks fine
    message = _refused(path)
    assert "do not match" in message and "small" in message


def test_shared_mismatched_checkpoint_is_refused(nano_checkpoints):
    """The conftest's mismatched checkpoint (used by the CLI tests) really is refused."""
    assert "do not match" in _refused(nano_checkpoints["mismatched"])


@pytest.mark.parametrize("version", ["2", "0", None])
def test_unsupported_format_version(tmp_path, make_nano_model, rewrite_checkpoint_metadata, version):
    good = save_checkpoint(tmp_path / "good.safetensors", make_nano_model())

    def set_version(metadata):
        if version is None:
            del metadata["format_version"]
        else:
            metadata["format_version"] = version

    path = rewrite_checkpoint_metadata(good, tmp_path / "future.safetensors", set_version)
    message = _refused(path)
    assert "format version" in message and "upgrade" in message.lower()
    if version is not None:
        assert repr(version) in message


def test_expected_task_mismatch(nano_checkpoints):
    message = _refused(nano_checkpoints["restore"], expect_task="sr4x")
    assert "'restore'" in message and "'sr4x'" in message
    assert load_checkpoint(nano_checkpoints["sr4x"], expect_task="sr4x").config.task == "sr4x"


def test_unknown_config_fields(tmp_path, make_nano_model, rewrite_checkpoint_metadata):
    good = save_checkpoint(tmp_path / "good.safetensors", make_nano_model())

    def add_field(metadata):
        config = json.loads(metadata["config"])
        config["hyper_attention"] = True
        metadata["config"] = json.dumps(config)

    path = rewrite_checkpoint_metadata(good, tmp_path / "newer.safetensors", add_field)
    for loader in (read_checkpoint_info, load_checkpoint):
        message = _refused(path, loader)
        assert "hyper_attention" in message and "upgrade" in message.lower()


@pytest.mark.parametrize("config", ["{not json", "null", None])
def test_damaged_config(tmp_path, make_nano_model, rewrite_checkpoint_metadata, config):
    good = save_checkpoint(tmp_path / "good.safetensors", make_nano_model())

    def damage(metadata):
        if config is None:
            del metadata["config"]
        else:
            metadata["config"] = config

    path = rewrite_checkpoint_metadata(good, tmp_path / "damaged.safetensors", damage)
    assert "config" in _refused(path)


# --------------------------------------------------------------------------------------------
# Saving


@pytest.mark.parametrize("name", ["model.pt", "model.pth", "model.ckpt", "model", "model.safetensors.tmp"])
def test_save_refuses_other_suffixes(tmp_path, make_nano_model, name):
    with pytest.raises(CheckpointError) as excinfo:
        save_checkpoint(tmp_path / name, make_nano_model())
    assert ".safetensors" in str(excinfo.value) and name in str(excinfo.value)
    assert _files(tmp_path) == []


def test_save_leaves_no_temp_files(tmp_path, make_nano_model):
    save_checkpoint(tmp_path / "m.safetensors", make_nano_model())
    save_checkpoint(tmp_path / "m.safetensors", make_nano_model(seed=1))  # replacing is allowed
    assert _files(tmp_path) == ["m.safetensors"]


def test_save_creates_the_folder(tmp_path, make_nano_model):
    path = save_checkpoint(tmp_path / "runs" / "a" / "m.safetensors", make_nano_model())
    assert read_checkpoint_info(path).task == "restore"


def test_failed_save_leaves_nothing(tmp_path, make_nano_model, monkeypatch):
    def disk_full(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:  # a partial write, then the failure
            handle.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", disk_full)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "m.safetensors", make_nano_model())
    assert _files(tmp_path) == []


def test_failed_save_keeps_the_old_file(tmp_path, make_nano_model, monkeypatch):
    path = save_checkpoint(tmp_path / "m.safetensors", make_nano_model())
    old = path.read_bytes()

    def interrupted(tensors, filename, metadata=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors.torch, "save_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, make_nano_model(seed=1))
    assert _files(tmp_path) == ["m.safetensors"]
    assert path.read_bytes() == old
