"""Write tests/fixtures/reference_outputs.safetensors: what fixed checkpoints give on fixed inputs.

    python scripts_dev/make_reference_outputs.py

``tests/test_reference_outputs.py`` checks that the current code reproduces these outputs, so a
speed-up or a restructuring of the model code cannot change what users get. The checkpoints do not
change when new default weights ship: the test fixture ``restore_small`` (a small model trained for
2 minutes) and a seeded random x4 ``nano`` (``tests/model_helpers.make_nano``). The cases are in
``tests/reference_cases.py``. Run it again only when an output change is intended, and say why.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from reference_cases import CASES, run_case  # noqa: E402


def main() -> None:
    tensors = {}
    for name in CASES:
        for key, value in run_case(name).items():
            tensors[f"{name}.{key}"] = value.contiguous()
    out = ROOT / "tests" / "fixtures" / "reference_outputs.safetensors"
    save_file(tensors, str(out), metadata={"torch": torch.__version__})
    print(f"wrote {out} ({len(tensors)} tensors)")


if __name__ == "__main__":
    main()
