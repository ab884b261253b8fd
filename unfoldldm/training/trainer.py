"""The two-phase trainer: phase 1 trains everything with the teacher prior, phase 2 distils it
into the diffusion prior (KD + invariance) with the teacher frozen. Single process, or one
process per GPU/CPU under ``torchrun`` (DistributedDataParallel)."""

from __future__ import annotations

import datetime
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor

from .. import __version__
from ..archs import UnfoldLDM, build_model, first_stages
from ..checkpoint import load_checkpoint, read_checkpoint_info, save_checkpoint
from ..degradations import degrade
from ..errors import UnfoldLDMError
from ..losses import LossWeights, invariance_loss, kd_loss, restoration_loss
from .config import TrainConfig, config_from_dict, data_root
from .cuda_graph import GraphedStep
from .data import CropBank
from .state import load_run_state, save_run_state

PHASE2_LR_FACTOR = 0.5  # phase 2 fine-tunes: a lower peak learning rate


@dataclass
class RunOptions:
    """Command-line side of a run (stored in ``run.json`` so ``--resume`` needs nothing else)."""

    out: str
    steps: int | None = None
    budget_minutes: float | None = None
    phases: str = "both"  # both | 1 | 2
    data: list[str] = field(default_factory=list)
    batch: int | None = None
    crop: int | None = None
    init: str | None = None  # weights to start from (phase 2 alone needs a phase-1 model)
    compile: bool = False
    cuda_graphs: bool = False  # replay each step from a CUDA graph (GPU, single process)
    precision: str = "auto"  # auto (bf16 on GPUs and on CPUs with native bf16) | bf16 | fp32
    export_every_minutes: float | None = None  # also save state and export the EMA model this often
    device: str = "auto"
    stop_at: int | None = None  # stop (and save) at this step, as if interrupted
    progress: bool = True

    def validate(self, resume: bool = False) -> "RunOptions":
        """Raise :class:`UnfoldLDMError` naming the first unusable option (before anything is made).
        On ``resume`` the --init file may have moved since (its weights are in the run state)."""
        from .config import check_crop

        def number(name: str, value, whole: bool, positive_only: bool = True) -> None:
            if value is None:
                return
            flag = "--" + name.replace("_", "-")
            ok_type = (isinstance(value, int) if whole else isinstance(value, (int, float))) and not isinstance(value, bool)
            if not ok_type or not math.isfinite(value):
                raise UnfoldLDMError(f"{flag} must be a {'whole number' if whole else 'finite number'}, got {value!r}.")
            if value <= 0 if positive_only else value < 0:
                raise UnfoldLDMError(f"{flag} must be more than 0, got {value!r}.")

        if not isinstance(self.out, str) or not self.out.strip():
            raise UnfoldLDMError("--out must name the run folder.")
        number("steps", self.steps, True)
        number("budget_minutes", self.budget_minutes, False)
        number("batch", self.batch, True)
        number("export_every_minutes", self.export_every_minutes, False)
        number("stop_at", self.stop_at, True, positive_only=False)
        if self.steps is not None and self.budget_minutes is not None:
            raise UnfoldLDMError("Give --steps or --budget-minutes, not both.")
        if self.crop is not None:
            check_crop(self.crop)
        if self.phases not in ("both", "1", "2"):
            raise UnfoldLDMError(f"--phases must be both, 1 or 2, got {self.phases!r}.")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise UnfoldLDMError(f"--precision must be auto, bf16 or fp32, got {self.precision!r}.")
        if not isinstance(self.data, list) or not all(isinstance(d, str) for d in self.data):
            raise UnfoldLDMError(f"--data must be a list of folders, got {self.data!r}.")
        for folder in self.data:
            if not Path(folder).is_dir():
                raise UnfoldLDMError(f"--data {folder}: training data folder not found.")
        if self.init is not None and not resume and not Path(self.init).is_file():
            raise UnfoldLDMError(f"--init {self.init}: no such checkpoint file.")
        return self


class Distributed:
    """Rank information from ``torchrun``'s environment; a no-op in a single process."""

    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def setup(self, device: torch.device) -> None:
        if self.enabled and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    def agree(self, value: float) -> float:
        """The largest ``value`` over all ranks (so every rank switches phase and stops together)."""
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t)

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            # Leave together: a rank that tears gloo down while rank 0 still exports can abort
            # ("terminate called without an active exception"; seen about 1 run in 8 on 2 CPUs).
            dist.barrier()
            dist.destroy_process_group()


def _device(name: str, ranks: Distributed) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise UnfoldLDMError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N.") from None
    if device.type not in ("cpu", "cuda"):
        raise UnfoldLDMError(f"--device {name!r}: training runs on cpu or cuda.")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UnfoldLDMError("--device cuda was asked for, but this PyTorch build sees no CUDA GPU.")
        device = torch.device("cuda", ranks.local_rank if ranks.enabled else (device.index or 0))
        torch.cuda.set_device(device)
    return device


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), so bf16 autocast speeds it up;
    elsewhere oneDNN emulates bf16 and it is slower than fp32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def use_bf16(precision: str, device: torch.device) -> bool:
    """Resolve ``--precision`` for ``device``: auto means bf16 autocast on GPUs and bf16-capable CPUs."""
    if precision not in ("auto", "bf16", "fp32"):
        raise UnfoldLDMError(f"--precision must be auto, bf16 or fp32, got {precision!r}.")
    if precision == "fp32":
        return False
    if device.type == "cuda":
        return True
    if device.type == "cpu" and cpu_has_bf16():
        return True
    if precision == "bf16":
        raise UnfoldLDMError(f"--precision bf16 was asked for, but this {device.type} has no native bf16; use fp32.")
    return False


def learning_rate(progress: float, peak: float, floor: float, warmup: float) -> float:
    """Linear warm-up over the first ``warmup`` of the phase, then cosine decay to ``floor``."""
    if progress < warmup:
        return peak * max(progress, 1e-3) / warmup
    t = min(1.0, (progress - warmup) / max(1e-8, 1 - warmup))
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * t))


def freeze_parameters(model: torch.nn.Module, prefixes: list[str]) -> int:
    """Stop training the parameters whose names start with one of ``prefixes`` (module paths such as
    ``gradient_step.estimator``); returns how many tensors were frozen. A prefix that names no
    parameter is an error, so a typo cannot silently train everything."""
    params = dict(model.named_parameters())
    frozen: set[str] = set()
    for prefix in prefixes:
        chosen = [name for name in params if name == prefix or name.startswith(prefix + ".")]
        if not chosen:
            tops = sorted({name.split(".")[0] for name in params})
            raise UnfoldLDMError(f"train.freeze: no parameters under '{prefix}'. Module paths start with one of "
                                 f"{tops}, e.g. 'gradient_step.estimator'.")
        for name in chosen:
            params[name].requires_grad_(False)
        frozen.update(chosen)
    return len(frozen)


def phase1_steps(provenance: dict | None) -> int:
    """Phase-1 steps in a checkpoint's training history (its own and those of its --init weights)."""
    if not provenance:
        return 0
    return int(provenance.get("phase1_steps") or 0) + phase1_steps(provenance.get("init_provenance"))


class DeferredInterrupt:
    """Turns the first Ctrl-C (SIGINT) into a request the training loop acts on between steps, so
    that the saved state is exact; a second Ctrl-C interrupts at once. Main thread only (elsewhere
    signals cannot be handled, and nothing is changed)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\ninterrupt: stopping after this step and saving the state (press Ctrl-C again to stop at once)",
              file=sys.stderr, flush=True)

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def uninstall(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


def remove_stale_temp_files(run_dir: Path) -> list[Path]:
    """Temp files an earlier process left in the run folder when it was killed while saving
    (``.state.safetensors.*.tmp``, ``.model.safetensors.*.tmp``): never valid, removed."""
    removed = []
    if run_dir.is_dir():
        for path in run_dir.glob(".*.safetensors.*.tmp"):
            try:
                path.unlink()
                removed.append(path)
            except OSError:
                pass
    return removed


class Trainer:
    """Owns the model, EMA, optimizer, data and RNGs of one run; :meth:`run` trains and exports."""

    def __init__(self, cfg: TrainConfig, opts: RunOptions, resume: bool = False) -> None:
        self.cfg, self.opts = cfg, opts
        self.ranks = Distributed()
        self.device = _device(opts.device, self.ranks)
        self.ranks.setup(self.device)
        self.out = Path(opts.out)
        self.batch = opts.batch or cfg.data.batch
        self.crop = opts.crop or cfg.data.crop
        if opts.steps is None and opts.budget_minutes is None:
            opts.steps = cfg.train.steps
        has_prior = cfg.model.prior != "none"
        self.phase1_share = {"both": cfg.train.phase1_fraction if has_prior else 1.0, "1": 1.0, "2": 0.0}[opts.phases]
        if opts.phases == "2" and not has_prior:
            raise UnfoldLDMError("Phase 2 trains the diffusion prior, but this config has 'prior: none'.")

        seed = cfg.train.seed + 1000 * self.ranks.rank
        torch.manual_seed(seed)
        self.model = self._build_model(resume)
        self.model.to(self.device).to(memory_format=torch.channels_last).train()
        self.ema = torch.optim.swa_utils.AveragedModel(
            self.model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.train.ema_decay), use_buffers=True
        )
        self.ema.update_parameters(self.model)  # the first update copies; later ones are _update_ema's lerp
        self.graphs = opts.cuda_graphs and self.device.type == "cuda" and not self.ranks.enabled
        self.bf16 = use_bf16(opts.precision, self.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # shapes are static
            torch.backends.cuda.matmul.allow_tf32 = True
        # A CUDA graph bakes in every number it was recorded with, so its learning rate is a tensor.
        self.lr_tensor = torch.tensor(cfg.train.lr, device=self.device) if self.graphs else None
        self.ema_weight_tensor = torch.tensor(0.0, device=self.device) if self.graphs else None
        frozen = freeze_parameters(self.model, cfg.train.freeze)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(trainable, lr=self.lr_tensor if self.graphs else cfg.train.lr,
                                           weight_decay=cfg.train.weight_decay, capturable=self.graphs, foreach=True)
        self.graphed = GraphedStep(self._update)
        self.net: torch.nn.Module = self.model
        if self.ranks.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids, find_unused_parameters=True)
        if opts.compile:
            self.net = torch.compile(self.net)
        data = opts.data or [str((data_root() / f).resolve()) if not Path(f).is_absolute() else f for f in cfg.data.folders]
        self.data_folders = data
        self.bank = CropBank(data, self.crop, self.device, seed=seed, holdout_every=cfg.data.holdout_every)
        self.generator = torch.Generator(device=self.device).manual_seed(seed + 1)
        self.step, self.elapsed, self.phase, self.phase_start = 0, 0.0, (2 if opts.phases == "2" else 1), 0
        # Seconds spent in the first step of each phase of each process: compiling, recording the
        # CUDA graph, tuning cuDNN. The learning-rate schedule of a time budget runs on the rest.
        self.setup_s, self.fresh = 0.0, True
        self.phase_steps = {1: 0, 2: 0}
        self.saved_step: int | None = None
        if resume:
            self._load_state()
        if frozen:
            self._note(f"frozen: {frozen} parameter tensors under {', '.join(cfg.train.freeze)}")

    # ----- set-up ---------------------------------------------------------------------------
    def _build_model(self, resume: bool) -> UnfoldLDM:
        self.init_provenance: dict | None = None
        if self.opts.init and resume and Path(self.opts.init).exists():
            self.init_provenance = read_checkpoint_info(self.opts.init).provenance
        if self.opts.init and not resume:
            info = read_checkpoint_info(self.opts.init)
            fewer_stages = (info.config.stages > self.cfg.model.stages
                            and info.config.replace(stages=self.cfg.model.stages) == self.cfg.model)
            if info.config != self.cfg.model and not fewer_stages:
                raise UnfoldLDMError(
                    f"--init {info.path.name} has config '{info.config.name}'/{info.config.task}, which differs "
                    f"from the training config's model '{self.cfg.model.name}'/{self.cfg.model.task} (only the "
                    "number of stages may be smaller in the training config)."
                )
            if self.opts.phases == "2" and not phase1_steps(info.provenance):
                raise UnfoldLDMError(
                    f"--init {info.path.name} has no phase-1 training in its provenance, so it has no trained "
                    "teacher prior to distil. Run phase 1 first (--phases 1 or both)."
                )
            self.init_provenance = info.provenance
            if fewer_stages:  # continue its first stages as a shorter network
                self._note(f"--init {info.path.name}: its first {self.cfg.model.stages} of {info.config.stages} stages")
                return first_stages(load_checkpoint(info.path), self.cfg.model.stages).train()
            return load_checkpoint(info.path).train()
        if self.opts.phases == "2" and not resume:
            raise UnfoldLDMError(
                "Phase 2 distils the phase-1 teacher prior into the diffusion prior, so it needs a phase-1 "
                "model: pass --init RUN_DIR/model.safetensors from a phase-1 run, or use --phases both."
            )
        return build_model(self.cfg.model)

    def _configure_optimizer(self) -> None:
        """After loading a state saved in the other mode: CUDA-graph steps need a tensor learning rate
        and step counters on the GPU; eager steps take plain numbers."""
        for group in self.optimizer.param_groups:
            group["capturable"] = self.graphs
            if self.graphs:
                self.lr_tensor.fill_(float(group["lr"]))
                group["lr"] = self.lr_tensor
        for state in self.optimizer.state.values():
            if "step" in state:
                state["step"] = state["step"].to(self.device if self.graphs else "cpu", torch.float32)

    def _rng_state(self) -> dict[str, Tensor]:
        return {"torch": torch.get_rng_state(), "data": self.bank.generator.get_state(), "degrade": self.generator.get_state()}

    def _meta(self) -> dict:
        return {"step": self.step, "elapsed": self.elapsed, "setup_s": self.setup_s, "phase": self.phase,
                "phase_start": self.phase_start,
                "phase_steps": self.phase_steps, "package_version": __version__, "device_type": self.device.type}

    def save_state(self) -> None:
        self._stop_if_diverged()  # never overwrite the last good state with broken weights
        if not self.ranks.main:
            return
        self.saved_step = self.step
        self.out.mkdir(parents=True, exist_ok=True)
        parts = {"model": self.model.state_dict(), "ema": self.ema.state_dict(), "rng": self._rng_state()}
        save_run_state(self.out / "state.safetensors", parts, self.optimizer.state_dict(), self._meta())

    def _stop_if_diverged(self, loss: float = 0.0) -> None:
        """Raise if the last loss or any weight is NaN or infinite (every rank sees the same weights).
        A run that diverged would otherwise train on for its whole budget and save NaN weights over
        the last good state and export."""
        broken = not math.isfinite(loss)
        if not broken:
            broken = not bool(torch.stack([p.detach().isfinite().all() for p in self.model.parameters()]).all())
        if self.ranks.agree(float(broken)) == 0:
            return
        kept = (f"the state saved at step {self.saved_step} and any exported model.safetensors in {self.out} "
                "are kept" if self.saved_step is not None else "nothing was saved before it")
        message = (f"Training diverged at step {self.step}: the loss or the weights became NaN or infinite "
                   f"(learning rate {self.cfg.train.lr:g}, batch {self.batch}); {kept}. Start again with a lower "
                   "train.lr or a larger batch (--init the last exported model.safetensors to keep its training).")
        self._note(message)
        raise UnfoldLDMError(message)

    def _load_state(self) -> None:
        parts, optim, meta = load_run_state(self.out / "state.safetensors")
        self.model.load_state_dict(parts["model"])
        self.ema.load_state_dict({k: v.to(self.device) for k, v in parts["ema"].items()})
        self.optimizer.load_state_dict(optim)
        self._configure_optimizer()
        torch.set_rng_state(parts["rng"]["torch"])
        self.bank.generator.set_state(parts["rng"]["data"])
        self.step, self.elapsed, self.setup_s = meta["step"], meta["elapsed"], meta.get("setup_s", 0.0)
        if meta.get("device_type", self.device.type) == self.device.type:
            self.generator.set_state(parts["rng"]["degrade"])
        else:
            # CPU and CUDA generators keep incompatible states: continue with a fresh, still seeded stream.
            self.generator.manual_seed(self.cfg.train.seed + 1 + 7919 * self.step)
            self._note(f"resumed on {self.device.type} (was {meta['device_type']}): degradation RNG re-seeded")
        self.phase, self.phase_start = meta["phase"], meta["phase_start"]
        self.phase_steps = {int(k): v for k, v in meta["phase_steps"].items()}
        self.saved_step = self.step

    # ----- schedule -------------------------------------------------------------------------
    def _progress(self) -> float:
        """Fraction of the whole run done: steps, or training time against the budget. Set-up time
        (compiling, graph capture) is left out of both sides, so it shortens the schedule instead of
        eating its warm-up; the run still ends when ``elapsed`` reaches the budget."""
        if self.opts.budget_minutes is not None:
            left = 60 * self.opts.budget_minutes - self.setup_s
            done = (self.elapsed - self.setup_s) / left if left > 0 else 1.0
            return self.ranks.agree(done)
        return self.step / self.opts.steps

    def _phase_progress(self, overall: float) -> float:
        lo, hi = (0.0, self.phase1_share) if self.phase == 1 else (self.phase1_share, 1.0)
        return 0.0 if hi <= lo else (overall - lo) / (hi - lo)

    # ----- one step -------------------------------------------------------------------------
    def _batch(self) -> list[Tensor]:
        """The random part of a step: clean crops, their degradation, and the true kernels with the
        mask of samples whose operator the model can represent (for the kernel loss); phase 2 adds
        a second degradation of the same crops (kernels and mask then cover both) and the prior's
        starting noise (stages, 2B, N, C_z)."""
        channels_last = torch.channels_last
        clean = self.bank.sample(self.batch).contiguous(memory_format=channels_last)
        down_modes = self.cfg.degradation.down_modes
        first = degrade(clean, self.cfg.degradation, self.generator)
        y = first.y.contiguous(memory_format=channels_last)
        if self.phase == 1:
            return [clean, y, first.kernel, first.operator_known(down_modes), first.noise_std, first.noise_known()]
        second = degrade(clean, self.cfg.degradation, self.generator)
        y2 = second.y.contiguous(memory_format=channels_last)
        kernels = torch.cat([first.kernel, second.kernel])
        known = torch.cat([first.operator_known(down_modes), second.operator_known(down_modes)])
        noise_std = torch.cat([first.noise_std, second.noise_std])
        noise_known = torch.cat([first.noise_known(), second.noise_known()])
        cfg = self.cfg.model
        noise = torch.randn(cfg.stages, clean.shape[0], cfg.latent_tokens, cfg.latent_dim, device=self.device,
                            generator=self.generator)
        # both degradations start from the same noise
        return [clean, y, kernels, known, noise_std, noise_known, y2, noise.repeat(1, 2, 1, 1)]

    def _update(self, clean: Tensor, y: Tensor, kernels: Tensor, known: Tensor, noise_std: Tensor,
                noise_known: Tensor, y2: Tensor | None = None, noise: Tensor | None = None) -> dict[str, Tensor]:
        """Losses, backward, clipping, AdamW and EMA on one batch. It never waits for the GPU, so it
        can also be recorded in a CUDA graph (:class:`GraphedStep`)."""
        w: LossWeights = self.cfg.losses
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16,
                                  cache_enabled=not self.graphs)
        with autocast:
            if y2 is None:
                out = self.net(y, clean, prior_mode="teacher")
                terms = restoration_loss(out, clean, y, w, kernels, known, noise_std, noise_known)
            else:
                pair_y, pair_x = torch.cat([y, y2]), torch.cat([clean, clean])
                out = self.net(pair_y, pair_x, prior_mode="distill", noise=list(noise.unbind(0)))
                terms = restoration_loss(out, pair_x, pair_y, w, kernels, known, noise_std, noise_known)
                halves = [z.chunk(2) for z in out.latents]
                terms["kd"] = kd_loss(out.latents, out.teacher_latents)
                terms["invariance"] = invariance_loss([a for a, _ in halves], [b for _, b in halves])
                terms["total"] = terms["total"] + w.kd * terms["kd"] + w.invariance * terms["invariance"]
        self.optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.grad_clip, foreach=True)
        self.optimizer.step()
        self._update_ema()
        return {k: v.detach() for k, v in terms.items()}

    def _ema_weight(self) -> float:
        """The EMA's step towards the model: ``1 - min(decay, (1 + t) / (10 + t))``, t counted from the
        start of the phase. Phase 2 trains the student prior from scratch, often for a few hundred
        steps only: a fixed 0.999 would leave most of the exported student at its initial weights."""
        t = self.step - self.phase_start
        return 1.0 - min(self.cfg.train.ema_decay, (1 + t) / (10 + t))

    @torch.no_grad()
    def _update_ema(self) -> None:
        """``ema += w * (model - ema)``, without ``AveragedModel``'s ``n_averaged == 0`` test, which would
        wait for the GPU (the first update, a copy, is made in ``__init__``). In a CUDA graph ``w`` is
        a tensor refilled every step, like the learning rate."""
        weight = self.ema_weight_tensor if self.graphs else self._ema_weight()
        pairs = list(zip(self.ema.module.state_dict().values(), self.model.state_dict().values(), strict=True))
        floats = [(e, m) for e, m in pairs if e.is_floating_point()]
        ema = [e for e, _ in floats]
        step = torch._foreach_sub([m for _, m in floats], ema)
        torch._foreach_mul_(step, weight)
        torch._foreach_add_(ema, step)
        for e, m in pairs:
            if not e.is_floating_point():
                e.copy_(m)

    def train_step(self, lr: float) -> dict[str, Tensor]:
        """One optimisation step at learning rate ``lr``; returns the loss terms (still on the device)."""
        batch = self._batch()
        if not self.graphs:
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            return self._update(*batch)
        if self.graphed.graph is None:
            try:
                # The warm-up calls of the capture see this batch several times (see _freeze_for_warmup).
                self.graphed.capture(batch, before_warmup=self._freeze_for_warmup)
            except RuntimeError as exc:  # a step that cannot be recorded still trains, eagerly
                self._note(f"CUDA graph capture failed ({str(exc).splitlines()[0][:200]}); continuing without graphs")
                self.graphs, self.graphed.graph = False, None
                self._configure_optimizer()
                return self.train_step(lr)
        self.lr_tensor.fill_(lr)
        self.ema_weight_tensor.fill_(self._ema_weight())
        return self.graphed(*batch)

    def _freeze_for_warmup(self) -> None:
        """Learning rate and EMA step 0: the capture's warm-up calls then leave weights and EMA alone."""
        self.lr_tensor.fill_(0.0)
        self.ema_weight_tensor.fill_(0.0)

    def _note(self, text: str) -> None:
        """A ``#`` line in the run log (main process only)."""
        if self.ranks.main:
            self.out.mkdir(parents=True, exist_ok=True)
            with (self.out / "log.txt").open("a") as log:
                log.write(f"# {text}\n")

    # ----- the loop -------------------------------------------------------------------------
    def run(self) -> Path | None:
        """Train until the step count or time budget is reached (or ``stop_at``); export EMA weights."""
        from tqdm import tqdm

        tr = self.cfg.train
        total = self.opts.steps
        bar = tqdm(total=total, initial=self.step, disable=not (self.ranks.main and self.opts.progress),
                   unit="step", dynamic_ncols=True)
        log = (self.out / "log.txt").open("a") if self.ranks.main else None
        rate_t, rate_steps = time.perf_counter(), self.step
        exported_at = time.perf_counter()
        interrupt = DeferredInterrupt()
        in_step = False
        try:
            interrupt.install()
            while True:
                overall = self._progress()
                if overall >= 1.0:
                    break
                if self.phase == 1 and overall >= self.phase1_share:
                    self.save_state()  # phase 1's work is kept whatever happens in phase 2
                    self.phase, self.phase_start, self.fresh = 2, self.step, True
                    self.graphed.reset()
                    if log:
                        log.write(f"# step {self.step}: phase 2 (diffusion prior distillation) starts\n")
                if self.opts.stop_at is not None and self.step >= self.opts.stop_at:
                    self.save_state()
                    return None
                # Ctrl-C is acted on here, between steps: the state saved then is exactly the one
                # an uninterrupted run has at this step (weights, optimizer, every RNG, data position).
                if self.ranks.agree(float(interrupt.requested)) > 0:
                    self.save_state()
                    if log:
                        log.write(f"# step {self.step}: interrupted; state saved, resume with --resume\n")
                    raise KeyboardInterrupt
                in_step = True
                peak = tr.lr * (PHASE2_LR_FACTOR if self.phase == 2 else 1.0)
                lr = learning_rate(self._phase_progress(overall), peak, tr.min_lr, tr.warmup_fraction)
                start = time.perf_counter()
                terms = self.train_step(lr)
                if self.device.type == "cuda" and (self.step + 1) % self.cfg.log_every == 0:
                    torch.cuda.synchronize()
                self.step += 1
                self.phase_steps[self.phase] += 1
                bar.update(1)
                if self.step % self.cfg.log_every == 0 or self.step == 1:
                    now = time.perf_counter()
                    speed = (self.step - rate_steps) / max(1e-9, now - rate_t)
                    rate_t, rate_steps = now, self.step
                    values = {k: float(v) for k, v in terms.items()}
                    self._stop_if_diverged(values["total"])
                    bar.set_postfix(phase=self.phase, loss=f"{values['total']:.4f}", lr=f"{lr:.2e}", sps=f"{speed:.1f}")
                    if log:
                        fields = " ".join(f"{k}={v:.5f}" for k, v in values.items())
                        log.write(f"step={self.step} phase={self.phase} lr={lr:.3e} {fields} "
                                  f"steps_per_s={speed:.2f} elapsed_s={self.elapsed:.1f}\n")
                        log.flush()
                if self.step % self.cfg.save_every == 0:
                    self.save_state()
                every = self.opts.export_every_minutes
                if every and time.perf_counter() - exported_at >= 60 * every:
                    self.save_state()
                    self.export()
                    exported_at = time.perf_counter()
                seconds = time.perf_counter() - start  # logging and saving count against the budget
                self.elapsed += seconds
                if self.fresh:
                    self.setup_s, self.fresh = self.setup_s + seconds, False
                in_step = False
        except KeyboardInterrupt:
            if in_step:  # a second Ctrl-C inside a step: that step is half done, so keep the last saved state
                if log:
                    log.write(f"# step {self.step}: interrupted twice during a step; the last saved state is kept\n")
            else:
                self.save_state()
            raise
        finally:
            interrupt.uninstall()
            bar.close()
            if log:
                log.close()
        self.save_state()
        self._check_ranks_agree()
        return self.export()

    def _check_ranks_agree(self) -> None:
        if not self.ranks.enabled:
            return
        checksum = torch.stack([p.detach().double().sum() for p in self.model.parameters()]).sum().cpu().reshape(1)
        gathered = [torch.zeros_like(checksum) for _ in range(self.ranks.world)]
        dist.all_gather(gathered, checksum)
        if self.ranks.main:
            values = [float(g) for g in gathered]
            agree = all(abs(v - values[0]) <= 1e-9 * max(1.0, abs(values[0])) for v in values)
            with (self.out / "log.txt").open("a") as log:
                log.write(f"# ranks={self.ranks.world} parameter checksums={values} agree={agree}\n")
            if not agree:
                raise UnfoldLDMError(f"Ranks disagree after training (parameter checksums {values}).")

    def export(self) -> Path | None:
        """Write the EMA weights as a shipped-format checkpoint ``RUN_DIR/model.safetensors``."""
        if not self.ranks.main:
            return None
        device_name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"
        provenance = {
            "config": self.cfg.name,
            "config_yaml": self.cfg.source,
            "steps": self.step,
            "phase1_steps": self.phase_steps[1],
            "phase2_steps": self.phase_steps[2],
            "wall_time_s": round(self.elapsed, 1),
            "setup_s": round(self.setup_s, 1),  # of which compiling / recording graphs
            "device": device_name,
            "world_size": self.ranks.world,
            "cuda_graphs": self.graphs,
            "compiled": self.opts.compile,
            "bf16": self.bf16,
            "batch": self.batch,
            "crop": self.crop,
            "data": [Path(f).name for f in self.data_folders],
            "num_images": len(self.bank),
            "holdout_every": self.cfg.data.holdout_every,  # every n-th image (sorted) was held out for validation
            "torch": torch.__version__,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
            "init": Path(self.opts.init).name if self.opts.init else None,
            "init_provenance": self.init_provenance,  # the training history of the --init weights
        }
        return save_checkpoint(self.out / "model.safetensors", self.ema.module, provenance=provenance, weights="ema")


def start_run(cfg: TrainConfig, opts: RunOptions) -> Trainer:
    """A new run: write ``config.yaml`` and ``run.json`` into the run folder, then build the trainer."""
    import yaml

    opts.validate()
    out = Path(opts.out)
    if (out / "state.safetensors").exists():
        raise UnfoldLDMError(f"{out} already holds a run; resume it with --resume {out} or pick another --out.")
    if out.exists() and not out.is_dir():
        raise UnfoldLDMError(f"--out {out} is a file; give a folder for the run.")
    if Distributed().main:
        remove_stale_temp_files(out)
    trainer = Trainer(cfg, opts)
    if trainer.ranks.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(cfg.source, sort_keys=False))
        (out / "run.json").write_text(json.dumps({"name": cfg.name, **opts.__dict__}, indent=2))
    return trainer


def resume_run(run_dir: str | Path, device: str | None = None, stop_at: int | None = None, progress: bool = True) -> Trainer:
    """Continue the run in ``run_dir`` exactly where its last saved state left it."""
    import yaml

    run_dir = Path(run_dir)
    if not (run_dir / "run.json").exists():
        raise UnfoldLDMError(f"{run_dir}: not a run folder (no run.json). Start a run with --out first.")
    try:
        saved = json.loads((run_dir / "run.json").read_text())
        name = saved.pop("name")
        raw = yaml.safe_load((run_dir / "config.yaml").read_text())
        opts = RunOptions(**saved)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, yaml.YAMLError) as exc:
        raise UnfoldLDMError(f"{run_dir}: the run folder's run.json or config.yaml is damaged ({exc}); "
                             "start a new run with --out.") from None
    try:
        cfg = config_from_dict(raw, Path(f"{name}.yaml"))
    except (TypeError, ValueError) as exc:
        raise UnfoldLDMError(f"{run_dir}/config.yaml: {exc}") from None
    opts.out, opts.stop_at, opts.progress = str(run_dir), stop_at, progress
    if device is not None:
        opts.device = device
    opts.validate(resume=True)
    if Distributed().main:
        remove_stale_temp_files(run_dir)
    return Trainer(cfg, opts, resume=True)


__all__ = ["RunOptions", "Trainer", "learning_rate", "resume_run", "start_run"]
