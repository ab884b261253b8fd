"""benchmarks/validate.py, the script training recipes are compared with, run as a user runs it."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "validate.py"


def _table(args: list[str]) -> dict[str, list[float]]:
    out = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300,
                         env={"OMP_NUM_THREADS": "1", "PATH": ""}, check=True).stdout
    rows = {}
    for label, cells in re.findall(r"^\| ([^|]+?) \| (.+) \|$", out, flags=re.M):
        if label not in ("setting", "---"):
            rows[label] = [float(c.split(" / ")[0]) for c in cells.split(" | ")]
    return rows


def test_sr_mode_scores_bicubic_and_each_model_on_the_held_out_images(nano_checkpoints, training_photos):
    rows = _table([str(nano_checkpoints["sr4x"]), str(nano_checkpoints["sr4x"]), "--task", "sr4x",
                   "--data", str(training_photos), "--holdout-every", "4"])
    assert set(rows) == {"x4 bicubic", "x4 blind"}
    for values in rows.values():
        # bicubic upsampling of smooth photos scores well; the untrained nano model's initial weights come
        # from the global RNG, so they depend on which tests ran first: about 8-15 dB, finite and positive
        assert len(values) == 3 and 15 < values[0] < 60 and all(math.isfinite(v) and 0 < v < 60 for v in values[1:])
        assert values[1] == values[2]  # the same checkpoint twice scores the same


def test_restore_mode_reports_clean_and_noisy_settings(nano_checkpoints, training_photos):
    rows = _table([str(nano_checkpoints["restore"]), "--data", str(training_photos), "--holdout-every", "4",
                   "--crop", "64", "--settings", "clean,noise25"])
    assert rows["clean"][0] == math.inf and math.isfinite(rows["clean"][1])
    assert abs(rows["noise25 (σ=25)"][0] - 20.5) < 1.5  # 8-bit σ=25 noise on the input
