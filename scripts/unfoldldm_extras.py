"""UnfoldLDM in the Extras tab of Automatic1111 / Forge (a ``ScriptPostprocessing`` script).

The WebUI executes every ``scripts/*.py`` of an extension with the extension folder in front of
``sys.path`` (only while the file runs) and registers each class that subclasses
``scripts_postprocessing.ScriptPostprocessing``. The Extras tab then shows ``ui()``'s components and
calls ``process(pp, **values)`` for every image, with the values keyed as ``ui()`` returned them.

Order: the WebUI runs Extras scripts sorted by the "postprocessing operation order" setting, then by
``order``. The built-in upscalers use 1000 ("Upscale"; "Simple Upscale", used in the txt2img /
img2img postprocessing, 900), face restorers 2000 and 3000. UnfoldLDM uses 800, so that it comes
first by default: it undoes noise, blur and compression on the pixels as they came in, before an
upscaler enlarges (and sharpens) those defects; an x4 UnfoldLDM model is itself the upscaler. The
setting still lets users put it anywhere.

Errors: a script that raises in ``process`` stops the Extras run, and the WebUI shows
``<ExceptionType>: <message>`` under the output (and the traceback in the console), as it does for
its own scripts (e.g. an unknown upscaler). UnfoldLDM's user errors (a damaged or pickle model file,
an image too large) are raised that way with a message saying what to do. The Interrupt button
(``shared.state.interrupted``) stops a restoration between tiles; the image is then left as it was.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the extension folder: holds the `unfoldldm` package
if str(ROOT) not in sys.path:  # the WebUI puts it there while this file loads; other hosts may not
    sys.path.insert(0, str(ROOT))

import gradio as gr  # noqa: E402
from modules import devices, paths, script_callbacks, scripts_postprocessing, shared  # noqa: E402
from PIL import Image  # noqa: E402

from unfoldldm.errors import RestorationInterrupted, UnfoldLDMError  # noqa: E402
from unfoldldm.imageio import picture_from_pil, picture_to_pil  # noqa: E402
from unfoldldm.limits import ensemble_from_widget  # noqa: E402
from unfoldldm.options import ENSEMBLE_PASSES, MAX_STAGES  # noqa: E402
from unfoldldm.pipeline import RestoreOptions  # noqa: E402
from unfoldldm.service import restore_picture  # noqa: E402
from unfoldldm.ui.core import (  # noqa: E402
    ModelRegistry,
    folder_registry,
    forget_folder_registries,
    host_device_and_dtype,
    load_from_folder,
)

try:
    from modules.ui_components import FormRow
except ImportError:  # a host without the WebUI's layout helpers
    FormRow = gr.Row

MODEL_FOLDER = "UnfoldLDM"


def models_dir() -> Path:
    """``<WebUI models folder>/UnfoldLDM`` (read when needed: hosts set it during start-up)."""
    return Path(paths.models_path) / MODEL_FOLDER


def registry() -> ModelRegistry:
    """This folder's checkpoints and the bundled defaults; one cached model for the whole WebUI."""
    return folder_registry(models_dir())


def load(name: str):
    """The model called ``name`` on the WebUI's device (cached, shared with the UnfoldLDM tab)."""
    return load_from_folder(models_dir(), name, *host_device_and_dtype(devices))


def restore_image(model, image: Image.Image, stages: int | None, ensemble: int = 1) -> Image.Image:
    """Restore a Pillow image with the WebUI's Interrupt button and progress bar wired in. The result
    keeps the colour layout (greyscale, alpha); an x4 model returns it four times larger. ``ensemble``:
    orientations averaged (1, 2, 4 or 8)."""
    state = shared.state

    def progress(done: int, total: int) -> None:
        state.sampling_steps, state.sampling_step = total, done

    defaults = model.describe().defaults  # as the command line: tiled, bounded memory for any image size
    options = RestoreOptions(stages=stages, tile=defaults.tile, overlap=defaults.overlap, ensemble=ensemble)
    restored = restore_picture(model, picture_from_pil(image, "Extras image"), options, progress,
                               lambda: bool(shared.state.interrupted))
    return picture_to_pil(restored.picture)


def blend(original: Image.Image, restored: Image.Image, visibility: float) -> Image.Image:
    """``visibility`` 1: the restored image; below 1 a mix with the original (enlarged with Lanczos to
    the restored size for super-resolution models, in the restored image's colour layout)."""
    if visibility >= 1:
        return restored
    base = original if original.mode == restored.mode else original.convert(restored.mode)
    if base.size != restored.size:
        base = base.resize(restored.size, Image.LANCZOS)
    return Image.blend(base, restored, visibility)


class UnfoldLDMPostprocessing(scripts_postprocessing.ScriptPostprocessing):
    name = "UnfoldLDM"
    order = 800

    def ui(self):
        choices = registry().names()
        with FormRow():
            enable = gr.Checkbox(value=False, label="UnfoldLDM restoration", elem_id="extras_unfoldldm_enable")
            model = gr.Dropdown(choices=choices, value=choices[0] if choices else None, label="UnfoldLDM model",
                                elem_id="extras_unfoldldm_model")
        with FormRow():
            visibility = gr.Slider(minimum=0.0, maximum=1.0, step=0.001, value=1.0, label="UnfoldLDM visibility",
                                   elem_id="extras_unfoldldm_visibility")
            stages = gr.Slider(minimum=0, maximum=MAX_STAGES, step=1, value=0,
                               label="UnfoldLDM stages (0 = all; fewer is faster)", elem_id="extras_unfoldldm_stages")
            ensemble = gr.Dropdown(choices=[str(n) for n in ENSEMBLE_PASSES], value="1",
                                   label="UnfoldLDM ensemble (orientations averaged; that many times slower)",
                                   elem_id="extras_unfoldldm_ensemble")
        return {"enable": enable, "model": model, "visibility": visibility, "stages": stages, "ensemble": ensemble}

    def process(self, pp: scripts_postprocessing.PostprocessedImage, enable=False, model=None, visibility=1.0,
                stages=0, ensemble="1"):
        # API calls leave out the parameters they do not set: they arrive as None.
        visibility = 1.0 if visibility is None else min(max(float(visibility), 0.0), 1.0)
        if not enable or visibility == 0 or pp.image is None:
            return
        try:
            net = load(model)
            n_stages = min(int(stages or 0), net.config.stages) or None
            passes = ensemble_from_widget(ensemble)
            restored = restore_image(net, pp.image, n_stages, passes)
        except RestorationInterrupted:
            print("UnfoldLDM: interrupted; the image was left as it was.", file=sys.stderr)
            return
        except UnfoldLDMError as exc:
            raise RuntimeError(f"UnfoldLDM: {exc}") from None
        pp.image = blend(pp.image, restored, visibility)
        pp.info["UnfoldLDM model"] = model
        pp.info["UnfoldLDM visibility"] = round(visibility, 3)
        if n_stages:
            pp.info["UnfoldLDM stages"] = n_stages
        if passes != 1:
            pp.info["UnfoldLDM ensemble"] = passes


def _release() -> None:
    """Before the WebUI reloads its scripts: drop the cached model (a fresh one is loaded on use)."""
    forget_folder_registries()


if hasattr(script_callbacks, "on_script_unloaded"):
    script_callbacks.on_script_unloaded(_release)
