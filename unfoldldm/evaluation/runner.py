"""The evaluation loop: every method on every degraded image, timed and scored, into a report."""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from ..errors import CheckpointError, UnfoldLDMError
from . import baselines as bl
from . import metrics, protocol, report
from .lpips import LPIPS, LPIPSWeightsMissing

TASK_SCALE = {"denoise": 1, "deblur": 1, "sr4x": 4, "jpeg": 1}
CROP_IMAGES = 2  # images shown in crops.png


@dataclass
class EvalReport:
    """What an evaluation wrote, and its tables as Markdown (for the terminal)."""

    files: list[Path]
    markdown_tables: str
    records: list[report.Record] = field(default_factory=list)


def _datasets(folders: list[str], limit: int | None) -> list[tuple[str, list[Path]]]:
    """(table name, sorted image paths) per --data folder; names made unique."""
    found = [(Path(f).expanduser(), protocol.list_images(f, limit)) for f in folders]
    names = [p.resolve().name or str(p) for p, _ in found]
    return [(name if names.count(name) == 1 else str(path), images)
            for name, (path, images) in zip(names, found)]


def _load_models(args: argparse.Namespace) -> list[tuple[str, str, object, int]]:
    """(table label, short label, model, bicubic upscale after it) for --vs models then --model (ours,
    last row). In an SR table a --vs restoration model runs at the low resolution, then bicubic."""
    from ..api import load_model

    scale = TASK_SCALE[args.task]
    kind = "sr4x" if scale == 4 else "restore"
    loaded, paths = [], []
    for spec, ours in [*((m, False) for m in args.vs), (args.model, True)]:
        model = load_model(spec, task=kind, device=args.device, dtype=None if args.dtype == "auto" else args.dtype)
        path = model.checkpoint_info.path
        upscale = scale // model.scale
        if model.scale != scale and (ours or model.scale != 1):
            need = "a restoration model (scale 1)" if scale == 1 else f"a x{scale} super-resolution model"
            raise CheckpointError(f"{path.name} is a '{model.config.task}' model (scale {model.scale}), but "
                                  f"--task {args.task} needs {need}" + ("" if scale == 1 else
                                  " (a restoration model is accepted with --vs: it runs before bicubic)") + ".")
        if path.resolve() in paths:
            raise UnfoldLDMError(f"{path} is named twice (--model / --vs); give each model once.")
        name = path.stem if all(p.stem != path.stem for p in paths) else f"{path.parent.name}/{path.stem}"
        paths.append(path.resolve())
        label = bl.model_label(name, model, ours) + (f" + bicubic x{upscale}" if upscale > 1 else "")
        short = f"{name} (ours)" if ours else name + (" + bicubic" if upscale > 1 else "")
        loaded.append((label, short, model, upscale))
    return loaded


def _baseline_keys(args: argparse.Namespace, notes: list[str]) -> list[str]:
    """--baselines as keys; with "all", those whose packages are missing are skipped with a note."""
    keys = bl.parse_baselines(args.baselines, args.task)
    missing = {k: hint for k in keys if (hint := bl.missing_requirement(k))}
    if missing and args.baselines.strip().lower() != "all":
        key, hint = next(iter(missing.items()))
        raise UnfoldLDMError(f"The {key} baseline cannot run here: {hint}.")
    for hint in dict.fromkeys(missing.values()):
        skipped = ", ".join(k for k, h in missing.items() if h == hint)
        message = f"baselines skipped ({skipped}): {hint}"
        print(f"note: {message}", file=sys.stderr)
        notes.append(message)
    return [k for k in keys if k not in missing]


def _lpips(args: argparse.Namespace, device: torch.device, notes: list[str]) -> LPIPS | None:
    if args.no_lpips:
        return None
    try:
        return LPIPS(device=str(device))
    except LPIPSWeightsMissing as exc:
        if args.lpips:
            raise
        print(f"note: {exc} Skipping the LPIPS column.", file=sys.stderr)
        notes.append("LPIPS skipped: its weights are not converted (`python -m unfoldldm.evaluation.fetch_lpips`).")
        return None


def _warm_up(methods: list[bl.Method], setting: protocol.Setting) -> None:
    """Run every method once on a small flat image, so one-time set-up (imports, first calls, memory
    layout) is not timed as part of the first test image."""
    side = 32
    kernel = protocol.trivial_kernel(setting) if setting.has_kernels else None
    sample = protocol.Sample("warm-up", torch.full((3, side * setting.scale, side * setting.scale), 0.5),
                             torch.full((3, side, side), 0.5), kernel)
    for method in methods:
        method.run(sample)


def _display_degraded(sample: protocol.Sample, scale: int) -> torch.Tensor:
    """The model input at the ground truth's size, for looking at (nearest upsampling for SR)."""
    x = sample.degraded.clamp(0, 1)
    return x.repeat_interleave(scale, -2).repeat_interleave(scale, -1) if scale > 1 else x


def _kernel_scores(rec: report.Record, out: bl.Output, sample: protocol.Sample, trivial: list[torch.Tensor]) -> int:
    """Fill ``rec``'s kernel fields (errors of the estimate and of the two trivial guesses, widths);
    returns the estimate's size."""
    from ..visualize import kernel_error, kernel_std

    size = out.kernel.shape[-1]
    true = protocol.fit_kernel(sample.kernel, size)[None, None]
    rec.kernel_error = kernel_error(out.kernel[None, None], true).item()
    rec.trivial_kernel_error, rec.mean_kernel_error = (
        kernel_error(protocol.fit_kernel(guess, size)[None, None], true).item() for guess in trivial
    )
    rec.kernel_std, rec.true_kernel_std = kernel_std(out.kernel).item(), kernel_std(sample.kernel).item()
    return size


def _kernel_cell(kernel: torch.Tensor, side: int) -> torch.Tensor:
    """A (p, p) kernel as a (3, side, side) grey picture for crops.png, scaled to its peak."""
    from ..visualize import kernel_to_image

    return kernel_to_image(kernel.float()[None, None], side)[0].expand(3, -1, -1)


def _score(method: bl.Method, sample: protocol.Sample, setting: protocol.Setting, dataset: str,
           scorer: LPIPS | None, trivial: list[torch.Tensor] | None) -> tuple[report.Record, torch.Tensor, int, bl.Output]:
    """Run and time ``method`` on ``sample``; returns its record, its uint8-rounded output, the
    size of its kernel estimate (0 when it has none or the setting has no true kernel) and its output."""
    start = time.perf_counter()
    out = method.run(sample)
    seconds = time.perf_counter() - start
    if out.image.shape != sample.clean.shape:
        raise UnfoldLDMError(f"{method.name} returned {tuple(out.image.shape)} for {sample.name}, "
                             f"expected {tuple(sample.clean.shape)}.")
    image = metrics.to_uint8_range(out.image).float() / 255
    rec = report.Record(
        dataset, setting.key, sample.name, method.name,
        metrics.psnr(image, sample.clean, setting.y_channel, setting.crop).item(),
        metrics.ssim(image, sample.clean, setting.y_channel, setting.crop).item(),
        None if scorer is None else scorer(image, sample.clean).item(),
        None if method.is_input else seconds,
    )
    size = 0
    if method.is_model and out.kernel is not None and sample.kernel is not None:
        size = _kernel_scores(rec, out, sample, trivial)
    if method.is_model and out.noise_level is not None and setting.task == "denoise":
        rec.noise_estimate, rec.true_sigma = 255 * out.noise_level, 255 * setting.sigma
    return rec, image, size, out


def evaluate(args: argparse.Namespace, command: str) -> EvalReport:
    """Run the protocol of ``args.task`` on ``args.data`` for every method; write the report into ``args.out``."""
    from tqdm import tqdm

    from ..api import pick_device
    from ..pipeline import RestoreOptions
    from .cli import parse_qualities, parse_sigmas

    notes: list[str] = []
    sigmas = parse_sigmas(args.sigmas) if args.task == "denoise" else ()
    qualities = parse_qualities(args.qualities) if args.task == "jpeg" else ()
    settings = protocol.settings_for(args.task, sigmas, args.noise_format, qualities)
    datasets = _datasets(args.data, args.limit)  # checks the folders before any model is loaded
    bl.parse_baselines(args.baselines, args.task)  # a typo fails before the models load
    scale = TASK_SCALE[args.task]
    device = pick_device(args.device)
    models = _load_models(args)
    keys = _baseline_keys(args, notes)
    scorer = _lpips(args, device, notes)
    options = RestoreOptions(stages=args.stages, tile=args.tile or None, overlap=args.overlap,
                             prior_steps=args.prior_steps, seed=args.seed)

    records: list[report.Record] = []
    tables: list[report.Table] = []
    crop_rows: list[tuple[str, list]] = []
    crop_setting = settings[len(settings) // 2]
    total = sum(len(paths) for _, paths in datasets) * len(settings)
    bar = tqdm(total=total, unit="img", disable=args.quiet, file=sys.stderr)
    kernel_sizes: set[int] = set()
    spot: list[report.Record] = []  # ours on the crops.png images
    for d_index, (dataset, paths) in enumerate(datasets):
        for setting in settings:
            # Told sigma = 0, a non-blind denoiser has nothing to do: the clean setting runs the input and models.
            methods = [bl.baseline(k, setting) for k in keys if k == "input" or setting.key != "sigma0"]
            methods += [bl.model_method(m, label, short, i, options, up)
                        for i, (label, short, m, up) in enumerate(models)]
            if args.ensemble > 1:  # ours again with the self-ensemble, just before ours (the last row)
                label, short, m, up = models[-1]
                n = args.ensemble
                methods.insert(len(methods) - 1, bl.model_method(
                    m, label.replace(" (ours)", "") + f" ×{n} self-ensemble", f"{short.replace(' (ours)', '')} ×{n}",
                    len(models), replace(options, ensemble=n), up))
            if not tables:
                _warm_up(methods, setting)
            tables.append(report.Table(dataset, setting.title, setting.key, [m.name for m in methods], models[-1][0]))
            trivial = [protocol.trivial_kernel(setting), protocol.mean_training_kernel(args.task)] if setting.has_kernels else None
            for i, sample in enumerate(protocol.samples(setting, paths)):
                bar.set_description(f"{dataset} {setting.key} {sample.name}")
                want_crop = d_index == 0 and setting == crop_setting and i < CROP_IMAGES
                top, left, h, w = report.crop_box(*sample.clean.shape[-2:])
                cells = [("degraded", _display_degraded(sample, scale)[:, top:top + h, left:left + w])]
                for method in methods:
                    rec, image, size, out = _score(method, sample, setting, dataset, scorer, trivial)
                    records.append(rec)
                    if want_crop and method is methods[-1]:
                        spot.append(rec)
                    if size:
                        kernel_sizes.add(size)
                    if want_crop and method.key != "input":
                        cells.append((method.short or method.name, image[:, top:top + h, left:left + w]))
                if want_crop:
                    cells.append(("ground truth", sample.clean[:, top:top + h, left:left + w]))
                    if size:  # the evaluated model's kernel estimate beside the true kernel
                        cells += [("kernel: ours", _kernel_cell(out.kernel, min(h, w))),
                                  ("kernel: true", _kernel_cell(sample.kernel, min(h, w)))]
                    crop_rows.append((f"{dataset} / {setting.title} / {sample.name}", cells))
                bar.update(1)
    bar.close()

    if kernel_sizes:
        sizes = " / ".join(f"{s}x{s}" for s in sorted(kernel_sizes))
        trivial_what = ("the mean of the 8 protocol kernels" if args.task == "deblur"
                        else "a centred Gaussian of the protocol's mean width, std 1.5 px")
        for t in tables:
            t.trivial_label = "mean protocol kernel" if args.task == "deblur" else "centred Gaussian"
            t.kernel_note = (f"the 21x21 true kernel is centre-cropped/padded to the model's {sizes}; "
                             f"trivial estimates: {trivial_what}, and the mean first-order kernel of the "
                             f"'{protocol.training_preset(args.task)}' training degradations; width = RMS "
                             "distance from the centre")
    notes += _protocol_notes(args.task, device)
    header = _header(args, datasets, device, scorer is not None, crop_setting)
    text = report.markdown(command, header, tables, records, scorer is not None, notes, spot,
                           noise_summary=report.noise_summary(records, models[-1][0]))
    files = {"report.md": text.encode(), "results.csv": report.csv_text(records).encode()}
    if crop_rows:
        files["crops.png"] = report.crops_png(crop_rows)
    written = report.write_files(args.out, files)
    if getattr(args, "results", None):
        written.append(report.update_results(args.results, args.out, text))
    tables_md = "\n".join(report.table_markdown(t, records, scorer is not None) for t in tables)
    return EvalReport(written, tables_md, records)


def _header(args, datasets, device, lpips_on: bool, crop_setting: protocol.Setting) -> list[str]:
    from .. import __version__ as version

    try:
        import skimage

        sk = skimage.__version__
    except ImportError:
        sk = "not installed"
    counts = ", ".join(f"{name} ({len(paths)} image{'s' if len(paths) != 1 else ''})" for name, paths in datasets)
    return [
        f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        f"unfoldldm {version}, torch {torch.__version__}, scikit-image {sk}, Python {platform.python_version()}",
        f"device: {device}{' (' + torch.cuda.get_device_name(device) + ')' if device.type == 'cuda' else ''}, "
        f"tile {args.tile or 'whole image'}",
        f"data: {counts}" + (f" — first {args.limit} per folder (--limit)" if args.limit else ""),
        f"LPIPS: {'AlexNet v0.1 (offline weights)' if lpips_on else 'off'}",
        f"crops.png: the first {CROP_IMAGES} images of {datasets[0][0]}, {crop_setting.title}, "
        f"centre crops of at most {report.CROP}x{report.CROP} shown x{report.ZOOM}"
        + ("; then the MGDA kernel estimate of the evaluated model and the true kernel (grey, each scaled "
           "to its peak)" if crop_setting.has_kernels else ""),
    ]


def _protocol_notes(task: str, device: torch.device) -> list[str]:
    notes = {
        "denoise": "Denoising: noise = σ/255 · randn from one torch.Generator().manual_seed(0) per σ, drawn per image "
                   "in sorted file-name order; the noisy input is not clipped, except in the 8-bit settings (the same "
                   "noisy image clipped to [0, 1] and rounded to 8 bits, as a photo is stored); PSNR/SSIM on RGB of "
                   "the uint8-rounded output, no border crop. Told the degradation (non-blind): FFDNet, CBM3D, NLM "
                   "and wavelet get the true σ; UnfoldLDM models are blind (one model for every σ and degradation).",
        "deblur": "Deblurring: 8 fixed 21x21 kernels (seed 0; Gaussian and motion alternating), image i gets kernel "
                  "i mod 8, reflect padding, + Gaussian noise σ = 0.01 (seed 0), clipped; PSNR/SSIM on RGB. Wiener and "
                  "Richardson-Lucy are given the true kernel: they are true-kernel upper bounds, not blind methods.",
        "jpeg": "JPEG: the clean image saved by Pillow at the given quality (baseline JPEG, IJG tables, 4:2:0) and "
                "decoded; the baseline is the JPEG itself; PSNR/SSIM on RGB.",
        "sr4x": "Super-resolution x4: HR cropped to a multiple of 4; bicubic = torch antialiased bicubic "
                "downsampling, rounded to 8 bits; the bicubic baseline upsamples with the a = -0.5 cubic as MATLAB; "
                "blind = isotropic Gaussian kernel σ ~ U(0.6, 2.4) (seed 0), blur, keep every 4th "
                "pixel, + noise 5/255; PSNR/SSIM on the BT.601 Y channel (MATLAB rgb2ycbcr coefficients) with a "
                "4-pixel border crop.",
    }
    return [
        notes[task],
        "SSIM: Gaussian window 11x11, σ 1.5, K1 0.01, K2 0.03 (Wang et al. 2004), mean over channels. LPIPS: "
        "AlexNet v0.1 on the RGB of the uint8-rounded images, whole image.",
        f"s / image: wall time of the method alone on {device} (synthesis and metrics excluded, models warmed up "
        "first); — for the degraded input itself.",
    ]
