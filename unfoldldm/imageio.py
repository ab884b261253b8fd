"""Reading and writing images for the command line and the apps.

Every image enters the package as a :class:`Picture`: an RGB float tensor in [0, 1], an optional
alpha plane, and enough about the original file (colour layout, bit depth) to write the result
back the same way. Every problem with an input is raised as :class:`InputImageError` whose
message names the file, says what is wrong and what to do.
"""

from __future__ import annotations

import glob
import io
import os
import struct
import sys
import uuid
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .errors import InputImageError
from .options import MAX_PIXELS

DEFAULT_MAX_PIXELS = MAX_PIXELS  # the name this module has always used

# Suffix -> Pillow format name; also the suffixes a folder is searched for.
_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}
IMAGE_SUFFIXES: tuple[str, ...] = tuple(_FORMATS)

_MODES_BY_CHANNELS = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
_FIX_AND_RETRY = "Re-export it or pick another file."


@dataclass
class Picture:
    """An image ready for restoration, plus what is needed to save it like the original."""

    rgb: torch.Tensor  # (3, H, W) float32 in [0, 1]; greyscale is replicated to 3 channels
    alpha: torch.Tensor | None  # (1, H, W) float32 in [0, 1], or None
    mode: str  # original colour layout: "RGB", "RGBA", "L" or "LA"
    bit_depth: int  # 8 or 16
    source: str  # path or "<memory>", used in messages


# --------------------------------------------------------------------------------------------
# Reading


def load_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Picture:
    """Read an image file, refusing it before decoding if it has more than ``max_pixels``.

    No process-wide Pillow setting is read-modified-written: the size limit is our own check on the
    header, so loads in several threads of one host process are safe (and the host's own
    decompression-bomb guard stays exactly as the host set it).
    """
    path = Path(path).expanduser()
    name = str(path)
    _check_readable_file(path)
    img = _open(path, name)
    try:
        _check_size(img.width, img.height, name, max_pixels)
        _check_complete(img, path, name)
        _warn_if_animated(img, name)
        passes = _png16_passes(img)
        if passes:
            pixels, bit_depth = _png16_pixels(path, name, passes)
        else:
            _warn_if_16bit_colour(img, name)
            _load_pixels(img, name)
            pixels, bit_depth = _pil_pixels(_upright(img, name), name)
    finally:
        img.close()
    return _picture(pixels, bit_depth, name)


def read_image_size(source: str | Path | bytes, name: str | None = None) -> tuple[int, int]:
    """(width, height) from an image file's or bytes' header, without decoding any pixels."""
    if isinstance(source, (bytes, bytearray)):
        label = name or "<bytes>"
        img = _open_stream(io.BytesIO(bytes(source)), label, label)
    else:
        path = Path(source).expanduser()
        label = name or str(path)
        _check_readable_file(path)
        img = _open(path, label)
    try:
        return img.width, img.height
    finally:
        img.close()


def check_image_file(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS, name: str | None = None) -> None:
    """Raise :class:`InputImageError` unless the file is an image within ``max_pixels`` (header only)."""
    width, height = read_image_size(path, name)
    _check_size(width, height, name or str(path), max_pixels)


def picture_from_pil(
    img: Image.Image, source: str = "<memory>", max_pixels: int = DEFAULT_MAX_PIXELS
) -> Picture:
    """Turn a Pillow image into a Picture (pixels as given; EXIF orientation is not applied)."""
    _check_size(img.width, img.height, source, max_pixels)
    _load_pixels(img, source)
    pixels, bit_depth = _pil_pixels(img, source)
    return _picture(pixels, bit_depth, source)


def picture_from_array(
    arr: np.ndarray, source: str = "<memory>", max_pixels: int = DEFAULT_MAX_PIXELS
) -> Picture:
    """Turn an HxW or HxWxC (C = 1..4) uint8, uint16, bool or float array into a Picture."""
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or not 1 <= arr.shape[2] <= 4:
        raise InputImageError(
            f"{source}: expected an HxW or HxWxC array with 1 to 4 channels, got shape "
            f"{arr.shape}. Pass a greyscale, greyscale+alpha, RGB or RGBA image."
        )
    _check_size(arr.shape[1], arr.shape[0], source, max_pixels)
    pixels, bit_depth = _unit_float(arr, source)
    return _picture(pixels, bit_depth, source)


def check_image_tensor(
    t: torch.Tensor, source: str = "<memory>", max_pixels: int = DEFAULT_MAX_PIXELS
) -> None:
    """Check that a (B, C, H, W) or (C, H, W) float tensor is a usable image batch."""
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        kind = t.dtype if isinstance(t, torch.Tensor) else type(t).__name__
        raise InputImageError(f"{source}: expected a float image tensor, got {kind}. "
                              "Convert it to float values in [0, 1] first.")
    if t.is_meta or t.device.type == "meta":
        raise InputImageError(f"{source}: the image tensor is on the 'meta' device and holds no data. "
                              "Pass a tensor with real values (on the CPU or a GPU).")
    if t.ndim not in (3, 4):
        raise InputImageError(f"{source}: expected a (B, C, H, W) or (C, H, W) tensor, got "
                              f"shape {tuple(t.shape)}. Reshape it to one of those layouts.")
    channels, height, width = t.shape[-3:]
    if not 1 <= channels <= 4:
        raise InputImageError(f"{source}: expected 1 to 4 channels, got {channels} (shape "
                              f"{tuple(t.shape)}). Pass a greyscale, RGB or RGBA image.")
    if t.numel() == 0:
        raise InputImageError(f"{source}: the image tensor is empty (shape {tuple(t.shape)}). "
                              "Pass an image at least 1x1 pixels in size.")
    _check_size(width, height, source, max_pixels)
    _check_finite(t, source)


def _check_finite(t: torch.Tensor, source: str) -> None:
    """Raise if the tensor holds NaN or infinite values, saying how many."""
    nans = int(torch.isnan(t).sum())
    infs = int(torch.isinf(t).sum())
    if nans or infs:
        raise InputImageError(
            f"{source}: the image holds {nans} NaN and {infs} infinite values out of "
            f"{t.numel()}. Fix the step that produced it; every value must be a finite number."
        )


def _check_readable_file(path: Path) -> None:
    """Raise a clear error for a missing path, a folder or an empty file."""
    name = str(path)
    if not path.exists():
        raise InputImageError(f"{name}: no such file. Check the path and its spelling.")
    if path.is_dir():
        raise InputImageError(f"{name}: this is a folder, not an image file. "
                              "Pass the image files inside it instead.")
    if path.stat().st_size == 0:
        raise InputImageError(f"{name}: the file is empty (0 bytes). {_FIX_AND_RETRY}")


def _check_size(width: int, height: int, source: str, max_pixels: int) -> None:
    """Raise if an image has no pixels or more than ``max_pixels``."""
    if width < 1 or height < 1:
        raise InputImageError(f"{source}: the image is {width}x{height} pixels and holds no "
                              "pixels. Pass an image at least 1x1 pixels in size.")
    if width * height > max_pixels:
        raise InputImageError(
            f"{source}: the image is {width}x{height} = {width * height:,} pixels, more than "
            f"the limit of {max_pixels:,}. Downscale or crop it first, or raise the pixel limit "
            "if you have the memory for it."
        )


def _open(path: Path, name: str) -> Image.Image:
    """Open an image file lazily (header only)."""
    try:
        fp = open(path, "rb")
    except PermissionError as exc:
        raise InputImageError(f"{name}: cannot read the file ({exc.strerror}). "
                              "Check its permissions.") from exc
    except OSError as exc:
        raise InputImageError(f"{name}: cannot open the file ({exc.strerror or exc}).") from exc
    try:
        img = _open_stream(fp, str(path), name)
    except BaseException:
        fp.close()
        raise
    img._exclusive_fp = True  # Pillow closes the file after loading, as Image.open(path) would
    return img


def _open_stream(fp, filename: str, name: str) -> Image.Image:
    """Identify and open an image from a binary stream (header only) the way ``Image.open`` does,
    but without Pillow's decompression-bomb check: that reads the process-wide
    ``Image.MAX_IMAGE_PIXELS``, which a host may set to anything, and our own limit
    (:func:`_check_size`) is applied by every caller instead."""
    try:
        registry = (Image.ID, Image.OPEN)
    except AttributeError:  # a Pillow without the plugin registry: the plain way
        registry = None
    try:
        if registry is None:
            return Image.open(fp)
        prefix = fp.read(16)
        Image.preinit()
        for attempt in range(2):
            for fmt in list(Image.ID):
                factory, accept = Image.OPEN[fmt]
                try:
                    result = accept(prefix) if accept else True
                    if isinstance(result, str) or not result:  # a str: "looks like it, but unsupported"
                        continue
                    fp.seek(0)
                    return factory(fp, filename)
                except (SyntaxError, IndexError, TypeError, struct.error):
                    continue
            if attempt == 0 and not Image.init():
                break
        raise UnidentifiedImageError(name)
    except UnidentifiedImageError:
        raise InputImageError(
            f"{name}: not an image file Pillow can read. Pass a PNG, JPEG, WebP, TIFF or BMP "
            "image, or convert the file to PNG first."
        ) from None
    except Image.DecompressionBombError as exc:  # only on the plain Image.open path
        raise InputImageError(f"{name}: the image is too large ({exc}). "
                              "Downscale or crop it first.") from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise InputImageError(f"{name}: the file header is corrupt ({exc}). "
                              f"{_FIX_AND_RETRY}") from exc


def _truncated(name: str, what: str) -> InputImageError:
    return InputImageError(f"{name}: the file is truncated or corrupt ({what}). {_FIX_AND_RETRY}")


def _check_complete(img: Image.Image, path: Path, name: str) -> None:
    """Refuse a truncated file from its structure, before decoding.

    Pillow refuses truncated data by itself unless the process-wide ``ImageFile.LOAD_TRUNCATED_IMAGES``
    is set (some hosts set it); that setting is only read here, never changed, and where it is set
    the common formats are checked for completeness instead: PNG chunks up to IEND, a JPEG's end
    marker after its last scan, the data sizes a WebP or BMP header declares, and TIFF strips.
    """
    if not ImageFile.LOAD_TRUNCATED_IMAGES:
        return
    size = path.stat().st_size
    with open(path, "rb") as f:
        if img.format == "PNG":
            f.seek(8)
            while True:
                head = f.read(8)
                if len(head) < 8:
                    raise _truncated(name, "the PNG ends before its IEND chunk")
                length, kind = struct.unpack(">I", head[:4])[0], head[4:]
                if f.tell() + length + 4 > size:
                    raise _truncated(name, f"the PNG chunk {kind!r} runs past the end of the file")
                if kind == b"IEND":
                    return
                f.seek(length + 4, io.SEEK_CUR)
        data = f.read()
    if img.format == "JPEG":
        last_scan = data.rfind(b"\xff\xda")
        if last_scan < 0 or data.find(b"\xff\xd9", last_scan) < 0:
            raise _truncated(name, "the JPEG has no end marker after its last scan")
    elif img.format == "WEBP" and len(data) >= 8 and struct.unpack("<I", data[4:8])[0] + 8 > size:
        raise _truncated(name, "the WebP file is shorter than its header says")
    elif img.format == "BMP" and len(data) >= 14:
        offset = struct.unpack("<I", data[10:14])[0]
        row = ((img.width * {"1": 1, "L": 8, "P": 8, "RGB": 24, "RGBA": 32}.get(img.mode, 8) + 31) // 32) * 4
        compressed = any(t[0] not in ("raw",) for t in img.tile)
        if not compressed and offset + row * img.height > size:
            raise _truncated(name, "the BMP file is shorter than its pixel data")
    elif img.format == "TIFF":
        tags = getattr(img, "tag_v2", {})
        offsets, counts = tags.get(273) or tags.get(324), tags.get(279) or tags.get(325)
        if offsets and counts and max(o + c for o, c in zip(offsets, counts)) > size:
            raise _truncated(name, "a TIFF strip runs past the end of the file")


def _warn_if_animated(img: Image.Image, name: str) -> None:
    """Multi-frame files (APNG, animated WebP/GIF, multi-page TIFF): only the first frame is used."""
    try:
        frames = int(getattr(img, "n_frames", 1))
    except (OSError, ValueError, EOFError, struct.error):
        frames = 1
    if frames > 1:
        warnings.warn(f"{name}: the file holds {frames} frames; only the first is restored. Extract the "
                      "frames into separate images to restore them all.", stacklevel=3)


def _load_pixels(img: Image.Image, name: str) -> None:
    """Decode the pixel data, turning Pillow's errors about broken files into ours."""
    try:
        img.load()
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as exc:
        raise InputImageError(f"{name}: the file is truncated or corrupt (Pillow: {exc}). "
                              f"{_FIX_AND_RETRY}") from exc


def _upright(img: Image.Image, name: str) -> Image.Image:
    """Apply the EXIF orientation tag; a broken EXIF block only costs a warning."""
    try:
        return ImageOps.exif_transpose(img)
    except (OSError, SyntaxError, ValueError, KeyError, TypeError, struct.error) as exc:
        warnings.warn(f"{name}: unreadable EXIF orientation ({exc}); the image is used as "
                      "stored.", stacklevel=4)
        return img


def _pil_pixels(img: Image.Image, name: str) -> tuple[np.ndarray, int]:
    """Return (H, W, C) float32 pixels in [0, 1] and the bit depth of a loaded Pillow image."""
    img = _standard_mode(img, name)
    return _unit_float(np.asarray(img), name)


def _standard_mode(img: Image.Image, name: str) -> Image.Image:
    """Convert palette, CMYK, premultiplied and other layouts to L, LA, RGB, RGBA or I/F."""
    mode = img.mode
    if mode in ("L", "LA", "RGB", "RGBA", "F") or mode.startswith("I"):
        return img
    if mode == "P":
        transparent = "transparency" in img.info or getattr(img.palette, "mode", "") == "RGBA"
        return img.convert("RGBA" if transparent else "RGB")
    target = {"1": "L", "La": "LA", "PA": "RGBA", "RGBa": "RGBA"}.get(mode, "RGB")
    try:
        return img.convert(target)
    except (ValueError, OSError) as exc:
        raise InputImageError(f"{name}: unsupported colour mode {mode!r} ({exc}). "
                              "Convert the image to RGB or greyscale PNG first.") from exc


def _unit_float(arr: np.ndarray, name: str) -> tuple[np.ndarray, int]:
    """Scale an integer, bool or float (H, W, C) array to float32 in [0, 1]; return bit depth."""
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.dtype == np.uint8 or arr.dtype == np.bool_:
        return arr.astype(np.float32) / np.float32(255 if arr.dtype == np.uint8 else 1), 8
    if arr.dtype == np.uint16 or arr.dtype == np.dtype(">u2"):
        return arr.astype(np.float32) / np.float32(65535), 16
    if np.issubdtype(arr.dtype, np.integer):  # Pillow "I" (e.g. 16-bit grey from old files)
        return _clip_unit(arr.astype(np.float64) / 65535, name).astype(np.float32), 16
    if np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
        _check_finite(torch.from_numpy(arr), name)
        return _clip_unit(arr, name), 16
    raise InputImageError(f"{name}: unsupported pixel type {arr.dtype}. "
                          "Use uint8, uint16 or float values in [0, 1].")


def _clip_unit(arr: np.ndarray, name: str) -> np.ndarray:
    """Clip values to [0, 1], warning when that changes anything."""
    low, high = float(arr.min()), float(arr.max())
    if low < 0 or high > 1:
        warnings.warn(f"{name}: pixel values span [{low:g}, {high:g}]; those outside [0, 1] "
                      "were clipped.", stacklevel=3)
    return np.clip(arr, 0, 1)


def _picture(pixels: np.ndarray, bit_depth: int, source: str) -> Picture:
    """Split (H, W, C) float pixels into the colour and alpha tensors of a Picture."""
    channels = pixels.shape[2]
    chw = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float32))
    colour = chw[:3] if channels >= 3 else chw[:1].repeat(3, 1, 1)
    alpha = chw[-1:].clone() if channels in (2, 4) else None
    return Picture(colour.contiguous(), alpha, _MODES_BY_CHANNELS[channels], bit_depth, source)


# Pillow reads 16-bit colour PNGs as 8-bit. Decoding the same data again with another "raw mode"
# recovers the low bytes: Pillow still unfilters and de-interlaces, and the pair gives 16 bits.
_PNG16_COLOUR = {
    "RGB;16B": ("RGB;16B", "RGB;16L"),  # high bytes, then low bytes
    "RGBA;16B": ("RGBA;16B", "RGBA;16L"),
    "LA;16B": ("RGBA",),  # one pass: R, G, B, A = grey high, grey low, alpha high, alpha low
}


def _rawmode(img: Image.Image) -> str:
    """Return the pixel layout stored in an opened, not yet loaded file ("" if unknown)."""
    tile = img.tile
    args = tile[0][3] if len(tile) == 1 else None  # (codec, extents, offset, args)
    rawmode = args[0] if isinstance(args, tuple) and args else args
    return rawmode if isinstance(rawmode, str) else ""


def _png16_passes(img: Image.Image) -> tuple[str, ...]:
    """Return the raw modes that read a 16-bit colour PNG exactly; () for any other file."""
    return _PNG16_COLOUR.get(_rawmode(img), ()) if img.format == "PNG" else ()


def _warn_if_16bit_colour(img: Image.Image, name: str) -> None:
    """Warn that Pillow reads 16-bit colour (other than PNG) with 8 bits per channel."""
    if ";16" in _rawmode(img) and img.mode in ("RGB", "RGBA", "LA"):
        warnings.warn(f"{name}: this 16-bit colour {img.format} file is read with 8 bits per "
                      "channel. Convert it to a 16-bit PNG to keep the full precision.",
                      stacklevel=3)


def _png16_pixels(path: Path, name: str, passes: tuple[str, ...]) -> tuple[np.ndarray, int]:
    """Read a 16-bit colour or grey+alpha PNG exactly as (H, W, C) float32 in [0, 1]."""
    planes = [_decode_png_as(path, name, raw) for raw in passes]
    if len(planes) == 2:
        words = planes[0].astype(np.uint16) << 8 | planes[1]
    else:  # grey + alpha packed into one RGBA pass
        words = planes[0][..., 0::2].astype(np.uint16) << 8 | planes[0][..., 1::2]
    return words.astype(np.float32) / np.float32(65535), 16


def _decode_png_as(path: Path, name: str, rawmode: str) -> np.ndarray:
    """Decode a PNG's pixel data with the given Pillow raw mode, EXIF orientation applied."""
    with _open(path, name) as img:
        img.tile = [(*tile[:3], rawmode) for tile in img.tile]
        _load_pixels(img, name)
        return np.asarray(_upright(img, name))


# --------------------------------------------------------------------------------------------
# Writing


def picture_to_pil(picture: Picture) -> Image.Image:
    """Return the picture as an 8-bit Pillow image in its original colour layout."""
    return Image.fromarray(_squeeze(_quantise(picture, 8)))


def save_image(path: str | Path, picture: Picture, overwrite: bool = False) -> Path:
    """Write the picture atomically in the format named by the suffix; return the path."""
    path = Path(path).expanduser()
    fmt = _format_for(path)
    _check_writable(path, overwrite)
    data = _encode(picture, fmt, str(path))
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temp, "xb") as handle:
            handle.write(data)
        if not overwrite and path.exists():  # appeared while we were writing
            raise InputImageError(_exists_message(path))
        os.replace(temp, path)
    except OSError as exc:
        _remove_quietly(temp)
        raise InputImageError(f"{path}: cannot write the file ({exc.strerror or exc}). "
                              "Pick another output folder or free some disk space.") from None
    except BaseException:
        _remove_quietly(temp)
        raise
    return path


def _remove_quietly(path: Path) -> None:
    """Remove a temp file if it is there; a folder that refuses even that (read-only file system:
    unlink fails with EROFS, not "no such file") must not replace the error being reported."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def _format_for(path: Path) -> str:
    """Return the Pillow format name for the path's suffix, or raise naming the allowed ones."""
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputImageError(f"{path}: unknown image type {path.suffix or '(no suffix)'!r}. "
                              f"Use one of: {', '.join(IMAGE_SUFFIXES)}.")
    return fmt


def check_output_path(path: str | Path, source: str | Path | None = None) -> None:
    """Raise before any work if ``path`` names a format that cannot be written (e.g. an input's
    '.gif' kept for its output), saying how to get a writable name."""
    path = Path(path)
    if path.suffix.lower() in _FORMATS:
        return
    origin = f" (the name of the input {Path(source).name})" if source is not None else ""
    raise InputImageError(
        f"{path}: UnfoldLDM cannot write {path.suffix or 'files without a suffix'!s} images{origin}; outputs "
        f"are written as {', '.join(IMAGE_SUFFIXES)}. Convert the input to PNG first, or give -o a file "
        "name ending in .png."
    )


def _exists_message(path: Path) -> str:
    return (f"{path}: the file already exists. Choose another output name, or allow "
            "overwriting (overwrite=True).")


def _check_writable(path: Path, overwrite: bool) -> None:
    """Raise if the target is a folder, exists (unless overwriting) or has no parent folder."""
    if path.is_dir():
        raise InputImageError(f"{path}: this is a folder. Give a file name for the output.")
    if path.exists() and not overwrite:
        raise InputImageError(_exists_message(path))
    if not path.parent.is_dir():
        raise InputImageError(f"{path}: the folder {path.parent} does not exist. "
                              "Create it first or pick another output folder.")


def _encode(picture: Picture, fmt: str, name: str) -> bytes:
    """Encode the picture as bytes of the given format, keeping layout and depth if possible."""
    check_image_tensor(picture.rgb, name, max_pixels=sys.maxsize)
    if picture.bit_depth == 16 and fmt == "PNG":
        return _encode_png16(_quantise(picture, 16))
    if picture.bit_depth == 16 and fmt == "TIFF" and picture.mode == "L":
        img = Image.fromarray(_squeeze(_quantise(picture, 16)))
    else:
        if picture.bit_depth == 16:
            warnings.warn(f"{name}: {fmt} cannot hold this 16-bit {picture.mode} image here, so "
                          "it is saved with 8 bits per channel. Use .png to keep 16 bits.",
                          stacklevel=3)
        img = _fit_format(picture_to_pil(picture), fmt, name)
    options = {"JPEG": {"quality": 95}, "WEBP": {"quality": 95}}.get(fmt, {})
    buffer = io.BytesIO()
    try:
        img.save(buffer, format=fmt, **options)
    except (OSError, ValueError) as exc:  # e.g. WebP is limited to 16383 pixels a side
        raise InputImageError(f"{name}: {fmt} cannot store this {img.width}x{img.height} image "
                              f"({exc}). Use .png or .tif instead.") from exc
    return buffer.getvalue()


def _fit_format(img: Image.Image, fmt: str, name: str) -> Image.Image:
    """Drop the alpha plane (with a warning) for formats that cannot store it."""
    if fmt in ("JPEG", "BMP") and img.mode in ("LA", "RGBA"):
        warnings.warn(f"{name}: {fmt} cannot store transparency; the alpha channel is dropped. "
                      "Use .png or .webp to keep it.", stacklevel=4)
        return img.convert(img.mode[:-1])
    return img


def _quantise(picture: Picture, bits: int) -> np.ndarray:
    """Return (H, W, C) unsigned integers in the picture's own colour layout."""
    colour = picture.rgb.detach().float().cpu().clamp(0, 1)
    if picture.mode in ("L", "LA"):
        colour = colour.mean(dim=0, keepdim=True)
    planes = [colour]
    if picture.mode in ("LA", "RGBA"):
        alpha = picture.alpha if picture.alpha is not None else torch.ones_like(colour[:1])
        planes.append(alpha.detach().float().cpu().clamp(0, 1))
    top = 2**bits - 1
    values = torch.cat(planes).permute(1, 2, 0).numpy()
    return np.rint(values * top).astype(np.uint8 if bits == 8 else np.uint16)


def _squeeze(pixels: np.ndarray) -> np.ndarray:
    """Drop the channel axis of single-channel pixels, as Pillow expects for greyscale."""
    return pixels[:, :, 0] if pixels.shape[2] == 1 else pixels


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    """Return one PNG chunk: length, type, data, CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _encode_png16(pixels: np.ndarray) -> bytes:
    """Encode (H, W, C) uint16 pixels as a 16-bit PNG (Pillow cannot write 16-bit colour)."""
    height, width, channels = pixels.shape
    rows = pixels.astype(">u2").reshape(height, width * channels).view(np.uint8)
    filtered = rows.copy()
    filtered[1:] -= rows[:-1]  # PNG "Up" filter: difference to the row above, modulo 256
    scanlines = np.concatenate([np.full((height, 1), 2, np.uint8), filtered], axis=1)
    compressed = zlib.compress(scanlines.tobytes(), 6)
    header = struct.pack(">IIBBBBB", width, height, 16, _PNG_COLOUR_TYPES[channels], 0, 0, 0)
    step = 1 << 24  # keep each IDAT chunk well below PNG's 2**31 limit
    idat = b"".join(_png_chunk(b"IDAT", compressed[i:i + step])
                    for i in range(0, max(len(compressed), 1), step))
    return _PNG_SIGNATURE + _png_chunk(b"IHDR", header) + idat + _png_chunk(b"IEND", b"")


# --------------------------------------------------------------------------------------------
# Finding input files


def expand_inputs(inputs: Sequence[str]) -> list[Path]:
    """Expand files, folders (their images, sorted) and glob patterns into a list of files.

    Duplicates are dropped and the order is kept. Every input that names nothing, or matches no
    image file, is listed in one :class:`InputImageError`.
    """
    found: list[Path] = []
    seen: set[Path] = set()
    problems: list[str] = []
    for item in inputs:
        matches, problem = _expand_one(str(item))
        if problem:
            problems.append(f"{item!r} ({problem})")
        for path in matches:
            key = path.resolve()
            if key not in seen:
                seen.add(key)
                found.append(path)
    if problems:
        raise InputImageError(
            "These inputs match no image: " + "; ".join(problems) + ". Check the paths; folders "
            f"and patterns are searched for {', '.join(IMAGE_SUFFIXES)} files."
        )
    return found


def _expand_one(item: str) -> tuple[list[Path], str | None]:
    """Return the image files one input names, or a reason why it names none."""
    path = Path(item).expanduser()
    if path.is_file():
        return [path], None
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if _is_image_file(p))
        return images, None if images else "folder without image files"
    if any(char in item for char in "*?["):
        images = [Path(p) for p in sorted(glob.glob(os.path.expanduser(item), recursive=True))]
        images = [p for p in images if _is_image_file(p)]
        return images, None if images else "pattern matches no image file"
    return [], "does not exist"


def _is_image_file(path: Path) -> bool:
    """True for a visible file with one of the image suffixes."""
    visible = not path.name.startswith(".")
    return visible and path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
