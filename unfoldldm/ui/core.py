"""The gradio-free part of the UI: restoring one Pillow image or a folder, and finding models.

Everything here raises :class:`~unfoldldm.errors.UnfoldLDMError` (with a message meant for
people) for anything a user can get wrong, so that every front end only has to show the message.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
from PIL import Image

from ..errors import CheckpointError, InputImageError, UnfoldLDMError
from ..imageio import Picture, load_image, picture_from_pil, picture_to_pil
from ..limits import ensemble_from_widget
from ..options import DEFAULT_OVERLAP, DEFAULT_TILE, MAX_PIXELS


@dataclass
class UIOptions:
    """What the UI controls set; mirrors :class:`unfoldldm.pipeline.RestoreOptions`."""

    stages: int | None = None  # None or 0: all of the model's stages
    prior_steps: int | None = None  # None or 0: the model's own
    seed: int = 0
    tile: int | None = DEFAULT_TILE  # None or 0: the whole image at once
    overlap: int = DEFAULT_OVERLAP
    prior_strength: float = 1.0
    ensemble: int | str | None = 1  # orientations averaged (1, 2, 4 or 8; a dropdown gives its text)
    max_pixels: int = MAX_PIXELS
    max_upload_bytes: int | None = None  # files larger than this are refused (None: no limit)

    def restore_options(self):
        from ..pipeline import RestoreOptions

        return RestoreOptions(
            stages=_whole(self.stages, "stages") or None,
            tile=_whole(self.tile, "tile size") or None,
            overlap=_whole(self.overlap, "overlap"),
            prior_steps=_whole(self.prior_steps, "prior steps") or None,
            seed=_whole(self.seed, "seed"),
            prior_strength=_number(self.prior_strength, "prior strength"),
            max_pixels=_whole(self.max_pixels, "max pixels"),
            ensemble=ensemble_from_widget(self.ensemble),
        )


def _number(value, name: str) -> float:
    try:
        number = float(value if value is not None else 0)
    except (TypeError, ValueError):
        raise UnfoldLDMError(f"{name} must be a number, got {value!r}.") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise UnfoldLDMError(f"{name} must be a finite number, got {value!r}.")
    return number


def _whole(value, name: str) -> int:
    """A UI number as an int (sliders and number boxes may send floats such as 3.0)."""
    number = _number(value, name)
    if number != int(number):
        raise UnfoldLDMError(f"{name} must be a whole number, got {value!r}.")
    return int(number)


Progress = Callable[[int, int], None]
Pictures = tuple[Image.Image, Image.Image | None, Image.Image | None]


def _restore(model, picture: Picture, options: UIOptions, progress: Progress | None,
             should_stop: Callable[[], bool] | None):
    """:func:`unfoldldm.service.restore_picture` with the UI's options."""
    from ..service import restore_picture as restore

    if not isinstance(options, UIOptions):
        raise UnfoldLDMError(f"Expected UIOptions, got {type(options).__name__}.")
    return restore(model, picture, options.restore_options(), progress, should_stop)


def _as_pil(restored) -> Pictures:
    """(restored, kernel estimate, noise map) of a :class:`~unfoldldm.service.RestoredPicture`, 8-bit."""
    shown = [restored.picture, restored.kernel, restored.noise]
    return tuple(None if picture is None else picture_to_pil(picture) for picture in shown)


def check_file_size(path: str | Path, max_bytes: int | None) -> None:
    """Refuse a file larger than ``max_bytes`` (the upload limit where Gradio cannot enforce it)."""
    if max_bytes is None:
        return
    size = os.path.getsize(path)
    if size > max_bytes:
        raise InputImageError(
            f"{Path(path).name}: the file is {size / 2**20:.1f} MB, more than the upload limit of "
            f"{max_bytes / 2**20:.1f} MB. Downscale or compress it first, or start the app with a "
            "larger --max-upload-mb."
        )


def restore_picture(model, pil_image, options: UIOptions | None = None, progress: Progress | None = None,
                    should_stop: Callable[[], bool] | None = None) -> Pictures:
    """Restore one Pillow image; return (restored, kernel estimate, noise map) as 8-bit images.

    The input is checked by :func:`unfoldldm.imageio.picture_from_pil` (pixel limit, corrupt data);
    the output keeps the input's colour layout (greyscale stays greyscale, alpha is kept and
    upscaled with the image for super-resolution models). Raises UnfoldLDMError on bad input.
    """
    options = options or UIOptions()
    if pil_image is None:
        raise InputImageError("No input image: upload or paste an image first.")
    if not isinstance(pil_image, Image.Image):
        raise InputImageError(f"Expected a Pillow image, got {type(pil_image).__name__}. "
                              "Upload a PNG, JPEG, WebP, TIFF or BMP image.")
    picture = picture_from_pil(pil_image, "input image", max_pixels=options.max_pixels)
    return _as_pil(_restore(model, picture, options, progress, should_stop))


def restore_file(model, path: str | Path, options: UIOptions | None = None, progress: Progress | None = None,
                 should_stop: Callable[[], bool] | None = None, return_input: bool = False):
    """Like :func:`restore_picture` for an uploaded file (size limit, EXIF, clear errors).

    With ``return_input`` the result starts with the input as an 8-bit Pillow image (decoded once,
    after the checks)."""
    options = options or UIOptions()
    check_file_size(path, options.max_upload_bytes)
    picture = load_image(path, max_pixels=options.max_pixels)
    shown = _as_pil(_restore(model, picture, options, progress, should_stop))
    return (picture_to_pil(picture), *shown) if return_input else shown


def blend(before: Image.Image | None, after: Image.Image | None, amount: float) -> Image.Image | None:
    """Before/after comparison: ``amount`` 0 shows the input (resized to the output), 1 the output."""
    if before is None or after is None:
        return after
    b = before.convert("RGBA").resize(after.size, Image.BICUBIC)
    a = after.convert("RGBA")
    return Image.blend(b, a, max(0.0, min(1.0, float(amount))))


@dataclass
class FolderReport:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self, out_dir: str | Path) -> str:
        lines = [f"restored {len(self.done)} image(s) into {out_dir} in {self.seconds:.1f} s"]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} existing output(s): {', '.join(self.skipped)}")
        lines.extend(f"error: {message}" for message in self.failed)
        return "\n".join(lines)


def batch_roots(folders: Iterable[str | Path]) -> list[Path]:
    """The folders a batch may read and write under, resolved (symlinks, ``..``); each must exist."""
    roots = []
    for folder in folders:
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise UnfoldLDMError(f"--batch-root {folder}: no such folder. Create it, or name an existing one.")
        roots.append(path.resolve())
    return roots


def resolve_batch_folder(text: str, roots: Sequence[Path], what: str) -> Path:
    """The folder ``text`` names, resolved, if it lies inside one of ``roots``; a relative name is
    taken inside the first root. Nothing is looked up before the check, so a refusal says nothing
    about whether the path exists."""
    raw = Path(text).expanduser()
    if not raw.is_absolute():
        raw = roots[0] / raw
    resolved = Path(os.path.realpath(raw))  # resolves '..' and every symlink of the existing part
    if any(resolved == root or root in resolved.parents for root in roots):
        return resolved
    allowed = ", ".join(str(r) for r in roots)
    raise InputImageError(
        f"The {what} folder must be inside the batch folders this app was started with ({allowed}); "
        "give a folder inside one of them, or restart the app with another --batch-root."
    )


def _inside(path: Path, roots: Sequence[Path] | None) -> bool:
    if roots is None:
        return True
    resolved = Path(os.path.realpath(path))
    return any(resolved == root or root in resolved.parents for root in roots)


def restore_folder(model, in_dir: str | Path, out_dir: str | Path, options: UIOptions | None = None,
                   progress: Callable[[int, int, str], None] | None = None, overwrite: bool = False,
                   should_stop: Callable[[], bool] | None = None,
                   roots: Sequence[str | Path] | None = None) -> FolderReport:
    """Restore every image of ``in_dir`` into ``out_dir`` (same names and formats, like the CLI).

    One bad file is reported in the result and the others still run; an existing output is
    skipped unless ``overwrite``. ``progress(done, total, name)`` is called before each file.
    With ``roots`` (the standalone app's ``--batch-root`` folders) both folders, and every file read,
    must resolve to a place inside one of them; relative names are taken inside the first.
    """
    from ..imageio import check_output_path, expand_inputs, save_image

    options = options or UIOptions()
    if not str(in_dir or "").strip():
        raise InputImageError("Give an input folder for the batch.")
    if not str(out_dir or "").strip():
        raise InputImageError("Give an output folder for the batch.")
    if roots is not None:
        roots = [Path(os.path.realpath(Path(r).expanduser())) for r in roots]
        if not roots:
            raise InputImageError("Batch folders are off in this app (start it with --batch-root DIR to allow them).")
        src_dir = resolve_batch_folder(str(in_dir).strip(), roots, "input")
        dst_dir = resolve_batch_folder(str(out_dir).strip(), roots, "output")
    else:
        src_dir, dst_dir = Path(str(in_dir).strip()).expanduser(), Path(str(out_dir).strip()).expanduser()
    if not src_dir.is_dir():
        raise InputImageError(f"{src_dir}: no such folder. Give the folder that holds the images.")
    inputs = expand_inputs([str(src_dir)])
    if dst_dir.resolve() == src_dir.resolve():
        raise InputImageError("The output folder is the input folder; pick another one so that no "
                              "input is replaced.")
    try:
        dst_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputImageError(f"{dst_dir}: cannot create the output folder ({exc.strerror or exc}).") from None
    report, start = FolderReport(), time.perf_counter()
    for index, src in enumerate(inputs):
        if progress is not None:
            progress(index, len(inputs), src.name)
        dst = dst_dir / src.name
        if dst.exists() and not overwrite:
            report.skipped.append(src.name)
            continue
        try:
            if not _inside(src, roots):  # a link inside the root that points out of it
                raise InputImageError(f"{src.name}: links to a file outside the batch folders; skipped.")
            check_output_path(dst, src)
            picture = load_image(src, max_pixels=options.max_pixels)
            save_image(dst, _restore(model, picture, options, None, should_stop).picture, overwrite=overwrite)
            report.done.append(src.name)
        except UnfoldLDMError as exc:
            if type(exc).__name__ == "RestorationInterrupted":
                raise
            report.failed.append(str(exc))
        except OSError as exc:  # e.g. a folder that turned read-only: report it and go on
            report.failed.append(f"{src.name}: {exc.strerror or exc}")
    if progress is not None:
        progress(len(inputs), len(inputs), "")
    report.seconds = time.perf_counter() - start
    return report


class ModelRegistry:
    """Model names for a dropdown (bundled weights plus host folders) and a one-model cache.

    ``names()`` re-reads the folders (so new checkpoints appear after a refresh); ``load(name,
    device, dtype)`` keeps the last loaded model and reloads only when the choice changes.
    """

    def __init__(self, search_dirs: Iterable[str | Path] = (), extra: Iterable[str | Path] = ()) -> None:
        self.search_dirs = [Path(d).expanduser() for d in search_dirs]
        self.extra = [Path(p).expanduser() for p in extra]
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._model = None

    def paths(self) -> dict[str, Path]:
        from ..api import list_models

        return {entry.name: entry.path for entry in list_models(self.search_dirs, self.extra)}

    def names(self) -> list[str]:
        return list(self.paths())

    def load(self, name: str, device: str | None = "auto", dtype: str | None = "auto"):
        from ..api import load_model

        if not name:
            raise CheckpointError(
                "No model is selected. Trained weights have not been shipped with this version yet: "
                "put a .safetensors checkpoint (written by `python -m unfoldldm train`) into a folder "
                "given with --model-dir, or start the app with --model PATH."
            )
        paths = self.paths()
        if name not in paths:
            raise CheckpointError(f"No model named '{name}' (known: {', '.join(paths) or 'none'}). "
                                  "Press the refresh button next to the model list.")
        key = (str(paths[name]), os.path.getmtime(paths[name]), device or "auto", dtype or "auto")
        with self._lock:
            if self._key != key:
                self._model, self._key = None, None  # free the old one first
                self._model = load_model(paths[name], device=device, dtype=None if dtype in (None, "auto") else dtype)
                self._key = key
            return self._model


# ----- hosts that own a model folder and the device (A1111/Forge) ------------------------------
_folder_registries: dict[Path, ModelRegistry] = {}
_folder_lock = threading.Lock()


def folder_registry(folder: Path) -> ModelRegistry:
    """The registry of a host's model folder, shared by every front end in the process, so the
    host's tab and its post-processing script keep one cached model between them."""
    with _folder_lock:
        if folder not in _folder_registries:
            _folder_registries[folder] = ModelRegistry([folder])
        return _folder_registries[folder]


def forget_folder_registries() -> None:
    """Drop every cached model (e.g. before a host reloads its scripts)."""
    with _folder_lock:
        _folder_registries.clear()


def load_from_folder(folder: Path, name: str, device: torch.device, dtype: torch.dtype):
    """The model called ``name`` in a host's ``folder`` (or bundled), on the host's device and dtype."""
    from ..api import BUNDLED_PREFIX

    if not name:
        raise CheckpointError(
            f"No UnfoldLDM model is selected. Pick one in the model list (the bundled ones are named "
            f"'{BUNDLED_PREFIX}...'), or put a .safetensors checkpoint into {folder} and refresh the list."
        )
    registry = folder_registry(folder)
    known = registry.names()
    if name not in known:
        raise CheckpointError(
            f"No UnfoldLDM model named '{name}' in {folder} (found: {', '.join(known) or 'none'}). "
            "Refresh the model list (or reload the UI) after adding or renaming checkpoints."
        )
    return registry.load(name, device, dtype)


def host_device_and_dtype(devices) -> tuple[torch.device, torch.dtype]:
    """A WebUI's ``modules.devices`` -> (device, dtype); fp32 on the CPU, where half precision is
    slow or missing."""
    device = torch.device(devices.device)
    dtype = getattr(devices, "dtype", torch.float32)
    if device.type == "cpu" or not isinstance(dtype, torch.dtype):
        dtype = torch.float32
    return device, dtype
