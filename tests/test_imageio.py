"""Tests for unfoldldm.imageio: round trips, every kind of bad input, atomic saving, inputs."""

from __future__ import annotations

import importlib.util
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from unfoldldm import imageio as uio
from unfoldldm.errors import InputImageError
from unfoldldm.imageio import (
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    Picture,
    check_image_tensor,
    expand_inputs,
    load_image,
    picture_from_array,
    picture_from_pil,
    picture_to_pil,
    save_image,
)

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
CHANNELS = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}


def random_pixels(channels: int, dtype=np.uint8, shape=(9, 13), seed=0) -> np.ndarray:
    top = np.iinfo(dtype).max
    return np.random.default_rng(seed).integers(0, top + 1, (*shape, channels), dtype=dtype)


def as_hwc(picture: Picture) -> np.ndarray:
    """The picture's planes in its own layout, as float64 (H, W, C)."""
    colour = picture.rgb[:1] if picture.mode in ("L", "LA") else picture.rgb
    planes = [colour] + ([picture.alpha] if picture.mode in ("LA", "RGBA") else [])
    return torch.cat(planes).permute(1, 2, 0).double().numpy()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def filtered_scanlines(raw: np.ndarray, bpp: int) -> bytes:
    """Filter rows with types 0..4 in turn (a slow, independent reference encoder)."""
    out = bytearray()
    prev = np.zeros(raw.shape[1], np.int64)
    for y, row in enumerate(raw.astype(np.int64)):
        kind = y % 5
        line = []
        for x, value in enumerate(row):
            a = row[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            predictor = [0, a, b, (a + b) // 2, paeth(a, b, c)][kind]
            line.append((value - predictor) % 256)
        out += bytes([kind]) + bytes(line)
        prev = row
    return bytes(out)


def reference_png16(pixels: np.ndarray, interlace: bool) -> bytes:
    """A 16-bit PNG written without our code, using all filter types and optionally Adam7."""
    height, width, channels = pixels.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    bpp = 2 * channels
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
              (0, 1, 1, 2)] if interlace else [(0, 0, 1, 1)]
    data = b""
    for x0, y0, dx, dy in passes:
        sub = pixels[y0::dy, x0::dx]
        if sub.size:
            raw = sub.astype(">u2").reshape(sub.shape[0], -1).view(np.uint8)
            data += filtered_scanlines(raw, bpp)
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, int(interlace))
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", zlib.compress(data)) + png_chunk(b"IEND", b""))


def pil_mode(path: Path) -> str:
    with Image.open(path) as img:
        return img.mode


def png_bit_depth(path: Path) -> int:
    return path.read_bytes()[24]


def assert_names(excinfo: pytest.ExceptionInfo, path: Path) -> None:
    assert str(path) in str(excinfo.value)


# --------------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA"])
def test_8bit_png_round_trip_is_exact(tmp_path, mode):
    pixels = random_pixels(CHANNELS[mode])
    picture = picture_from_array(pixels)
    assert (picture.mode, picture.bit_depth) == (mode, 8)
    out = save_image(tmp_path / "x.png", picture)
    back = load_image(out)
    assert (back.mode, back.bit_depth, back.source) == (mode, 8, str(out))
    assert back.rgb.shape == (3, 9, 13) and back.rgb.dtype == torch.float32
    assert np.array_equal(np.rint(as_hwc(back) * 255).astype(np.uint8), pixels)
    assert pil_mode(out) == mode
    if mode in ("RGBA", "LA"):
        assert torch.equal(back.alpha, picture.alpha)
    else:
        assert back.alpha is None


def test_greyscale_is_replicated_to_three_channels():
    picture = picture_from_array(random_pixels(1)[:, :, 0])
    assert torch.equal(picture.rgb[0], picture.rgb[1])
    assert torch.equal(picture.rgb[0], picture.rgb[2])


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_16bit_png_round_trip_is_exact(tmp_path, mode):
    pixels = random_pixels(CHANNELS[mode], np.uint16)
    pixels[0, 0] = 0
    pixels[0, 1] = 65535
    picture = picture_from_array(pixels)
    assert picture.bit_depth == 16
    out = save_image(tmp_path / "deep.png", picture)
    assert png_bit_depth(out) == 16
    back = load_image(out)
    assert (back.mode, back.bit_depth) == (mode, 16)
    assert np.array_equal(np.rint(as_hwc(back) * 65535).astype(np.uint16), pixels)
    assert np.abs(as_hwc(back) - pixels / 65535).max() < 0.5 / 65535


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("interlace", [False, True])
def test_16bit_png_from_another_writer_reads_exactly(tmp_path, channels, interlace):
    pixels = random_pixels(channels, np.uint16, shape=(11, 10), seed=channels)
    path = tmp_path / "other.png"
    path.write_bytes(reference_png16(pixels, interlace))
    back = load_image(path)
    assert back.bit_depth == 16 and back.mode == uio._MODES_BY_CHANNELS[channels]
    assert np.array_equal(np.rint(as_hwc(back) * 65535).astype(np.uint16), pixels)


def test_16bit_colour_tiff_warns_that_it_is_read_as_8bit(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    path = tmp_path / "deep.tif"
    tifffile.imwrite(path, random_pixels(3, np.uint16))
    with pytest.warns(UserWarning, match="8 bits"):
        assert load_image(path).mode == "RGB"


def test_jpeg_is_readable_and_close(tmp_path):
    pixels = np.tile(np.linspace(0, 255, 32, dtype=np.uint8)[None, :, None], (24, 1, 3))
    out = save_image(tmp_path / "photo.jpg", picture_from_array(pixels))
    back = load_image(out)
    assert (back.mode, back.bit_depth) == ("RGB", 8)
    assert np.abs(as_hwc(back) - pixels / 255).mean() < 0.02


@pytest.mark.parametrize("suffix", [".tif", ".tiff", ".bmp", ".png", ".PNG"])
def test_lossless_formats_round_trip(tmp_path, suffix):
    pixels = random_pixels(3)
    back = load_image(save_image(tmp_path / f"x{suffix}", picture_from_array(pixels)))
    assert np.array_equal(np.rint(as_hwc(back) * 255).astype(np.uint8), pixels)


def test_webp_keeps_alpha(tmp_path):
    pixels = np.full((8, 8, 4), 200, np.uint8)
    pixels[..., 3] = 77
    back = load_image(save_image(tmp_path / "x.webp", picture_from_array(pixels)))
    assert back.mode == "RGBA"
    assert torch.allclose(back.alpha, torch.full((1, 8, 8), 77 / 255), atol=1 / 255)


def test_16bit_grey_tiff_round_trip_is_exact(tmp_path):
    pixels = random_pixels(1, np.uint16)
    back = load_image(save_image(tmp_path / "deep.tif", picture_from_array(pixels)))
    assert (back.mode, back.bit_depth) == ("L", 16)
    assert np.array_equal(np.rint(as_hwc(back) * 65535).astype(np.uint16), pixels)


def test_jpeg_drops_alpha_with_warning(tmp_path):
    picture = picture_from_array(random_pixels(4))
    with pytest.warns(UserWarning, match="alpha"):
        out = save_image(tmp_path / "x.jpg", picture)
    assert pil_mode(out) == "RGB"


def test_16bit_colour_to_jpeg_warns_about_8_bits(tmp_path):
    with pytest.warns(UserWarning, match="8 bits"):
        save_image(tmp_path / "x.jpg", picture_from_array(random_pixels(3, np.uint16)))


def test_1x1_image_is_valid(tmp_path):
    path = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (10, 20, 30)).save(path)
    picture = load_image(path)
    assert picture.rgb.shape == (3, 1, 1)
    assert torch.allclose(picture.rgb.flatten(), torch.tensor([10, 20, 30]) / 255)


def test_pil_round_trip():
    pixels = random_pixels(4)
    picture = picture_from_pil(Image.fromarray(pixels))
    img = picture_to_pil(picture)
    assert img.mode == "RGBA" and np.array_equal(np.asarray(img), pixels)


# --------------------------------------------------------------------------------------------
# Colour layouts Pillow can hand us


def test_palette_image_becomes_rgb(tmp_path):
    path = tmp_path / "pal.png"
    Image.fromarray(random_pixels(3)).convert("P", palette=Image.Palette.ADAPTIVE).save(path)
    picture = load_image(path)
    assert picture.mode == "RGB" and picture.alpha is None


def test_palette_image_with_transparency_becomes_rgba(tmp_path):
    path = tmp_path / "pal.png"
    img = Image.new("P", (4, 3), 0)
    img.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    img.putpixel((1, 1), 1)
    img.save(path, transparency=0)
    picture = load_image(path)
    assert picture.mode == "RGBA"
    assert picture.alpha[0, 1, 1] == 1 and picture.alpha[0, 0, 0] == 0
    assert torch.allclose(picture.rgb[:, 1, 1], torch.tensor([0.0, 1.0, 0.0]))


def test_cmyk_becomes_rgb(tmp_path):
    path = tmp_path / "print.tif"
    Image.new("CMYK", (5, 4), (0, 255, 255, 0)).save(path)  # pure red in CMYK
    picture = load_image(path)
    assert picture.mode == "RGB"
    assert torch.allclose(picture.rgb[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]), atol=0.02)


def test_bilevel_becomes_l(tmp_path):
    path = tmp_path / "bw.png"
    Image.new("1", (3, 2), 1).save(path)
    picture = load_image(path)
    assert (picture.mode, picture.bit_depth) == ("L", 8) and picture.rgb.min() == 1


def test_int32_image_becomes_16bit_grey(tmp_path):
    path = tmp_path / "int.tif"
    values = np.array([[0, 1000], [40000, 65535]], np.int32)
    Image.fromarray(values).save(path)
    assert pil_mode(path) == "I"
    picture = load_image(path)
    assert (picture.mode, picture.bit_depth) == ("L", 16)
    assert np.allclose(picture.rgb[0].numpy(), values / 65535)


def test_float_image_becomes_grey_float(tmp_path):
    path = tmp_path / "float.tif"
    values = np.array([[0.0, 0.25], [0.5, 0.123456]], np.float32)
    Image.fromarray(values).save(path)
    assert pil_mode(path) == "F"
    picture = load_image(path)
    assert picture.mode == "L" and picture.bit_depth == 16
    assert torch.equal(picture.rgb[0], torch.from_numpy(values))


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.arange(6, dtype=np.uint8).reshape(2, 3) * 40
    img = Image.fromarray(pixels)
    exif = img.getexif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    path = tmp_path / "rotated.png"
    img.save(path, exif=exif)
    picture = load_image(path)
    assert picture.rgb.shape == (3, 3, 2)
    assert np.array_equal(np.rint(picture.rgb[0].numpy() * 255), np.rot90(pixels, -1))


# --------------------------------------------------------------------------------------------
# Bad inputs


def bad_file(tmp_path: Path, kind: str) -> Path:
    """Make one kind of unusable input file and return its path."""
    if kind == "missing":
        return tmp_path / "nowhere.png"
    if kind == "folder":
        path = tmp_path / "folder.png"
        path.mkdir()
        return path
    path = tmp_path / f"{kind}.png"
    if kind == "text":
        path.write_text("this is not an image\n")
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        good = tmp_path / "good.png"
        Image.fromarray(random_pixels(3, shape=(64, 64))).save(good)
        data = good.read_bytes()
        if kind == "truncated":
            path.write_bytes(data[: len(data) // 2])
        elif kind == "corrupt":  # flip bytes inside the compressed pixel data
            broken = bytearray(data)
            broken[len(data) // 2: len(data) // 2 + 64] = bytes(64)
            path.write_bytes(bytes(broken))
    return path


BAD_KINDS = ["missing", "folder", "text", "empty", "truncated", "corrupt"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_file_gives_clear_error(tmp_path, kind):
    path = bad_file(tmp_path, kind)
    with pytest.raises(InputImageError) as excinfo:
        load_image(path)
    assert_names(excinfo, path)
    assert excinfo.value.__class__ is InputImageError


def test_error_messages_say_what_is_wrong(tmp_path):
    expected = {"missing": "no such file", "folder": "folder", "text": "not an image",
                "empty": "empty", "truncated": "truncated"}
    for kind, words in expected.items():
        with pytest.raises(InputImageError, match=words):
            load_image(bad_file(tmp_path, kind))


def test_truncated_png_refused_even_if_pillow_was_told_to_accept_it(tmp_path, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(InputImageError, match="truncated"):
        load_image(bad_file(tmp_path, "truncated"))
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the caller's setting is restored


def huge_png(tmp_path: Path, width: int, height: int) -> Path:
    """A real 1x1 PNG whose header claims width x height pixels."""
    path = tmp_path / "huge.png"
    Image.new("RGB", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = bytearray(data[12:29])  # type + 13 data bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    path.write_bytes(bytes(data))
    return path


def test_huge_header_refused_before_decoding(tmp_path, monkeypatch):
    path = huge_png(tmp_path, 20000, 20000)

    def no_decoding(self):
        raise AssertionError("pixel data was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    bomb_limit = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning either
        with pytest.raises(InputImageError, match="20000x20000") as excinfo:
            load_image(path)
    assert_names(excinfo, path)
    assert "Downscale" in str(excinfo.value)
    assert Image.MAX_IMAGE_PIXELS == bomb_limit


def test_max_pixels_is_respected(tmp_path):
    path = tmp_path / "small.png"
    Image.new("RGB", (10, 10)).save(path)
    with pytest.raises(InputImageError, match="100 pixels"):
        load_image(path, max_pixels=99)
    assert load_image(path, max_pixels=100).rgb.shape == (3, 10, 10)
    assert DEFAULT_MAX_PIXELS == 8192 * 8192


def test_max_pixels_above_pillow_limit_is_allowed(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)  # Pillow alone would refuse 100 pixels
    path = tmp_path / "small.png"
    Image.new("L", (10, 10)).save(path)
    assert load_image(path, max_pixels=1000).rgb.shape == (3, 10, 10)


@pytest.mark.parametrize("shape", [(0, 5, 3), (5, 0), (0, 0, 1)])
def test_empty_array_refused(shape):
    with pytest.raises(InputImageError, match="no pixels"):
        picture_from_array(np.zeros(shape, np.uint8), source="blank")


@pytest.mark.parametrize("shape", [(4, 4, 5), (2, 2, 2, 3), (7,)])
def test_array_with_wrong_shape_refused(shape):
    with pytest.raises(InputImageError, match="channels"):
        picture_from_array(np.zeros(shape, np.uint8), source="odd.npy")


def test_array_with_nan_refused():
    arr = np.zeros((4, 4, 3), np.float32)
    arr[0, 0, 0] = np.nan
    with pytest.raises(InputImageError, match="1 NaN") as excinfo:
        picture_from_array(arr, source="frame7")
    assert "frame7" in str(excinfo.value)


def test_float_array_out_of_range_is_clipped_with_warning():
    arr = np.array([[-0.5, 0.5, 2.0]], np.float32)
    with pytest.warns(UserWarning, match="clipped"):
        picture = picture_from_array(arr)
    assert torch.equal(picture.rgb[0, 0], torch.tensor([0.0, 0.5, 1.0]))


def test_array_dtypes():
    assert picture_from_array(np.ones((2, 2), bool)).rgb.min() == 1
    assert picture_from_array(np.full((2, 2), 65535, np.uint16)).bit_depth == 16
    assert picture_from_array(np.full((2, 2), 0.5, np.float64)).rgb.dtype == torch.float32


def test_pil_image_too_large_is_refused_by_name():
    with pytest.raises(InputImageError, match="upload.png"):
        picture_from_pil(Image.new("RGB", (30, 30)), source="upload.png", max_pixels=100)


# --------------------------------------------------------------------------------------------
# check_image_tensor


def test_check_image_tensor_accepts_good_batches():
    check_image_tensor(torch.rand(3, 5, 7))
    check_image_tensor(torch.rand(2, 1, 5, 7))
    check_image_tensor(torch.rand(1, 4, 1, 1, dtype=torch.float16))


def test_check_image_tensor_counts_nan_and_inf():
    t = torch.rand(1, 3, 4, 4)
    t[0, 0, 0, :2] = float("nan")
    t[0, 1, 1, 1] = float("inf")
    with pytest.raises(InputImageError, match="2 NaN and 1 infinite") as excinfo:
        check_image_tensor(t, source="batch.png")
    assert "batch.png" in str(excinfo.value)


@pytest.mark.parametrize("shape", [(1, 3, 0, 4), (3, 4, 0), (0, 3, 4, 4)])
def test_check_image_tensor_rejects_empty(shape):
    with pytest.raises(InputImageError):
        check_image_tensor(torch.zeros(shape))


@pytest.mark.parametrize("shape", [(1, 5, 4, 4), (0, 4, 4), (4, 4), (1, 1, 3, 4, 4)])
def test_check_image_tensor_rejects_bad_layout(shape):
    with pytest.raises(InputImageError):
        check_image_tensor(torch.zeros(shape))


def test_check_image_tensor_rejects_integers_and_huge():
    with pytest.raises(InputImageError, match="float"):
        check_image_tensor(torch.zeros(3, 4, 4, dtype=torch.uint8))
    with pytest.raises(InputImageError, match="limit"):
        check_image_tensor(torch.zeros(3, 10, 10), max_pixels=99)


# --------------------------------------------------------------------------------------------
# save_image


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_save_refuses_to_overwrite_unless_asked(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"keep me")
    picture = picture_from_array(random_pixels(3))
    with pytest.raises(InputImageError, match="already exists") as excinfo:
        save_image(target, picture)
    assert_names(excinfo, target)
    assert target.read_bytes() == b"keep me"
    assert save_image(target, picture, overwrite=True) == target
    assert load_image(target).rgb.shape == (3, 9, 13)
    assert leftovers(tmp_path) == ["out.png"]


def test_save_unknown_suffix_names_allowed_ones_and_writes_nothing(tmp_path):
    with pytest.raises(InputImageError, match=r"\.png.*\.jpg.*\.webp.*\.tif.*\.bmp") as excinfo:
        save_image(tmp_path / "out.gif", picture_from_array(random_pixels(3)))
    assert "out.gif" in str(excinfo.value)
    assert leftovers(tmp_path) == []


def test_save_into_missing_folder_fails_cleanly(tmp_path):
    target = tmp_path / "no" / "such" / "out.png"
    with pytest.raises(InputImageError, match="does not exist"):
        save_image(target, picture_from_array(random_pixels(3)))
    assert leftovers(tmp_path) == []


def test_save_failure_midway_leaves_no_file(tmp_path, monkeypatch):
    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(InputImageError, match="No space left"):
        save_image(tmp_path / "out.png", picture_from_array(random_pixels(3)))
    assert leftovers(tmp_path) == []


def test_save_interrupted_leaves_no_file(tmp_path, monkeypatch):
    def interrupt(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_image(tmp_path / "out.png", picture_from_array(random_pixels(3)))
    assert leftovers(tmp_path) == []


def test_save_refuses_nan_picture(tmp_path):
    picture = picture_from_array(random_pixels(3))
    picture.rgb[0, 0, 0] = float("nan")
    with pytest.raises(InputImageError, match="NaN"):
        save_image(tmp_path / "out.png", picture)
    assert leftovers(tmp_path) == []


def test_save_onto_folder_refused(tmp_path):
    (tmp_path / "out.png").mkdir()
    with pytest.raises(InputImageError, match="folder"):
        save_image(tmp_path / "out.png", picture_from_array(random_pixels(3)), overwrite=True)


def test_saved_file_is_readable_by_others(tmp_path):
    out = save_image(tmp_path / "out.png", picture_from_array(random_pixels(3)))
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


# --------------------------------------------------------------------------------------------
# expand_inputs


@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for name in ["b.png", "a.JPG", "c.webp", "notes.txt", ".hidden.png", "sub/d.png"]:
        (folder / name).write_bytes(b"x")
    return folder


def test_expand_folder_lists_images_directly_inside_sorted(photo_folder):
    assert [p.name for p in expand_inputs([str(photo_folder)])] == ["a.JPG", "b.png", "c.webp"]


def test_expand_glob(photo_folder):
    found = expand_inputs([str(photo_folder / "*.png"), str(photo_folder / "**" / "*.png")])
    assert [p.name for p in found] == ["b.png", "d.png"]


def test_expand_keeps_order_and_drops_duplicates(photo_folder):
    c, b = str(photo_folder / "c.webp"), str(photo_folder / "b.png")
    found = expand_inputs([c, b, str(photo_folder), c])
    assert [p.name for p in found] == ["c.webp", "b.png", "a.JPG"]


def test_expand_reports_every_input_that_matches_nothing(photo_folder, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = [str(tmp_path / "missing.png"), str(photo_folder / "*.tif"), str(empty)]
    with pytest.raises(InputImageError) as excinfo:
        expand_inputs([str(photo_folder)] + bad)
    message = str(excinfo.value)
    for item in bad:
        assert item in message
    assert "does not exist" in message


def test_image_suffixes():
    assert set(IMAGE_SUFFIXES) == {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"}


# --------------------------------------------------------------------------------------------
# Sample images


def test_samples_are_present_small_and_consistent():
    clean = load_image(SAMPLES / "astronaut_clean.png")
    noisy = load_image(SAMPLES / "astronaut_noisy.png")
    small = load_image(SAMPLES / "astronaut_blurry_small.png")
    assert clean.rgb.shape == noisy.rgb.shape == (3, 256, 256)
    assert small.rgb.shape == (3, 64, 64)
    mse = torch.mean((clean.rgb - noisy.rgb) ** 2)
    assert 20.0 < float(10 * torch.log10(1 / mse)) < 21.2  # sigma 25/255, clipped
    assert float(torch.mean((clean.rgb[:, ::4, ::4] - small.rgb) ** 2)) < 0.01


def test_samples_are_reproduced_by_their_script():
    pytest.importorskip("skimage")
    spec = importlib.util.spec_from_file_location("make_samples", SAMPLES / "make_samples.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    clean = script.clean_crop()
    made = {"astronaut_clean.png": clean, "astronaut_noisy.png": script.add_noise(clean),
            "astronaut_blurry_small.png": script.blur_and_downscale(clean)}
    for name, image in made.items():
        expected = np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)
        with Image.open(SAMPLES / name) as img:
            assert np.array_equal(np.asarray(img), expected), name
