"""The UnfoldLDM node pack inside a real ComfyUI server: nodes, workflows, errors, soak, browser."""

from __future__ import annotations

import copy
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from model_helpers import make_nano  # noqa: E402

from unfoldldm.checkpoint import save_checkpoint  # noqa: E402

WORKFLOWS = REPO / "workflows"
TRAINED = REPO / "tests" / "fixtures" / "restore_small_h200_2min.safetensors"
NODES = {
    "UnfoldLDMModelLoader": ([], ["UNFOLDLDM_MODEL"]),
    "UnfoldLDMDegradationEstimate": (["model", "tile_size", "overlap"], ["UNFOLDLDM_STATE", "IMAGE", "MASK"]),
    "UnfoldLDMDiffusionPrior": (["state", "steps", "seed", "strength"], ["UNFOLDLDM_STATE"]),
    "UnfoldLDMRefine": (["state", "tile_size", "overlap"], ["IMAGE", "UNFOLDLDM_STATE"]),
    "UnfoldLDMRestore": (["model", "image", "stages", "prior_steps", "seed", "prior_strength", "tile_size", "overlap",
                          "ensemble"],
                         ["IMAGE", "IMAGE", "MASK"]),
}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def pack(comfy, tmp_path_factory):
    """Models in models/unfoldldm and a test image uploaded; returns the names to use."""
    comfy.models_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(TRAINED, comfy.models_dir / "restore_test.safetensors")
    save_checkpoint(comfy.models_dir / "sr4x_nano.safetensors", make_nano("sr4x"))
    (comfy.models_dir / "old_model.pt").write_bytes(b"\x80\x04not really a pickle")
    tmp = tmp_path_factory.mktemp("inputs")
    clean = np.asarray(Image.open(REPO / "samples" / "astronaut_clean.png").convert("RGB"))[64:192, 64:192]
    noisy = np.asarray(Image.open(REPO / "samples" / "astronaut_noisy.png").convert("RGB"))[64:192, 64:192]
    Image.fromarray(noisy).save(tmp / "noisy.png")
    Image.fromarray(clean[::4, ::4]).save(tmp / "small.png")
    return {
        "restore": "restore_test.safetensors", "sr": "sr4x_nano.safetensors",
        "noisy": comfy.upload_image(tmp / "noisy.png"), "small": comfy.upload_image(tmp / "small.png"),
        "clean": clean, "noisy_pixels": noisy,
    }


def api_workflow(name: str, **substitutions) -> dict:
    """A shipped API-format workflow with model and image names replaced."""
    prompt = json.loads((WORKFLOWS / "api" / f"{name}.json").read_text())
    for node in prompt.values():
        inputs = node["inputs"]
        if node["class_type"] == "UnfoldLDMModelLoader":
            inputs["model_name"] = substitutions["sr"] if "sr4x" in inputs["model_name"] else substitutions["restore"]
        if node["class_type"] == "LoadImage":
            inputs["image"] = substitutions["image"]
        if node["class_type"] in ("UnfoldLDMRestore", "UnfoldLDMDegradationEstimate", "UnfoldLDMRefine"):
            inputs["tile_size"] = substitutions.get("tile", inputs["tile_size"])
    return prompt


def saved(comfy, entry, node_id: str) -> np.ndarray:
    (record,) = comfy.output_images(entry, node_id)
    return np.asarray(comfy.image(**record).convert("RGB"))


def test_object_info_lists_every_node(comfy, pack):
    info = comfy.object_info()
    for name, (inputs, outputs) in NODES.items():
        assert name in info, f"{name} missing; server log:\n{comfy.log_tail()}"
        spec = info[name]
        declared = {**spec["input"].get("required", {}), **spec["input"].get("optional", {})}
        assert set(inputs) <= set(declared), (name, sorted(declared))
        assert list(spec["output"]) == outputs
        assert spec["category"] == "UnfoldLDM"
    models = info["UnfoldLDMModelLoader"]["input"]["required"]["model_name"][0]
    assert {"restore_test.safetensors", "sr4x_nano.safetensors", "old_model.pt"} <= set(models)
    assert not comfy.pack_import_failed()


def test_simple_workflow_restores(comfy, pack):
    prompt = api_workflow("unfoldldm_simple_restore", image=pack["noisy"], **pack)
    entry = comfy.run(prompt)
    out = saved(comfy, entry, "4")
    assert out.shape == pack["clean"].shape
    assert psnr(out, pack["clean"]) > psnr(pack["noisy_pixels"], pack["clean"]) + 1.0
    assert comfy.output_images(entry, "5")  # the kernel preview


def test_per_stage_chain_equals_the_restore_node(comfy, pack):
    chain = api_workflow("unfoldldm_per_stage_chain", image=pack["noisy"], tile=64, **pack)
    simple = api_workflow("unfoldldm_simple_restore", image=pack["noisy"], tile=64, **pack)
    # The chain has a row per stage of the bundled model; the test model may have more stages.
    simple["3"]["inputs"]["stages"] = sum(node["class_type"] == "UnfoldLDMRefine" for node in chain.values())
    save = next(key for key, node in chain.items() if node["class_type"] == "SaveImage")  # after the last stage
    chain_out = saved(comfy, comfy.run(chain), save)
    simple_out = saved(comfy, comfy.run(simple), "4")
    assert np.array_equal(chain_out, simple_out)


def test_ensemble_input_is_optional_and_averages_orientations(comfy, pack):
    from comfy_harness import ComfyPromptError

    prompt = api_workflow("unfoldldm_simple_restore", image=pack["noisy"], **pack)
    assert prompt["3"]["inputs"]["ensemble"] == "1"
    old = copy.deepcopy(prompt)
    del old["3"]["inputs"]["ensemble"]  # a workflow saved before the input existed
    eight = copy.deepcopy(prompt)
    eight["3"]["inputs"]["ensemble"] = "8"
    plain, old_out, eight_out = (saved(comfy, comfy.run(p), "4") for p in (prompt, old, eight))
    assert np.array_equal(plain, old_out)
    assert not np.array_equal(plain, eight_out)
    assert psnr(eight_out, pack["clean"]) > psnr(pack["noisy_pixels"], pack["clean"]) + 1.0
    bad = copy.deepcopy(prompt)
    bad["3"]["inputs"]["ensemble"] = "3"
    with pytest.raises(ComfyPromptError) as err:
        comfy.queue(bad)
    assert "ensemble" in json.dumps(err.value.body)


def test_restore_then_upscale_gives_four_times_the_size(comfy, pack):
    prompt = api_workflow("unfoldldm_restore_then_upscale_x4", image=pack["small"], **pack)
    prompt["2"]["inputs"]["model_name"] = pack["restore"]
    out = saved(comfy, comfy.run(prompt), "6")
    assert out.shape == (128, 128, 3)
    assert 0 <= out.min() and out.max() <= 255 and out.std() > 1


def test_sd_workflow_validates_except_for_the_missing_sd_checkpoint(comfy, pack):
    from comfy_harness import ComfyPromptError

    prompt = api_workflow("unfoldldm_restore_then_sd_img2img", image=pack["noisy"], **pack)
    with pytest.raises(ComfyPromptError) as err:
        comfy.queue(prompt)
    node_errors = (err.value.body or {}).get("node_errors", {})
    failing = {node["class_type"] for node in node_errors.values()}
    assert failing <= {"CheckpointLoaderSimple"}, node_errors
    assert "your_sd_checkpoint.safetensors" in json.dumps(err.value.body)


def _error_message(comfy, prompt) -> str:
    entry = comfy.run(prompt, raise_on_error=False)
    error = comfy.execution_error(entry)
    assert error is not None, "expected a node error"
    return error["exception_message"]


def test_bad_inputs_give_clear_node_errors_and_the_server_goes_on(comfy, pack):
    from comfy_harness import ComfyPromptError

    prompt = api_workflow("unfoldldm_simple_restore", image=pack["noisy"], **pack)
    missing = copy.deepcopy(prompt)
    missing["2"]["inputs"]["model_name"] = "no_such_model.safetensors"
    with pytest.raises(ComfyPromptError) as err:
        comfy.queue(missing)
    assert "no_such_model.safetensors" in json.dumps(err.value.body)

    pickle_model = copy.deepcopy(prompt)
    pickle_model["2"]["inputs"]["model_name"] = "old_model.pt"
    message = _error_message(comfy, pickle_model)
    assert "old_model.pt" in message and "pickle" in message.lower()

    huge = copy.deepcopy(prompt)
    huge["1"] = {"class_type": "EmptyImage", "inputs": {"width": 8200, "height": 8200, "batch_size": 1, "color": 0}}
    message = _error_message(comfy, huge)
    assert "pixel" in message.lower()

    entry = comfy.run(prompt)  # the same server still works
    assert comfy.output_images(entry, "4")


def test_interrupt_stops_a_running_restore(comfy, pack):
    prompt = api_workflow("unfoldldm_simple_restore", image=pack["noisy"], **pack)
    prompt["1"] = {"class_type": "EmptyImage", "inputs": {"width": 1536, "height": 1536, "batch_size": 1, "color": 8421504}}
    prompt["3"]["inputs"]["tile_size"] = 128
    prompt_id = comfy.queue(prompt)
    time.sleep(3)
    comfy.interrupt()
    entry = comfy.wait(prompt_id, timeout=300)
    messages = [name for name, _ in entry["status"]["messages"]]
    assert "execution_interrupted" in messages, messages
    good = api_workflow("unfoldldm_simple_restore", image=pack["noisy"], **pack)
    good["3"]["inputs"]["seed"] = 11
    assert comfy.output_images(comfy.run(good), "4")


def test_soak_thirty_restores_memory_stays_flat(comfy, pack):
    prompt = api_workflow("unfoldldm_simple_restore", image=pack["noisy"], **pack)
    rss = []
    for i in range(30):
        prompt["3"]["inputs"]["seed"] = 1000 + i  # a new seed: nothing is served from the cache
        assert comfy.output_images(comfy.run(prompt), "4")
        rss.append(comfy.rss_mb())
    print(f"server RSS after prompt 5: {rss[4]:.0f} MB, after 30: {rss[-1]:.0f} MB")
    assert rss[-1] <= 1.2 * rss[4], rss


def test_batches_are_restored_image_by_image(comfy, pack):
    prompt = api_workflow("unfoldldm_simple_restore", image=pack["noisy"], **pack)
    prompt["10"] = {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 2}}
    prompt["3"]["inputs"]["image"] = ["10", 0]
    entry = comfy.run(prompt)
    outputs = [np.asarray(comfy.image(**r).convert("RGB")) for r in comfy.output_images(entry, "4")]
    assert len(outputs) == 2 and outputs[0].shape == pack["clean"].shape
