"""The bundled default weights: they load by default, carry their provenance, and restore the bundled
sample photos (always) and two evaluation images (when the evaluation data is there) to the PSNR
the documentation states for them (within 0.05 dB), so a broken loader, a changed default or
different weights cannot pass silently."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch

from unfoldldm.api import default_weights_path, load_model
from unfoldldm.checkpoint import read_checkpoint_info
from unfoldldm.evaluation import metrics, protocol
from unfoldldm.imageio import load_image
from unfoldldm.pipeline import RestoreOptions, restore

REPO = Path(__file__).resolve().parents[1]
EVAL = Path(os.environ.get("UNFOLDLDM_DATA") or REPO / "data") / "eval"
SAMPLES = REPO / "samples"
RESULTS = REPO / "benchmarks" / "RESULTS.md"


def stated_psnr(section: str) -> dict[tuple[str, str, str], float]:
    """(dataset, setting, image) -> PSNR from the per-image table of a RESULTS.md section."""
    text = RESULTS.read_text()
    begin, end = f"<!-- unfoldldm eval: {section} -->", f"<!-- /unfoldldm eval: {section} -->"
    assert begin in text and end in text, f"RESULTS.md has no '{section}' section"
    body = text.split(begin, 1)[1].split(end, 1)[0]
    table = body.split("Per image: ours on the crops.png images", 1)[1]
    rows = re.findall(r"^\| (\S+) \| (\S+) \| (\S+) \| ([0-9.]+) \| [0-9.]+ \|$", table, flags=re.M)
    return {(d, s, i): float(p) for d, s, i, p in rows}


@pytest.mark.parametrize("task", ["restore", "sr4x"])
def test_default_weights_are_bundled_with_provenance(task):
    info = read_checkpoint_info(default_weights_path(task))
    assert info.path.stat().st_size < 20 * 2**20
    prov = info.provenance
    assert info.config.task == task
    history = [prov]
    while history[-1].get("init_provenance"):
        history.append(history[-1]["init_provenance"])
    assert sum(p["phase1_steps"] for p in history) > 0 and sum(p["phase2_steps"] for p in history) > 0
    for p in history:
        assert p["device"] and p["wall_time_s"] > 0 and p["data"] == ["bsds400"] and p["config_yaml"]


@pytest.mark.parametrize(("section", "task", "dataset", "setting_key"), [
    ("restore_denoise", "denoise", "CBSD68", "sigma25"),
    ("sr4x", "sr4x", "Set5", "blind"),
])
def test_default_weights_reproduce_results_md(section, task, dataset, setting_key):
    if not (EVAL / dataset).is_dir():
        pytest.skip(f"evaluation data not found at {EVAL / dataset}")
    stated = {k[2]: v for k, v in stated_psnr(section).items() if k[0] == dataset and k[1] == setting_key}
    assert len(stated) == 2, stated
    paths = protocol.list_images(EVAL / dataset)[:2]  # the protocol draws noise in this order
    assert sorted(p.name for p in paths) == sorted(stated)
    setting = next(s for s in protocol.settings_for(task) if s.key == setting_key)
    model = load_model(None, task="sr4x" if task == "sr4x" else "restore", device="cpu")
    for sample in protocol.samples(setting, paths):
        with torch.no_grad():
            out = restore(model, sample.degraded[None], RestoreOptions(tile=512, overlap=32, seed=0)).image[0]
        image = metrics.to_uint8_range(out).float() / 255
        psnr = metrics.psnr(image, sample.clean, setting.y_channel, setting.crop).item()
        assert abs(psnr - stated[sample.name]) <= 0.05, (sample.name, psnr, stated[sample.name])


def test_default_weights_restore_the_samples_as_documented():
    table = (SAMPLES / "README.md").read_text().split("What the bundled default weights make of them", 1)[1]
    stated = {f: float(v) for f, v in re.findall(r"^\| `(\S+)` \| `\S+` \| .*? \| ([0-9.]+) dB \|$", table, flags=re.M)}
    readme = re.search(r"`out/astronaut_noisy.png`: [0-9.]+ dB noisy, ([0-9.]+) dB restored", (REPO / "README.md").read_text())
    assert readme and float(readme.group(1)) == stated["astronaut_noisy.png"]  # the README quotes the same
    clean = load_image(SAMPLES / "astronaut_clean.png").rgb
    for name, task, y_channel, crop in (("astronaut_noisy.png", "restore", False, 0),
                                        ("astronaut_blurry_small.png", "sr4x", True, 4)):
        model = load_model(None, task=task, device="cpu")
        out = restore(model, load_image(SAMPLES / name).rgb[None], RestoreOptions(tile=512)).image[0]
        psnr = metrics.psnr(metrics.to_uint8_range(out).float() / 255, clean, y_channel, crop).item()
        assert abs(psnr - stated[name]) <= 0.05, (name, psnr, stated[name])
