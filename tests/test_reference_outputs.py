"""The model code reproduces pinned outputs of fixed checkpoints (fp32, CPU): speed-ups and
restructurings must not change what users get (max abs difference <= 1e-5)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from reference_cases import CASES, FIXTURES, run_case

from unfoldldm.archs import fold

REFERENCE = load_file(str(FIXTURES / "reference_outputs.safetensors"))


@pytest.mark.parametrize("strips", ["as shipped", "two rows"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_outputs_match_the_pinned_reference(name, strips, monkeypatch):
    if strips == "two rows":  # large maps are computed in strips of rows; the smallest strips change nothing
        monkeypatch.setattr(fold, "WHOLE_BYTES", 0)
        monkeypatch.setattr(fold, "STRIP_BYTES", 1)
        assert len(fold.row_strips(torch.empty(1, 48, 68, 32), 64)) == 24
    out = run_case(name)
    for key, value in out.items():
        ref = REFERENCE[f"{name}.{key}"]
        assert value.shape == ref.shape, key
        diff = (value.float() - ref.float()).abs().max().item()
        assert diff <= 1e-5, f"{name}.{key}: max abs difference {diff:.2e} from the pinned output"
