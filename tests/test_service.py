"""What every front end reads from the core: the model list, one picture restored, the estimates
as pictures, and the defaults."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unfoldldm.api import BUNDLED_PREFIX, WEIGHTS_DIR, default_weights_path, list_models
from unfoldldm.checkpoint import read_checkpoint_info, save_checkpoint
from unfoldldm.imageio import Picture, picture_from_array
from unfoldldm.options import DEFAULT_OVERLAP, DEFAULT_PRIOR_STEPS, DEFAULT_TILE, MAX_PIXELS
from unfoldldm.pipeline import RestoreOptions
from unfoldldm.service import restore_picture
from unfoldldm.visualize import KERNEL_VIEW_SIDE, estimate_images

pytestmark = pytest.mark.usefixtures("torch_one_thread")
FAST = RestoreOptions(stages=1)


# ---- the model list ----------------------------------------------------------------------------


def test_list_models_names_bundled_and_user_files(tmp_path, make_nano_model):
    save_checkpoint(tmp_path / "mine.safetensors", make_nano_model("restore"))
    (tmp_path / "old.pt").write_bytes(b"not listed from a folder")
    entries = list_models([tmp_path])
    names = [e.name for e in entries]
    assert names[0] == "mine" and f"{BUNDLED_PREFIX}restore_small" in names and "old" not in names
    assert all(e.path.parent == WEIGHTS_DIR for e in entries if e.name.startswith(BUNDLED_PREFIX))
    assert not any(e.refused for e in entries)


def test_list_models_as_comfyui_names_them(tmp_path):
    host = {"sub/mine.safetensors": tmp_path / "mine.safetensors", "old.pt": tmp_path / "old.pt"}
    entries = list_models(host_files=host, keep_suffix=True, bundled_first=True)
    names = [e.name for e in entries]
    assert names[0] == f"{BUNDLED_PREFIX}restore_small.safetensors"  # the workflows' name
    assert names[-2:] == ["sub/mine.safetensors", "old.pt"]
    assert [e.name for e in entries if e.refused] == ["old.pt"]


def test_list_models_keeps_the_first_of_a_name(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for folder in ("a", "b"):
        (tmp_path / folder / "same.safetensors").write_bytes(b"")
    entries = list_models([tmp_path / "a", tmp_path / "b"], files=[tmp_path / "b" / "same.safetensors"])
    assert [e.path for e in entries if e.name == "same"] == [tmp_path / "b" / "same.safetensors"]


# ---- one picture -------------------------------------------------------------------------------


def test_restore_picture_keeps_the_layout(make_nano_model):
    nano = make_nano_model("restore")
    grey16 = picture_from_array((np.random.default_rng(0).random((24, 40)) * 65535).astype(np.uint16))
    done = restore_picture(nano, grey16, FAST)
    assert (done.picture.mode, done.picture.bit_depth) == ("L", 16) and done.picture.rgb.shape == (3, 24, 40)
    assert done.picture.alpha is None and done.result.stages == 1
    assert done.kernel.mode == "RGB" and done.kernel.rgb.shape[-1] >= KERNEL_VIEW_SIDE
    assert done.noise.mode == "L" and done.noise.rgb.shape == (3, 24, 40)


def test_restore_picture_upscales_alpha_for_sr(make_nano_model):
    nano_sr = make_nano_model("sr4x")
    rgba = Picture(torch.rand(3, 12, 20), torch.ones(1, 12, 20), "RGBA", 8, "<test>")
    done = restore_picture(nano_sr, rgba, FAST)
    assert done.picture.mode == "RGBA" and done.picture.rgb.shape == (3, 48, 80)
    assert done.picture.alpha.shape == (1, 48, 80) and done.picture.alpha.min() > 0.99
    assert done.noise.rgb.shape[-2:] == (12, 20)  # estimated on the input


def test_estimate_images_are_large_enough_to_read():
    kernel = torch.rand(2, 3, 21, 21)
    image, noise = estimate_images(kernel, torch.full((2, 1, 30, 50), 0.1))
    assert image.shape == (2, 3, 273, 273)  # a whole multiple of 21, at least 256: equal squares per tap
    assert torch.equal(image[:, :, ::13, ::13], kernel / kernel.amax(dim=(-2, -1), keepdim=True))
    assert noise.shape == (2, 1, 30, 50) and 0 < noise.min() <= noise.max() <= 1
    assert estimate_images(None, None) == (None, None)


# ---- one set of defaults -----------------------------------------------------------------------


@pytest.mark.parametrize("task", ["restore", "sr4x"])
def test_shipped_models_default_to_what_the_front_ends_show(task):
    from unfoldldm.archs.descriptor import describe

    path = default_weights_path(task)
    if not path.exists():
        pytest.skip(f"{path.name} is not installed")
    defaults = describe(read_checkpoint_info(path).config).defaults
    assert defaults.prior_steps == DEFAULT_PRIOR_STEPS  # the nodes' prior-steps default
    assert (defaults.tile, defaults.overlap, defaults.max_pixels) == (DEFAULT_TILE, DEFAULT_OVERLAP, MAX_PIXELS)


def test_front_ends_read_the_defaults():
    from unfoldldm.cli import build_parser
    from unfoldldm.ui.core import UIOptions

    args = build_parser().parse_args(["restore", "x.png", "-o", "out"])
    assert (args.tile, args.overlap) == (DEFAULT_TILE, DEFAULT_OVERLAP)
    ui = UIOptions()
    assert (ui.tile, ui.overlap, ui.max_pixels) == (DEFAULT_TILE, DEFAULT_OVERLAP, MAX_PIXELS)
