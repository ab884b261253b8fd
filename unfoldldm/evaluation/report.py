"""The evaluation report: ``report.md`` (tables), ``results.csv`` (per image) and ``crops.png``.

Every file is written atomically (a temporary file in the same folder, then renamed), so an
interrupted evaluation never leaves a half-written report; other files in the folder are untouched.
"""

from __future__ import annotations

import csv
import io
import math
import os
import uuid
from dataclasses import dataclass, fields
from pathlib import Path

from ..errors import UnfoldLDMError

CROP = 96  # crop side in ground-truth pixels
ZOOM = 2  # nearest-neighbour magnification of the crops

# Published numbers, quoted under the matching tables: whole test sets, other papers' code.
PUBLISHED = {
    ("cbsd68", "sigma15"): "CBM3D 33.52 · CDnCNN-B 33.89 · Restormer 34.39",
    ("cbsd68", "sigma25"): "CBM3D 30.71 · CDnCNN-B 31.23 · Restormer 31.78",
    ("cbsd68", "sigma50"): "CBM3D 27.38 · CDnCNN-B 27.92 · Restormer 28.59",
    ("set5", "bicubic"): "bicubic 28.42 (MATLAB imresize) · EDSR 32.46 · SwinIR 32.92",
}


@dataclass
class Record:
    """One method on one image of one setting (a row of results.csv)."""

    dataset: str
    setting: str
    image: str
    method: str
    psnr: float
    ssim: float
    lpips: float | None = None
    seconds: float | None = None  # None for the degraded input itself
    kernel_error: float | None = None  # MGDA estimate vs the true kernel (models, blurred settings)
    trivial_kernel_error: float | None = None  # the trivial estimate vs the true kernel
    mean_kernel_error: float | None = None  # the mean training kernel vs the true kernel
    kernel_std: float | None = None  # width of the MGDA estimate (px)
    true_kernel_std: float | None = None  # width of the true kernel (px)
    noise_estimate: float | None = None  # mean of the MGDA noise map, x255 (models, denoise settings)
    true_sigma: float | None = None  # the true noise std, x255


@dataclass
class Table:
    """One dataset under one setting: the methods in row order and the records."""

    dataset: str
    title: str  # the setting's title
    setting: str  # the setting's key
    methods: list[str]
    highlight: str = ""  # the evaluated model's row (bold)
    kernel_note: str = ""  # how the kernels were compared and what the trivial estimate is
    trivial_label: str = "trivial estimate"  # a short name of the (first) trivial estimate


def correlation(a: list[float | None], b: list[float | None]) -> float | None:
    """Pearson correlation of paired values (None with fewer than 3 pairs or no spread)."""
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    if len(pairs) < 3:
        return None
    mx, my = sum(x for x, _ in pairs) / len(pairs), sum(y for _, y in pairs) / len(pairs)
    sxy = sum((x - mx) * (y - my) for x, y in pairs)
    sxx, syy = sum((x - mx) ** 2 for x, _ in pairs), sum((y - my) ** 2 for _, y in pairs)
    return None if sxx <= 0 or syy <= 0 else sxy / math.sqrt(sxx * syy)


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def _fmt(value: float | None, digits: int) -> str:
    if value is None:
        return "—"
    if math.isinf(value):
        return "∞"
    return f"{value:.{digits}f}"


def _seconds(value: float | None) -> str:
    return "—" if value is None else (f"{value:.3g}" if value < 100 else f"{value:.0f}")


def table_markdown(table: Table, records: list[Record], lpips_on: bool) -> str:
    """The Markdown section of one table, with the kernel-error line below it when there is one."""
    mine = [r for r in records if r.dataset == table.dataset and r.setting == table.setting]
    n = len({r.image for r in mine})
    lines = [f"### {table.dataset} — {table.title} ({n} image{'s' if n != 1 else ''})", ""]
    lines += ["| method | PSNR (dB) ↑ | SSIM ↑ | LPIPS ↓ | s / image |", "|---|---:|---:|---:|---:|"]
    for method in table.methods:
        rows = [r for r in mine if r.method == method]
        lp = _fmt(_mean([r.lpips for r in rows]), 4) if lpips_on else "n/a"
        shown = f"**{method}**" if method == table.highlight else method
        lines.append(f"| {shown} | {_fmt(_mean([r.psnr for r in rows]), 2)} | {_fmt(_mean([r.ssim for r in rows]), 4)} "
                     f"| {lp} | {_seconds(_mean([r.seconds for r in rows]))} |")
    scored = []
    for method in table.methods:
        rows = [r for r in mine if r.method == method and r.kernel_error is not None]
        if rows:
            error, trivial = _mean([r.kernel_error for r in rows]), _mean([r.trivial_kernel_error for r in rows])
            average = _mean([r.mean_kernel_error for r in rows])
            text = (f"{method.split(' [')[0]} {error:.4f} (trivial estimates: {table.trivial_label} "
                    f"{_fmt(trivial, 4)}, mean training kernel {_fmt(average, 4)})")
            r = correlation([r.kernel_std for r in rows], [r.true_kernel_std for r in rows])
            if r is not None:
                text += f"; correlation of the estimate's width with the true kernel's over the images: r = {r:.3f}"
            scored.append(text)
    if scored:
        lines += ["", "MGDA kernel estimate error (sum of absolute differences between the normalised kernels, "
                      f"mean over images, lower is better; {table.kernel_note}): " + " · ".join(scored) + "."]
    published = PUBLISHED.get((table.dataset.lower(), table.setting))
    if published:
        lines += ["", f"Published PSNR on the whole set (other papers, not run here): {published}."]
    return "\n".join(lines) + "\n"


def noise_summary(records: list[Record], method: str) -> str:
    """How the evaluated model's noise map (mean per image) follows the true σ: mean estimate and
    mean absolute error per dataset and setting, and the per-image correlation over all settings."""
    mine = [r for r in records if r.method == method and r.noise_estimate is not None]
    if not mine:
        return ""
    lines = ["### MGDA noise estimate (the noise map users see): mean over each image, x255", "",
             "| dataset | setting | true σ | mean estimate | mean abs. error |", "|---|---|---:|---:|---:|"]
    seen: list[tuple[str, str]] = []
    for r in mine:
        if (r.dataset, r.setting) not in seen:
            seen.append((r.dataset, r.setting))
    for dataset, setting in seen:
        rows = [r for r in mine if r.dataset == dataset and r.setting == setting]
        error = _mean([abs(r.noise_estimate - r.true_sigma) for r in rows])
        lines.append(f"| {dataset} | {setting} | {rows[0].true_sigma:g} | {_fmt(_mean([r.noise_estimate for r in rows]), 2)} "
                     f"| {_fmt(error, 2)} |")
    r = correlation([r.noise_estimate for r in mine], [r.true_sigma for r in mine])
    lines += ["", f"Correlation of the per-image estimate with the true σ over all {len(mine)} images and settings: "
                  f"r = {_fmt(r, 3)}."]
    return "\n".join(lines) + "\n"


def markdown(command: str, header: list[str], tables: list[Table], records: list[Record], lpips_on: bool,
             notes: list[str], spot: list[Record] | None = None, noise_summary: str = "") -> str:
    """The whole report.md. ``spot``: per-image records of our model on the crops.png images, listed
    with three decimals so a test can check a checkpoint against the report."""
    parts = ["# UnfoldLDM evaluation", "", "```", command, "```", ""]
    parts += [f"- {line}" for line in header] + [""]
    parts += [table_markdown(t, records, lpips_on) for t in tables]
    if noise_summary:
        parts.append(noise_summary)
    if spot:
        parts += ["### Per image: ours on the crops.png images", "", "| dataset | setting | image | PSNR (dB) | SSIM |",
                  "|---|---|---|---:|---:|"]
        parts += [f"| {r.dataset} | {r.setting} | {r.image} | {r.psnr:.3f} | {r.ssim:.4f} |" for r in spot] + [""]
    if notes:
        parts += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(parts)


def csv_text(records: list[Record]) -> str:
    """results.csv: one row per image and method (empty cells where a value does not apply)."""
    buf = io.StringIO()
    names = [f.name for f in fields(Record)]
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(names)
    for r in records:
        row = []
        for name in names:
            v = getattr(r, name)
            row.append("" if v is None else (f"{v:.6g}" if isinstance(v, float) else v))
        writer.writerow(row)
    return buf.getvalue()


def crop_box(height: int, width: int, size: int = CROP) -> tuple[int, int, int, int]:
    """(top, left, h, w) of the centred crop of at most ``size`` x ``size``."""
    h, w = min(size, height), min(size, width)
    return (height - h) // 2, (width - w) // 2, h, w


def _font(size: int = 12):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def _plain(text: str) -> str:
    """Pillow's default font has no Greek or mathematical symbols: spell them out."""
    for symbol, words in (("σ∈", "sigma in "), ("σ=", "sigma="), ("σ", "sigma"), ("∈", "in")):
        text = text.replace(symbol, words)
    return text


def crops_png(rows: list[tuple[str, list[tuple[str, "object"]]]]) -> bytes:
    """A grid: one row per image (its name above it), cells = (label, (3, h, w) crop in [0, 1])."""
    from PIL import Image, ImageDraw

    font, pad, band, title = _font(), 4, 16, 18
    cell_w = max(crop.shape[-1] for _, cells in rows for _, crop in cells) * ZOOM
    cell_h = max(crop.shape[-2] for _, cells in rows for _, crop in cells) * ZOOM
    cols = max(len(cells) for _, cells in rows)
    width = pad + cols * (cell_w + pad)
    height = sum(title + band + cell_h + pad for _ in rows) + pad
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    y = pad
    for image_name, cells in rows:
        draw.text((pad, y + 2), _plain(image_name), fill="black", font=font)
        y += title
        for i, (label, crop) in enumerate(cells):
            x = pad + i * (cell_w + pad)
            text = _plain(label)
            while len(text) > 3 and draw.textlength(text, font=font) > cell_w:
                text = text[:-2] + "…"
            draw.text((x, y + 1), text, fill="black", font=font)
            pixels = (crop.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
            tile = Image.fromarray(pixels, "RGB")
            tile = tile.resize((tile.width * ZOOM, tile.height * ZOOM), Image.NEAREST)
            canvas.paste(tile, (x, y + band))
        y += band + cell_h + pad
    out = io.BytesIO()
    canvas.save(out, format="PNG")
    return out.getvalue()


def write_files(folder: str | Path, files: dict[str, bytes]) -> list[Path]:
    """Write each ``name -> bytes`` into ``folder`` atomically (temp file + rename); returns the paths."""
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UnfoldLDMError(f"{folder}: cannot create the report folder ({exc.strerror or exc}).") from None
    written = []
    for name, data in files.items():
        target = folder / name
        tmp = folder / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            tmp.write_bytes(data)
            os.replace(tmp, target)
        except OSError as exc:
            raise UnfoldLDMError(f"{target}: cannot write the report ({exc.strerror or exc}).") from None
        finally:
            tmp.unlink(missing_ok=True)
        written.append(target)
    return written


def update_results(results: str | Path, report_dir: str | Path, text: str) -> Path:
    """Put ``text`` (a report.md) into the Markdown file ``results`` as the section of ``report_dir``:
    replaced where the file already has it, appended otherwise. Headings move one level down and
    crops.png / results.csv are linked relative to ``results``. Written atomically."""
    results, report_dir = Path(results).expanduser(), Path(report_dir).expanduser()
    key = report_dir.name
    begin, end = f"<!-- unfoldldm eval: {key} -->", f"<!-- /unfoldldm eval: {key} -->"
    rel = Path(os.path.relpath(report_dir.resolve(), results.resolve().parent)).as_posix()
    body = "\n".join("#" + line if line.startswith("#") else line for line in text.strip().splitlines())
    body = body.replace("## UnfoldLDM evaluation", f"## {key}", 1)
    section = "\n".join([begin, body, "", f"Per-image results: [{rel}/results.csv]({rel}/results.csv)", "",
                          f"![crops: {key}]({rel}/crops.png)", end])
    old = results.read_text() if results.exists() else "# UnfoldLDM results\n"
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        new = head + section + rest.split(end, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + section + "\n"
    write_files(results.parent, {results.name: new.encode()})
    return results
