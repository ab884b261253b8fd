"""The node pack in ComfyUI's real web page: workflow loads, extension runs, comparison appears."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _our_errors(errors: list[str]) -> list[str]:
    """Console errors caused by the pack. The frontend also tries to look our node types up in the
    online node registry, which the page's Content Security Policy blocks offline: not ours."""
    return [e for e in errors if ("unfoldldm" in e.lower() or e.startswith("pageerror"))
            and "Content Security Policy" not in e and "api.comfy.org" not in e]


def test_simple_workflow_in_the_browser(comfy, browser_page, artifacts_dir):
    # The shipped workflow as a user runs it: the bundled default weights on the sample photo.
    image = comfy.upload_image(REPO / "samples" / "astronaut_noisy.png")
    workflow = json.loads((REPO / "workflows" / "unfoldldm_simple_restore.json").read_text())
    for node in workflow["nodes"]:
        if node["type"] == "LoadImage":
            node["widgets_values"][0] = image

    page = browser_page
    page.set_viewport_size({"width": 1600, "height": 1000})  # room for the kernel and noise-map previews
    scripts = []
    page.on("response", lambda r: "/extensions/unfoldldm/" in r.url and scripts.append((r.url, r.status)))
    page.goto(comfy.url)
    page.wait_for_function("() => window.app && window.app.graph && window.app.extensions?.length > 0")
    # Our extension must not disturb the default graph (which has none of our nodes).
    assert not _our_errors(page.console_errors), page.console_errors
    assert any(url.endswith("unfoldldm.js") and status == 200 for url, status in scripts), scripts
    assert page.evaluate("() => window.app.extensions.some(e => e.name === 'UnfoldLDM.Compare')")

    page.evaluate("async (wf) => { await window.app.loadGraphData(wf); }", workflow)
    types = page.evaluate("() => window.app.graph._nodes.map(n => n.type)")
    assert {"UnfoldLDMModelLoader", "UnfoldLDMRestore", "LoadImage", "SaveImage"} <= set(types), types

    page.evaluate("async () => { await window.app.queuePrompt(0, 1); }")
    page.wait_for_function(
        "() => { const img = document.querySelector('.unfoldldm-compare img[alt=restored]');"
        " return img && img.complete && img.naturalWidth > 0; }",
        timeout=240_000,
    )
    page.wait_for_timeout(3000)  # the kernel and noise-map previews are drawn on the canvas
    page.screenshot(path=str(artifacts_dir / "comfyui_simple_restore.png"))
    assert not _our_errors(page.console_errors), page.console_errors

    # A picture of every other shipped workflow, zoomed to fit, for the README.
    for name in ("unfoldldm_per_stage_chain", "unfoldldm_restore_then_upscale_x4", "unfoldldm_restore_then_sd_img2img"):
        graph = json.loads((REPO / "workflows" / f"{name}.json").read_text())
        page.evaluate("async (wf) => { await window.app.loadGraphData(wf); }", graph)
        page.wait_for_timeout(500)  # the editor fits the view after loading; zoom afterwards
        page.evaluate(
            """(wf) => {
                const right = Math.max(...wf.nodes.map(n => n.pos[0] + 340));
                const ds = window.app.canvas.ds;
                ds.scale = Math.max(0.66, Math.min(1, 1150 / right));  // below ~0.6 nodes are drawn as boxes
                ds.offset = [110, 260];  // graph units, before scaling
                window.app.canvas.setDirty(true, true);
            }""",
            graph,
        )
        page.wait_for_timeout(500)
        page.screenshot(path=str(artifacts_dir / f"comfyui_{name.removeprefix('unfoldldm_')}.png"))
    assert not _our_errors(page.console_errors), page.console_errors
