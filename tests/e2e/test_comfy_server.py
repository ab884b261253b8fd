"""A real ComfyUI 0.3.75 on CPU, with core nodes only: the harness, the HTTP API and the page.

These tests don't need the UnfoldLDM nodes; they check the infrastructure the node tests use.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from comfy_harness import REPO_ROOT, ComfyPromptError, convert_ui_workflow_to_api
from PIL import Image

CORE_NODES = ("LoadImage", "SaveImage", "ImageScale", "ImageScaleBy", "KSampler")


def _pack_exists() -> bool:
    init = REPO_ROOT / "__init__.py"
    return init.exists() and "NODE_CLASS_MAPPINGS" in init.read_text()


@pytest.fixture(scope="module")
def small_png(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("img") / "e2e_small.png"
    Image.fromarray(rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)).save(path)
    return path


def scale_prompt(image_name: str, method: str = "nearest-exact", scale: float = 2.0) -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image_name}},
        "2": {"class_type": "ImageScaleBy",
              "inputs": {"image": ["1", 0], "upscale_method": method, "scale_by": scale}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "e2e/scaled"}},
    }


def test_server_starts_with_core_nodes(comfy):
    info = comfy.object_info()
    for name in CORE_NODES:
        assert name in info, name
    assert comfy.object_info("ImageScaleBy")["input"]["required"]["scale_by"][0] == "FLOAT"
    assert comfy.rss_mb() > 100
    print(f"\nComfyUI startup {comfy.startup_seconds:.1f} s, RSS {comfy.rss_mb():.0f} MiB, "
          f"{len(info)} node classes")


def test_pack_imports_without_failure(comfy):
    if not _pack_exists():
        pytest.skip("no node pack yet (repo-root __init__.py with NODE_CLASS_MAPPINGS)")
    log = comfy.log_text()
    assert "custom_nodes" in log or "Import times for custom nodes" in log, comfy.log_tail()
    assert not comfy.pack_import_failed(), comfy.log_tail(120)


def test_core_prompt_scales_uploaded_image(comfy, small_png):
    name = comfy.upload_image(small_png)
    assert (comfy.input_dir / name).exists()
    entry = comfy.run(scale_prompt(name), timeout=120)
    assert entry["status"]["status_str"] == "success"
    images = comfy.output_images(entry, "3")
    assert len(images) == 1 and images[0]["subfolder"] == "e2e"
    out = comfy.image(**images[0])
    assert out.size == (48, 32)
    src = np.asarray(Image.open(small_png).convert("RGB"))
    np.testing.assert_array_equal(np.asarray(out.convert("RGB")), src.repeat(2, 0).repeat(2, 1))


def test_invalid_input_is_a_node_error_then_server_still_works(comfy, small_png):
    name = comfy.upload_image(small_png)
    with pytest.raises(ComfyPromptError) as err:
        comfy.queue(scale_prompt(name, method="no-such-method"))
    body = err.value.body
    assert err.value.status == 400
    assert "2" in body["node_errors"], body
    assert body["node_errors"]["2"]["class_type"] == "ImageScaleBy"
    assert "upscale_method" in json.dumps(body["node_errors"]["2"]["errors"])
    entry = comfy.run(scale_prompt(name, scale=0.5), timeout=120)
    assert comfy.image(**comfy.output_images(entry)[0]).size == (12, 8)


def test_execution_error_is_reported_in_history(comfy):
    # Validation passes (the file name is a string) only for existing files, so use a node
    # whose failure happens while running: ImageScaleBy with a scale that gives 0 pixels.
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
        "2": {"class_type": "ImageScaleBy",
              "inputs": {"image": ["1", 0], "upscale_method": "nearest-exact", "scale_by": 0.01}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }
    entry = comfy.wait(comfy.queue(prompt), timeout=120)
    if entry["status"]["status_str"] == "success":
        pytest.skip("ComfyUI accepted a zero-size image; no execution error to check")
    err = comfy.execution_error(entry)
    assert err["node_id"] == "2" and err["node_type"] == "ImageScaleBy"
    comfy.interrupt()  # nothing running: must be harmless


UI_WORKFLOW = {
    "last_node_id": 6,
    "last_link_id": 4,
    "nodes": [
        {"id": 1, "type": "LoadImage", "mode": 0, "inputs": [],
         "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]},
                     {"name": "MASK", "type": "MASK", "links": None}],
         "widgets_values": ["IMAGE_NAME", "image"]},
        {"id": 2, "type": "Reroute", "mode": 0,
         "inputs": [{"name": "", "type": "*", "link": 1}],
         "outputs": [{"name": "", "type": "IMAGE", "links": [2]}]},
        {"id": 3, "type": "ImageScale", "mode": 0,
         "inputs": [{"name": "image", "type": "IMAGE", "link": 2},
                    {"name": "width", "type": "INT", "widget": {"name": "width"}, "link": None}],
         "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [3]}],
         "widgets_values": ["bilinear", 40, 20, "disabled"]},
        {"id": 4, "type": "Note", "mode": 0, "widgets_values": ["a note"]},
        {"id": 5, "type": "SaveImage", "mode": 0, "title": "Save it",
         "inputs": [{"name": "images", "type": "IMAGE", "link": 3}],
         "widgets_values": ["e2e/ui"]},
        {"id": 6, "type": "KSampler", "mode": 0,
         "inputs": [{"name": "model", "type": "MODEL", "link": None}],
         "widgets_values": [123, "randomize", 20, 8.0, "euler", "normal", 1.0]},
    ],
    "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"], [3, 3, 0, 5, 0, "IMAGE"]],
}


def test_convert_ui_workflow_to_api(comfy, small_png):
    info = comfy.object_info()
    api = convert_ui_workflow_to_api(UI_WORKFLOW, info)
    assert set(api) == {"1", "3", "5", "6"}  # Reroute and Note are frontend-only
    assert api["1"]["inputs"] == {"image": "IMAGE_NAME"}
    assert api["3"]["inputs"] == {"image": ["1", 0], "upscale_method": "bilinear",
                                  "width": 40, "height": 20, "crop": "disabled"}
    assert api["5"]["inputs"] == {"images": ["3", 0], "filename_prefix": "e2e/ui"}
    assert api["5"]["_meta"]["title"] == "Save it"
    assert api["6"]["inputs"] == {"seed": 123, "steps": 20, "cfg": 8.0, "sampler_name": "euler",
                                  "scheduler": "normal", "denoise": 1.0}  # "randomize" skipped
    # ...and the converted prompt runs.
    del api["6"]
    api["1"]["inputs"]["image"] = comfy.upload_image(small_png)
    entry = comfy.run(api, timeout=120)
    assert comfy.image(**comfy.output_images(entry, "5")[0]).size == (40, 20)


def _default_workflow(comfy) -> Path | None:
    """ComfyUI's default text-to-image workflow, as shipped by comfyui-workflow-templates."""
    venv = comfy.comfy_dir / "venv" / "lib"
    for pattern in ("python3*/site-packages/comfyui_workflow_templates*/**/default.json",):
        hits = sorted(venv.glob(pattern))
        if hits:
            return hits[0]
    return None


def test_convert_default_workflow(comfy):
    path = _default_workflow(comfy)
    if path is None:
        pytest.skip("comfyui-workflow-templates ships no default.json")
    info = comfy.object_info()
    api = convert_ui_workflow_to_api(json.loads(path.read_text()), info)
    types = {n["class_type"] for n in api.values()}
    assert {"CheckpointLoaderSimple", "KSampler", "CLIPTextEncode", "VAEDecode", "SaveImage"} <= types
    (ks,) = [n for n in api.values() if n["class_type"] == "KSampler"]
    assert isinstance(ks["inputs"]["seed"], int) and isinstance(ks["inputs"]["steps"], int)
    assert ks["inputs"]["sampler_name"] in info["KSampler"]["input"]["required"]["sampler_name"][0]
    # No checkpoint is installed: the only node error must be the checkpoint name.
    with pytest.raises(ComfyPromptError) as err:
        comfy.queue(api)
    errors = err.value.body["node_errors"]
    assert {e["class_type"] for e in errors.values()} == {"CheckpointLoaderSimple"}, errors


def test_page_shows_graph_canvas(comfy, browser_page, artifacts_dir):
    page = browser_page
    page.goto(comfy.url + "/", wait_until="domcontentloaded")
    page.wait_for_selector("canvas", state="visible", timeout=90_000)
    page.wait_for_function("() => window.app && window.app.graph && window.app.graph._nodes !== undefined",
                           timeout=90_000)
    page.wait_for_timeout(1500)
    shot = artifacts_dir / "comfyui_page.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    # With Comfy.TutorialCompleted set (harness default) the page loads the default graph.
    types = page.evaluate("() => window.app.graph._nodes.map(n => n.type)")
    assert "KSampler" in types and "SaveImage" in types, (types, page.console_errors)
    print(f"\npage graph: {types}; console errors: {page.console_errors[:5]}; "
          f"HTTP errors: {page.http_errors}", file=sys.stderr)
