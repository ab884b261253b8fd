"""Training: a short nano run learns and exports, resume is exact, torchrun/gloo works, errors are clear."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from unfoldldm.checkpoint import load_checkpoint, read_checkpoint_info
from unfoldldm.errors import UnfoldLDMError
from unfoldldm.training.config import load_train_config
from unfoldldm.training.trainer import RunOptions, learning_rate, resume_run, start_run

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def few_images(training_photos):
    return training_photos


def _options(out, data, **kw):
    base = dict(out=str(out), steps=24, data=[str(data)], batch=2, crop=32, device="cpu", progress=False, precision="fp32")
    base.update(kw)
    return RunOptions(**base)


def _logged(run_dir: Path) -> dict[int, float]:
    losses = {}
    for line in (run_dir / "log.txt").read_text().splitlines():
        m = re.match(r"step=(\d+) .*total=([0-9.]+)", line)
        if m:
            losses[int(m.group(1))] = float(m.group(2))
    return losses


@pytest.fixture
def nano_config(tmp_path):
    """The shipped nano config, logging every step (runs re-read their config file on resume)."""

    def make(steps=24):
        raw = yaml.safe_load((REPO / "unfoldldm" / "configs" / "nano.yaml").read_text())
        raw.update(log_every=1, save_every=1000)
        raw["train"]["steps"] = steps
        path = tmp_path / "nano_test.yaml"
        path.write_text(yaml.safe_dump(raw))
        return load_train_config(path)

    return make


def test_learning_rate_schedule():
    assert learning_rate(0.0, 1.0, 0.0, 0.1) == pytest.approx(0.01)
    assert learning_rate(0.1, 1.0, 0.0, 0.1) == pytest.approx(1.0)
    assert learning_rate(1.0, 1.0, 0.01, 0.1) == pytest.approx(0.01)
    assert learning_rate(0.55, 1.0, 0.0, 0.1) == pytest.approx(0.5)


def test_shipped_configs_load():
    for name, task in (("restore_small", "restore"), ("sr4x_small", "sr4x"), ("nano", "restore")):
        cfg = load_train_config(name)
        assert cfg.model.task == task and cfg.degradation.scale == cfg.model.scale


def test_nano_run_learns_both_phases_and_exports(tmp_path, few_images, nano_config):
    from unfoldldm.degradations import DegradationConfig, degrade
    from unfoldldm.losses import charbonnier

    cfg = nano_config(40)
    cfg.degradation = DegradationConfig.preset("denoise")  # what the held-out batch has
    trainer = start_run(cfg, _options(tmp_path / "run", few_images, steps=40, batch=4))
    gen = torch.Generator().manual_seed(99)
    clean = torch.nn.functional.avg_pool2d(torch.stack([img[:, :64, :64].float() / 255 for img in trainer.bank.images[:4]]), 2)
    y = degrade(clean, DegradationConfig.preset("denoise"), gen).y

    def held_out_loss() -> float:
        with torch.no_grad():
            return charbonnier(trainer.model.eval()(y).images[-1], clean).item()

    before = held_out_loss()
    path = trainer.run()
    after = held_out_loss()
    assert after < 0.9 * before, (before, after)
    info = read_checkpoint_info(path)
    assert info.provenance["phase1_steps"] == 24 and info.provenance["phase2_steps"] == 16
    assert info.provenance["num_images"] == 8 and info.provenance["device"] == "cpu"
    assert "kd=" in (tmp_path / "run" / "log.txt").read_text()
    model = load_checkpoint(path)
    assert model(torch.rand(1, 3, 32, 32)).images[-1].shape == (1, 3, 32, 32)


def test_resume_continues_with_the_same_next_loss(tmp_path, few_images, nano_config):
    start_run(nano_config(), _options(tmp_path / "full", few_images)).run()
    start_run(nano_config(), _options(tmp_path / "split", few_images, stop_at=10)).run()
    resumed = resume_run(tmp_path / "split", progress=False)
    assert resumed.step == 10
    resumed.run()
    full, split = _logged(tmp_path / "full"), _logged(tmp_path / "split")
    for step in (11, 12, 24):  # step 15 crosses into phase 2
        assert split[step] == pytest.approx(full[step], rel=1e-5, abs=1e-7), step


def test_phase2_without_a_teacher_is_refused(tmp_path, few_images, nano_config):
    with pytest.raises(UnfoldLDMError, match="phase-1 model"):
        start_run(nano_config(), _options(tmp_path / "p2", few_images, phases="2"))


def test_bad_data_and_existing_run_are_refused(tmp_path, few_images, nano_config):
    with pytest.raises(UnfoldLDMError, match="not found"):
        start_run(nano_config(), _options(tmp_path / "r", tmp_path / "missing"))
    start_run(nano_config(), _options(tmp_path / "r2", few_images, stop_at=1)).run()
    with pytest.raises(UnfoldLDMError, match="resume"):
        start_run(nano_config(), _options(tmp_path / "r2", few_images))


def test_torchrun_two_gloo_processes(tmp_path, few_images):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
           "-m", "unfoldldm", "train", "--config", str(REPO / "unfoldldm" / "configs" / "nano.yaml"), "--out", str(out),
           "--steps", "16", "--data", str(few_images), "--batch", "2", "--crop", "32", "--device", "cpu", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (out / "log.txt").read_text()
    assert "ranks=2" in log and "agree=True" in log
    assert sorted(p.name for p in out.glob("*.safetensors")) == ["model.safetensors", "state.safetensors"]
    assert read_checkpoint_info(out / "model.safetensors").provenance["world_size"] == 2


def test_torchrun_shards_restore_over_a_folder(tmp_path, make_nano_model):
    from PIL import Image

    from unfoldldm.checkpoint import save_checkpoint

    model_path = save_checkpoint(tmp_path / "m.safetensors", make_nano_model())
    inputs = tmp_path / "in"
    inputs.mkdir()
    gen = torch.Generator().manual_seed(0)
    for i in range(5):
        pixels = (torch.rand(24, 20, 3, generator=gen) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(inputs / f"img{i}.png")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = ["-m", "unfoldldm", "restore", str(inputs), "--model", str(model_path), "--device", "cpu", "--quiet"]
    single = subprocess.run([sys.executable, *common, "-o", str(tmp_path / "one")], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-2000:]
    sharded = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29518",
                              *common, "-o", str(tmp_path / "two")], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=300)
    assert sharded.returncode == 0, sharded.stderr[-2000:]
    assert "process 0 of 2" in sharded.stderr and "process 1 of 2" in sharded.stderr
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "two").iterdir()) and len(names) == 5
    for name in names:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_resume_on_another_device_type_reseeds_the_degradations(tmp_path, few_images, nano_config):
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    run = tmp_path / "moved"
    start_run(nano_config(4), _options(run, few_images, steps=4, stop_at=2)).run()
    state = run / "state.safetensors"
    with safe_open(str(state), framework="pt") as f:  # pretend the run was saved on a GPU
        metadata, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    meta = json.loads(metadata["meta"])
    meta["device_type"] = "cuda"
    tensors["rng/degrade"] = torch.zeros(16, dtype=torch.uint8)  # a CUDA generator state: seed + offset
    save_file(tensors, str(state), metadata={**metadata, "meta": json.dumps(meta)})
    resumed = resume_run(run, progress=False)
    assert resumed.run() is not None and resumed.step == 4
    assert "degradation RNG re-seeded" in (run / "log.txt").read_text()


def test_ema_follows_the_student_prior_trained_in_a_short_phase_2(tmp_path, few_images, nano_config):
    """Phase 2 trains the student prior from its initial weights; the exported EMA must follow it
    (EMA warm-up from the phase start), not stay mostly at the initial weights as a fixed 0.999 would."""
    cfg = nano_config(steps=30)
    trainer = start_run(cfg, _options(tmp_path / "run", few_images, steps=30))
    init = {k: v.clone() for k, v in trainer.model.prior.denoiser.state_dict().items()}
    trainer.run()
    assert trainer.phase_steps[2] >= 5
    model = trainer.model.prior.denoiser.state_dict()
    ema = trainer.ema.module.prior.denoiser.state_dict()
    moved = sum((model[k] - init[k]).norm() ** 2 for k in init) ** 0.5
    lag = sum((model[k] - ema[k]).norm() ** 2 for k in init) ** 0.5
    assert moved > 0
    assert lag < 0.5 * moved, f"EMA lags the student prior: {lag:.4g} vs {moved:.4g} moved since phase 2 began"
    assert trainer._ema_weight() == pytest.approx(1 - min(cfg.train.ema_decay, (1 + trainer.phase_steps[2]) / (10 + trainer.phase_steps[2])))


def test_supervised_kernel_loss_is_logged_and_teaches_the_kernel_estimate(tmp_path, few_images, nano_config):
    """The same short run with and without the kernel loss: only the supervised one learns kernels."""
    from unfoldldm.degradations import DegradationConfig, degrade
    from unfoldldm.losses import kernel_loss

    errors = {}
    for weight in (0.0, 2.0):
        cfg = nano_config(steps=40)
        cfg.degradation = DegradationConfig(blur_prob=1.0, noise_prob=0.5, jpeg_prob=0.0)  # kernels to learn from
        cfg.losses.kernel = weight
        cfg.train.phase1_fraction = 1.0
        trainer = start_run(cfg, _options(tmp_path / f"run{weight}", few_images, steps=40, batch=4))
        images = trainer.bank.images[:6]
        clean = torch.nn.functional.avg_pool2d(torch.stack([img[:, :64, :64].float() / 255 for img in images]), 2)
        held_out = degrade(clean, DegradationConfig(blur_prob=1.0, noise_prob=0.0, jpeg_prob=0.0),
                           torch.Generator().manual_seed(5))

        def kernel_error(model, batch) -> float:
            with torch.no_grad():
                out = model.eval()(batch.y)
            return kernel_loss(out.degradations, batch.kernel, torch.ones(6, dtype=torch.bool)).item()

        errors["before"] = kernel_error(trainer.model, held_out)
        trainer.model.train()
        trainer.run()
        errors[weight] = kernel_error(trainer.model, held_out)
        assert ("kernel=" in (tmp_path / f"run{weight}" / "log.txt").read_text()) == bool(weight)
    assert errors[2.0] < errors["before"] and errors[2.0] < 0.8 * errors[0.0], errors


def test_time_budget_schedule_leaves_set_up_time_out(tmp_path, few_images, nano_config):
    trainer = start_run(nano_config(), _options(tmp_path / "run", few_images, steps=None, budget_minutes=1.0))
    trainer.elapsed, trainer.setup_s = 50.0, 20.0  # e.g. 20 s compiling and recording graphs
    assert trainer._progress() == pytest.approx(30 / 40)
    trainer.elapsed = 60.0
    assert trainer._progress() == pytest.approx(1.0)  # the run still ends at the budget
    trainer.setup_s = 70.0
    assert trainer._progress() == 1.0


def test_init_from_a_model_with_more_stages_continues_its_first_stages(tmp_path, few_images, nano_config):
    """A 3-stage checkpoint can start a 2-stage run (the bundled weights continued as a faster network);
    any other difference of the model config is refused."""
    from model_helpers import perturb

    from unfoldldm.archs import build_model
    from unfoldldm.checkpoint import save_checkpoint

    cfg = nano_config(2)
    three = perturb(build_model(cfg.model.replace(stages=3)), seed=3)
    path = save_checkpoint(tmp_path / "three.safetensors", three, provenance={"steps": 7})
    trainer = start_run(cfg, _options(tmp_path / "cut", few_images, steps=2, init=str(path)))
    assert trainer.model.config.stages == cfg.model.stages == 2
    kept = three.state_dict()["gradient_step.step_size"][:2]
    assert torch.equal(trainer.model.state_dict()["gradient_step.step_size"].cpu(), kept)
    exported = read_checkpoint_info(trainer.run())
    assert exported.provenance["init_provenance"] == {"steps": 7}
    assert "first 2 of 3 stages" in (tmp_path / "cut" / "log.txt").read_text()
    wider = save_checkpoint(tmp_path / "wider.safetensors", build_model(cfg.model.replace(width=24)))
    with pytest.raises(UnfoldLDMError, match="only the number of stages may be smaller"):
        start_run(cfg, _options(tmp_path / "wider", few_images, init=str(wider)))
