"""'Send to' buttons between tabs (``modules.infotext_utils``; ``generation_parameters_copypaste``
before WebUI 1.8, still importable under that name).

A tab registers itself as a destination with ``add_paste_fields(tabname, init_img, fields)``; a
button anywhere is registered with ``register_paste_params_button(ParamBinding(...))``. After all
tabs are built, inside the page's Blocks, the WebUI calls ``connect_paste_params_buttons()``: each
button copies its source image into the destination tab's ``init_img`` (from a gallery through the
page's JavaScript ``extract_image_from_gallery``) and then runs the JavaScript ``switch_to_<tabname>``.
"""

from __future__ import annotations

import base64
import io
import sys

import gradio as gr
from PIL import Image

sys.modules["modules.generation_parameters_copypaste"] = sys.modules[__name__]  # the old name


class ParamBinding:
    def __init__(self, paste_button, tabname, source_text_component=None, source_image_component=None,
                 source_tabname=None, override_settings_component=None, paste_field_names=None):
        self.paste_button = paste_button
        self.tabname = tabname
        self.source_text_component = source_text_component
        self.source_image_component = source_image_component
        self.source_tabname = source_tabname
        self.override_settings_component = override_settings_component
        self.paste_field_names = paste_field_names or []


paste_fields: dict[str, dict] = {}
registered_param_bindings: list[ParamBinding] = []


def reset() -> None:
    paste_fields.clear()
    registered_param_bindings.clear()


def image_from_url_text(filedata):
    """What ``extract_image_from_gallery`` hands over (a data URL, or a list holding one) as a PIL image."""
    if filedata is None:
        return None
    if isinstance(filedata, list):
        if not filedata:
            return None
        filedata = filedata[0]
    if isinstance(filedata, Image.Image):
        return filedata
    if filedata.startswith("data:image/png;base64,"):
        filedata = filedata[len("data:image/png;base64,"):]
    return Image.open(io.BytesIO(base64.decodebytes(filedata.encode("utf-8"))))


def add_paste_fields(tabname, init_img, fields, override_settings_component=None) -> None:
    paste_fields[tabname] = {"init_img": init_img, "fields": fields,
                             "override_settings_component": override_settings_component}


def register_paste_params_button(binding: ParamBinding) -> None:
    registered_param_bindings.append(binding)


def _js_keyword() -> str:
    return "_js" if int(gr.__version__.split(".")[0]) < 4 else "js"


def connect_paste_params_buttons() -> None:
    for binding in registered_param_bindings:
        destination = paste_fields[binding.tabname]["init_img"]
        if binding.source_image_component is not None and destination is not None:
            gallery = isinstance(binding.source_image_component, gr.Gallery)
            binding.paste_button.click(
                fn=image_from_url_text if gallery else (lambda x: x),
                inputs=[binding.source_image_component], outputs=[destination], show_progress=False,
                **{_js_keyword(): "extract_image_from_gallery" if gallery else None},
            )
        binding.paste_button.click(fn=None, inputs=None, outputs=None, show_progress=False,
                                   **{_js_keyword(): f"switch_to_{binding.tabname}"})
