"""Extras-tab ("postprocessing") scripts: the base class, the image they work on, and the runner."""

from __future__ import annotations

import dataclasses
import os

import gradio as gr

from modules import errors, shared


@dataclasses.dataclass
class PostprocessedImageSharedInfo:
    target_width: int | None = None
    target_height: int | None = None


class PostprocessedImage:
    """One image going through the Extras scripts: each ``process`` may replace ``image`` (a PIL
    image) and add to ``info`` (written into the saved file's parameters)."""

    def __init__(self, image):
        self.image = image
        self.info = {}
        self.shared = PostprocessedImageSharedInfo()
        self.extra_images = []
        self.nametags = []
        self.disable_processing = False
        self.caption = None


class ScriptPostprocessing:
    filename = None
    controls = None
    args_from = None
    args_to = None

    order = 1000
    """scripts run (and appear in the UI) in the order of this value"""

    name = None
    """the title of the script"""

    group = None
    """the gr.Row holding the script's UI"""

    def ui(self):
        """Create the Gradio components; return a dict {parameter name: component}. The values of
        those components are passed to ``process`` as keyword arguments of the same names."""

    def process(self, pp: PostprocessedImage, **args):
        """Postprocess ``pp.image`` (replace it to change the output)."""

    def process_firstpass(self, pp: PostprocessedImage, **args):
        """Called for every script before any ``process``."""

    def image_changed(self):
        pass


def wrap_call(func, filename, funcname, *args, default=None, **kwargs):
    try:
        return func(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - reported and skipped, as the WebUI does
        errors.display(e, f"calling {filename}/{funcname}")
    return default


class ScriptPostprocessingRunner:
    """Builds the Extras tab's script UIs and runs the scripts over one image."""

    def __init__(self, scripts_data=None):
        self.scripts = None
        self.ui_created = False
        if scripts_data is not None:
            self.initialize_scripts(scripts_data)

    def initialize_scripts(self, scripts_data):
        self.scripts = []
        for script_data in scripts_data:
            script = script_data.script_class()
            script.filename = script_data.path
            self.scripts.append(script)

    def scripts_in_preferred_order(self):
        if self.scripts is None:
            from modules import scripts

            self.initialize_scripts(scripts.postprocessing_scripts_data)
        order = list(shared.opts.postprocessing_operation_order)
        hidden = set(shared.opts.postprocessing_disable_in_extras) | {"Simple Upscale"}
        shown = [s for s in self.scripts if s.name not in hidden]

        def score(item):
            index, script = item
            rank = order.index(script.name) if script.name in order else len(self.scripts)
            return (rank, script.order, script.name, index)

        return [s for _, s in sorted(enumerate(shown), key=score)]

    def setup_ui(self):
        inputs = []
        for script in self.scripts_in_preferred_order():
            with gr.Row() as group:
                script.args_from = len(inputs)
                script.controls = wrap_call(script.ui, script.filename, "ui")
                for control in script.controls.values():
                    control.custom_script_source = os.path.basename(script.filename)
                inputs += list(script.controls.values())
                script.args_to = len(inputs)
            script.group = group
        self.ui_created = True
        return inputs

    def run(self, pp: PostprocessedImage, args):
        """``args``: one value per component of ``setup_ui()``'s list, in that order."""
        chosen = []
        for script in self.scripts_in_preferred_order():
            values = args[script.args_from:script.args_to]
            chosen.append((script, dict(zip(script.controls, values))))
        for script, kwargs in chosen:
            script.process_firstpass(pp, **kwargs)
        for script, kwargs in chosen:
            if shared.state.skipped:
                break
            shared.state.job = script.name
            script.process(pp, **kwargs)

    def create_args_for_run(self, scripts_args):
        """API calls: ``{script name: {parameter: value}}`` -> the positional list ``run`` takes;
        parameters not given are None."""
        if not self.ui_created:
            with gr.Blocks(analytics_enabled=False):
                self.setup_ui()
        scripts = self.scripts_in_preferred_order()
        args = [None] * max([s.args_to for s in scripts], default=0)
        for script in scripts:
            given = scripts_args.get(script.name)
            if given is not None:
                for i, name in enumerate(script.controls):
                    args[script.args_from + i] = given.get(name)
        return args
