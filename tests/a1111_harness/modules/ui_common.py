"""The output panel of the txt2img / img2img / Extras tabs: a gallery and a row of 'Send to' buttons
(the built-in buttons' own wiring is left out: only their place in the page matters here).

The WebUI calls ``script_callbacks.after_component_callback(component, **kwargs)`` after every
component it creates (it patches Gradio's component constructor); this harness makes those calls
explicitly. Extensions use them to add their own 'Send to' button beside the built-in ones.
"""

from __future__ import annotations

import gradio as gr

from modules import script_callbacks


def _made(component, **kwargs):
    script_callbacks.after_component_callback(component, **kwargs)
    return component


def create_output_panel(tabname: str):
    """The gallery ``<tabname>_gallery`` and the buttons ``<tabname>_send_to_{img2img,inpaint,extras}``
    (no 'Send to extras' on the Extras tab itself); returns the gallery."""
    gallery = _made(gr.Gallery(label="Output", show_label=False, elem_id=f"{tabname}_gallery"),
                    elem_id=f"{tabname}_gallery")
    with gr.Row(elem_id=f"image_buttons_{tabname}"):
        for target in ["img2img", "inpaint"] + (["extras"] if tabname != "extras" else []):
            elem_id = f"{tabname}_send_to_{target}"
            _made(gr.Button(f"Send to {target}", elem_id=elem_id), elem_id=elem_id)
    return gallery
