"""``python -m unfoldldm blend``: the weighted average of two checkpoints of one architecture."""

from __future__ import annotations

import pytest
import torch

from unfoldldm.checkpoint import load_checkpoint, read_checkpoint_info, save_checkpoint
from unfoldldm.cli import main
from unfoldldm.errors import UnfoldLDMError
from unfoldldm.training.blend import blend_checkpoints


@pytest.fixture()
def pair(tmp_path, make_nano_model):
    base = save_checkpoint(tmp_path / "base.safetensors", make_nano_model("sr4x", seed=1), provenance={"steps": 10})
    tuned = save_checkpoint(tmp_path / "tuned.safetensors", make_nano_model("sr4x", seed=2),
                            provenance={"steps": 5, "init": "base.safetensors", "init_provenance": {"steps": 10}})
    return base, tuned


def test_blend_is_the_weighted_average(tmp_path, pair):
    base, tuned = pair
    a, b = load_checkpoint(base).state_dict(), load_checkpoint(tuned).state_dict()
    for weight in (0.0, 0.3, 1.0):
        out = load_checkpoint(blend_checkpoints(base, tuned, weight, tmp_path / f"w{weight}.safetensors"))
        for name, tensor in out.state_dict().items():
            expected = (1 - weight) * a[name] + weight * b[name] if tensor.is_floating_point() else b[name]
            torch.testing.assert_close(tensor, expected, rtol=0, atol=1e-6, msg=name)


def test_provenance_keeps_the_tuned_history_and_names_the_base(tmp_path, pair):
    base, tuned = pair
    info = read_checkpoint_info(blend_checkpoints(base, tuned, 0.5, tmp_path / "half.safetensors"))
    assert info.provenance["init_provenance"] == {"steps": 10}
    record = info.provenance["blend"]
    assert (record["base"], record["tuned"], record["tuned_weight"]) == ("base.safetensors", "tuned.safetensors", 0.5)
    assert len(record["base_sha256"]) == 64 and record["base_sha256"] != record["tuned_sha256"]


def test_other_architectures_are_refused(tmp_path, pair, make_nano_model):
    base, _ = pair
    other = save_checkpoint(tmp_path / "restore.safetensors", make_nano_model("restore"))
    with pytest.raises(UnfoldLDMError, match="different model configs"):
        blend_checkpoints(base, other, 0.5, tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def test_cli(tmp_path, pair, capsys):
    base, tuned = pair
    out = tmp_path / "cli.safetensors"
    assert main(["blend", str(base), str(tuned), "--weight", "0.25", "--out", str(out)]) == 0
    assert read_checkpoint_info(out).provenance["blend"]["tuned_weight"] == 0.25
    with pytest.raises(SystemExit):
        main(["blend", str(base), str(tuned), "--weight", "1.5", "--out", str(out)])
    assert "--weight: must be from 0 to 1" in capsys.readouterr().err
