"""The training recipe's pieces: the noise-map loss, the held-out validation split, CPU bf16 and the
periodic export. Training pictures are crops of the bundled sample photo (no dataset needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from unfoldldm.degradations import DegradationConfig, degrade
from unfoldldm.losses import LossWeights, noise_map_loss
from unfoldldm.training.config import load_train_config
from unfoldldm.training.data import CropBank, image_paths, split_holdout
from unfoldldm.training.trainer import RunOptions, cpu_has_bf16, start_run, use_bf16

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def photos(training_photos) -> Path:
    return training_photos


def _nano(tmp_path: Path, **losses) -> object:
    raw = yaml.safe_load((REPO / "unfoldldm" / "configs" / "nano.yaml").read_text())
    raw["losses"].update(losses)
    raw.update(log_every=1, save_every=1000)
    raw["train"]["phase1_fraction"] = 1.0
    path = tmp_path / "nano_recipe.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_train_config(path)


def test_noise_map_loss_is_zero_at_the_truth_and_ignores_unknown_samples():
    target = torch.rand(3, 1, 8, 8) * 0.1
    known = torch.tensor([True, True, False])
    assert noise_map_loss([target, target.clone()], target, known).item() == 0
    wrong = target.clone()
    wrong[2] += 1.0  # only the sample whose noise is not known is wrong
    assert noise_map_loss([wrong], target, known).item() == 0
    wrong[0] += 0.5
    assert noise_map_loss([wrong], target, known).item() == pytest.approx(0.25)  # 0.5 on one of two samples
    assert noise_map_loss([None], target, known).item() == 0  # a gradient step without a noise map


def test_holdout_split_is_every_nth_image_and_the_bank_leaves_it_out(photos):
    paths = image_paths(photos)
    train, held = split_holdout(paths, 4)
    assert held == [paths[0], paths[4]] and train == [p for p in paths if p not in held]
    assert split_holdout(paths, 0) == (paths, [])
    bank = CropBank([photos], 48, torch.device("cpu"), holdout_every=4)
    assert len(bank) == 6


def test_precision_choice():
    cpu = torch.device("cpu")
    assert use_bf16("fp32", cpu) is False
    assert use_bf16("auto", cpu) is cpu_has_bf16()
    if not cpu_has_bf16():
        with pytest.raises(Exception, match="no native bf16"):
            use_bf16("bf16", cpu)


def test_noise_map_supervision_teaches_the_noise_level(tmp_path, photos):
    """The same short run with and without the noise-map loss: only the supervised one learns to read
    the noise level (the map is what users see as the model's diagnosis)."""
    clean = torch.stack([
        torch.from_numpy(__import__("numpy").array(Image.open(p))).permute(2, 0, 1).float()[:, :64, :64] / 255
        for p in image_paths(photos)[:6]
    ])
    gen = torch.Generator().manual_seed(3)
    sigmas = torch.tensor([0.0, 5.0, 10.0, 20.0, 30.0, 45.0]) / 255
    noisy = (clean + sigmas.reshape(-1, 1, 1, 1) * torch.randn(clean.shape, generator=gen)).clamp(0, 1)

    def error(model) -> float:
        with torch.no_grad():
            maps = model.eval()(noisy).noise_maps
        model.train()
        return (maps[-1].mean(dim=(1, 2, 3)) - sigmas).abs().mean().item() * 255

    errors = {}
    for weight in (0.0, 2.0):
        cfg = _nano(tmp_path, noise=weight)
        opts = RunOptions(out=str(tmp_path / f"run{weight}"), steps=40, data=[str(photos)], batch=4, crop=48,
                          device="cpu", progress=False, export_every_minutes=1e-6)
        trainer = start_run(cfg, opts)
        errors["before"] = error(trainer.model)
        trainer.run()
        errors[weight] = error(trainer.ema.module)
        log = (tmp_path / f"run{weight}" / "log.txt").read_text()
        assert ("noise=" in log) == bool(weight)
    assert errors[2.0] < 0.85 * errors["before"] and errors[2.0] < 0.7 * errors[0.0], errors
    # --export-every-minutes (here: every step) leaves the exported weights of the run's last step
    assert (tmp_path / "run2.0" / "model.safetensors").exists()


def test_degraded_batches_carry_the_noise_target_for_the_loss():
    x = torch.full((8, 3, 32, 32), 0.5)
    batch = degrade(x, DegradationConfig.preset("restore"), torch.Generator().manual_seed(1))
    assert batch.noise_std.shape == (8, 1, 32, 32)
    assert torch.equal(batch.noise_known(), ~batch.second_order)
    assert LossWeights().noise == 0.0  # off unless a config sets it


def test_frozen_parameters_stay_as_they_were_and_a_wrong_prefix_is_refused(tmp_path, photos):
    """``train.freeze`` keeps the named modules at their starting weights while the rest trains."""
    cfg = _nano(tmp_path)
    cfg.train.freeze = ["gradient_step.estimator"]
    opts = RunOptions(out=str(tmp_path / "frozen"), steps=3, data=[str(photos)], batch=2, crop=48,
                      device="cpu", progress=False)
    trainer = start_run(cfg, opts)
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    trainer.run()
    after = dict(trainer.model.named_parameters())
    estimator = [n for n in before if n.startswith("gradient_step.estimator.")]
    assert estimator and all(torch.equal(before[n], after[n]) for n in estimator)
    assert any(not torch.equal(before[n], after[n]) for n in before if n not in estimator)
    assert "# frozen: " in (tmp_path / "frozen" / "log.txt").read_text()

    cfg.train.freeze = ["gradient_step.estimatr"]
    with pytest.raises(Exception, match="no parameters under 'gradient_step.estimatr'"):
        start_run(cfg, RunOptions(out=str(tmp_path / "typo"), steps=1, data=[str(photos)], batch=2, crop=48,
                                  device="cpu", progress=False))


def test_freeze_in_a_config_must_be_a_list_of_texts(tmp_path):
    raw = yaml.safe_load((REPO / "unfoldldm" / "configs" / "nano.yaml").read_text())
    raw["train"]["freeze"] = [3]
    path = tmp_path / "bad_freeze.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(Exception, match="train.freeze must be a list of texts"):
        load_train_config(path)
    raw["train"]["freeze"] = ["proximal"]
    path.write_text(yaml.safe_dump(raw))
    assert load_train_config(path).train.freeze == ["proximal"]


def test_a_diverged_run_stops_and_keeps_its_last_good_state_and_export(tmp_path, photos):
    """NaN weights must not train on for the whole budget and then overwrite the last good files."""
    cfg = _nano(tmp_path)
    run = tmp_path / "diverge"
    opts = RunOptions(out=str(run), steps=6, stop_at=2, data=[str(photos)], batch=2, crop=48, device="cpu",
                      progress=False)
    trainer = start_run(cfg, opts)
    trainer.run()  # stops at step 2 with its state saved
    trainer.export()
    good_state, good_model = (run / "state.safetensors").read_bytes(), (run / "model.safetensors").read_bytes()
    with torch.no_grad():
        next(trainer.model.parameters()).fill_(float("nan"))
    trainer.opts.stop_at = None
    with pytest.raises(Exception, match="diverged at step 3.*saved at step 2"):
        trainer.run()
    assert (run / "state.safetensors").read_bytes() == good_state
    assert (run / "model.safetensors").read_bytes() == good_model
    assert "# Training diverged at step 3" in (run / "log.txt").read_text()
