"""Write the shipped ComfyUI workflows (UI format) and their API-format twins from one description.

    python scripts_dev/make_workflows.py        # rewrites workflows/*.json

Each workflow is a list of nodes (type, widget values) and links between their sockets; the UI file
adds the layout the graph editor needs, the API file is what ComfyUI's /prompt endpoint takes.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from unfoldldm.api import default_weights_path  # noqa: E402
from unfoldldm.checkpoint import read_checkpoint_info  # noqa: E402
from unfoldldm.options import DEFAULT_OVERLAP, DEFAULT_PRIOR_STEPS, DEFAULT_TILE  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "workflows"
RESTORE_MODEL = "[bundled] restore_small.safetensors"
SR_MODEL = "[bundled] sr4x_small.safetensors"

# Socket names and types of the nodes used here: (inputs, outputs). Widgets are listed separately.
SOCKETS = {
    "LoadImage": ([], [("IMAGE", "IMAGE"), ("MASK", "MASK")]),
    "SaveImage": ([("images", "IMAGE")], []),
    "PreviewImage": ([("images", "IMAGE")], []),
    "MaskToImage": ([("mask", "MASK")], [("IMAGE", "IMAGE")]),
    "UnfoldLDMModelLoader": ([], [("model", "UNFOLDLDM_MODEL")]),
    "UnfoldLDMRestore": ([("model", "UNFOLDLDM_MODEL"), ("image", "IMAGE")],
                         [("image", "IMAGE"), ("kernel", "IMAGE"), ("noise_map", "MASK")]),
    "UnfoldLDMDegradationEstimate": ([("model", "UNFOLDLDM_MODEL"), ("image", "IMAGE"), ("state", "UNFOLDLDM_STATE")],
                                     [("state", "UNFOLDLDM_STATE"), ("kernel", "IMAGE"), ("noise_map", "MASK")]),
    "UnfoldLDMDiffusionPrior": ([("state", "UNFOLDLDM_STATE")], [("state", "UNFOLDLDM_STATE")]),
    "UnfoldLDMRefine": ([("state", "UNFOLDLDM_STATE")], [("image", "IMAGE"), ("state", "UNFOLDLDM_STATE")]),
    "CheckpointLoaderSimple": ([], [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")]),
    "CLIPTextEncode": ([("clip", "CLIP")], [("CONDITIONING", "CONDITIONING")]),
    "VAEEncode": ([("pixels", "IMAGE"), ("vae", "VAE")], [("LATENT", "LATENT")]),
    "VAEDecode": ([("samples", "LATENT"), ("vae", "VAE")], [("IMAGE", "IMAGE")]),
    "KSampler": ([("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
                  ("latent_image", "LATENT")], [("LATENT", "LATENT")]),
}
# Widget input names in order; "+control" marks the frontend's extra control_after_generate value.
WIDGETS = {
    "LoadImage": ["image", "+upload"],
    "SaveImage": ["filename_prefix"],
    "PreviewImage": [],
    "MaskToImage": [],
    "UnfoldLDMModelLoader": ["model_name"],
    "UnfoldLDMRestore": ["stages", "prior_steps", "seed", "+control", "prior_strength", "tile_size", "overlap",
                         "ensemble"],
    "UnfoldLDMDegradationEstimate": ["tile_size", "overlap"],
    "UnfoldLDMDiffusionPrior": ["steps", "seed", "+control", "strength"],
    "UnfoldLDMRefine": ["tile_size", "overlap"],
    "CheckpointLoaderSimple": ["ckpt_name"],
    "CLIPTextEncode": ["text"],
    "VAEEncode": [],
    "VAEDecode": [],
    "KSampler": ["seed", "+control", "steps", "cfg", "sampler_name", "scheduler", "denoise"],
}


@dataclass
class Graph:
    nodes: list[dict] = field(default_factory=list)
    links: list[tuple[int, int, int, int, int, str]] = field(default_factory=list)

    def add(self, kind: str, values: list, pos: tuple[int, int], title: str | None = None) -> int:
        node_id = len(self.nodes) + 1
        self.nodes.append({"id": node_id, "type": kind, "values": values, "pos": pos, "title": title})
        return node_id

    def link(self, src: int, out_name: str, dst: int, in_name: str) -> None:
        src_kind, dst_kind = self.nodes[src - 1]["type"], self.nodes[dst - 1]["type"]
        out_slot = [n for n, _ in SOCKETS[src_kind][1]].index(out_name)
        in_slot = [n for n, _ in SOCKETS[dst_kind][0]].index(in_name)
        self.links.append((len(self.links) + 1, src, out_slot, dst, in_slot, SOCKETS[src_kind][1][out_slot][1]))

    def ui(self) -> dict:
        nodes = []
        for order, node in enumerate(self.nodes):
            inputs_spec, outputs_spec = SOCKETS[node["type"]]
            inputs = []
            for slot, (name, kind) in enumerate(inputs_spec):
                link = next((lk[0] for lk in self.links if lk[3] == node["id"] and lk[4] == slot), None)
                inputs.append({"name": name, "type": kind, "link": link})
            outputs = []
            for slot, (name, kind) in enumerate(outputs_spec):
                links = [lk[0] for lk in self.links if lk[1] == node["id"] and lk[2] == slot]
                outputs.append({"name": name, "type": kind, "links": links, "slot_index": slot})
            entry = {
                "id": node["id"], "type": node["type"], "pos": list(node["pos"]), "size": [320, 150],
                "flags": {}, "order": order, "mode": 0, "inputs": inputs, "outputs": outputs,
                "properties": {"Node name for S&R": node["type"]}, "widgets_values": node["values"],
            }
            if node["title"]:
                entry["title"] = node["title"]
            nodes.append(entry)
        return {
            "last_node_id": len(self.nodes), "last_link_id": len(self.links), "nodes": nodes,
            "links": [list(lk) for lk in self.links], "groups": [], "config": {}, "extra": {}, "version": 0.4,
        }

    def api(self) -> dict:
        prompt = {}
        for node in self.nodes:
            names = WIDGETS[node["type"]]
            inputs = {n: v for n, v in zip(names, node["values"]) if not n.startswith("+")}
            for _, src, out_slot, dst, in_slot, _ in self.links:
                if dst == node["id"]:
                    inputs[SOCKETS[node["type"]][0][in_slot][0]] = [str(src), out_slot]
            prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
        return prompt


TILING = [DEFAULT_TILE, DEFAULT_OVERLAP]  # the nodes' defaults
PRIOR_DEFAULTS = [DEFAULT_PRIOR_STEPS, 0, "fixed", 1.0]  # prior steps, seed (+control), strength
RESTORE_DEFAULTS = [0, *PRIOR_DEFAULTS, *TILING, "1"]  # stages, the prior's and the tiling's, ensemble off


def restore_start(g: Graph, title: str | None = None) -> tuple[int, int]:
    """Load Image + Model Loader feeding an UnfoldLDM Restore node; returns (image, restore) ids."""
    image = g.add("LoadImage", ["example.png", "image"], (0, 0))
    model = g.add("UnfoldLDMModelLoader", [RESTORE_MODEL], (0, 360))
    restore = g.add("UnfoldLDMRestore", list(RESTORE_DEFAULTS), (360, 0), title=title)
    g.link(image, "IMAGE", restore, "image")
    g.link(model, "model", restore, "model")
    return image, restore


def simple_restore() -> Graph:
    g = Graph()
    _, restore = restore_start(g)
    save = g.add("SaveImage", ["UnfoldLDM"], (720, 0))
    kernel = g.add("PreviewImage", [], (720, 360), title="MGDA kernel estimate")
    g.link(restore, "image", save, "images")
    g.link(restore, "kernel", kernel, "images")
    noise = g.add("MaskToImage", [], (360, 560), title="noise map as image")
    noise_preview = g.add("PreviewImage", [], (1080, 360), title="MGDA noise map (white = 64/255)")
    g.link(restore, "noise_map", noise, "mask")
    g.link(noise, "IMAGE", noise_preview, "images")
    return g


def per_stage_chain(stages: int | None = None) -> Graph:
    """One MGDA -> DR-LDM -> OCFormer row per stage; as many rows as the bundled model has stages."""
    if stages is None:
        stages = read_checkpoint_info(default_weights_path("restore")).config.stages
    g = Graph()
    image = g.add("LoadImage", ["example.png", "image"], (0, 0))
    model = g.add("UnfoldLDMModelLoader", [RESTORE_MODEL], (0, 360))
    state_src = None
    refine = None
    for k in range(stages):  # one row per stage
        y = 200 * k
        mgda = g.add("UnfoldLDMDegradationEstimate", list(TILING), (360, y), title=f"Stage {k + 1}: MGDA")
        prior = g.add("UnfoldLDMDiffusionPrior", list(PRIOR_DEFAULTS), (700, y), title=f"Stage {k + 1}: DR-LDM")
        refine = g.add("UnfoldLDMRefine", list(TILING), (1040, y), title=f"Stage {k + 1}: OCFormer")
        g.link(model, "model", mgda, "model")
        if state_src is None:
            g.link(image, "IMAGE", mgda, "image")
        else:
            g.link(state_src, "state", mgda, "state")
        g.link(mgda, "state", prior, "state")
        g.link(prior, "state", refine, "state")
        state_src = refine
    save = g.add("SaveImage", ["UnfoldLDM_stages"], (1380, 200 * (stages - 1)))
    g.link(refine, "image", save, "images")
    return g


def restore_then_upscale() -> Graph:
    g = Graph()
    _, restore = restore_start(g, title="Restore")
    sr_model = g.add("UnfoldLDMModelLoader", [SR_MODEL], (360, 400))
    upscale = g.add("UnfoldLDMRestore", list(RESTORE_DEFAULTS), (720, 0), title="Upscale x4")
    save = g.add("SaveImage", ["UnfoldLDM_x4"], (1080, 0))
    g.link(restore, "image", upscale, "image")
    g.link(sr_model, "model", upscale, "model")
    g.link(upscale, "image", save, "images")
    return g


def restore_then_sd_img2img() -> Graph:
    g = Graph()
    _, restore = restore_start(g)
    ckpt = g.add("CheckpointLoaderSimple", ["your_sd_checkpoint.safetensors"], (360, 400), title="Your SD checkpoint")
    positive = g.add("CLIPTextEncode", ["a sharp, detailed photograph"], (720, 400))
    negative = g.add("CLIPTextEncode", ["blurry, noisy, jpeg artifacts"], (720, 600))
    encode = g.add("VAEEncode", [], (720, 0))
    sampler = g.add("KSampler", [0, "fixed", 20, 6.0, "euler", "normal", 0.3], (1080, 0), title="img2img (denoise 0.3)")
    decode = g.add("VAEDecode", [], (1080, 400))
    save = g.add("SaveImage", ["UnfoldLDM_sd"], (1400, 400))
    g.link(restore, "image", encode, "pixels")
    g.link(ckpt, "VAE", encode, "vae")
    g.link(ckpt, "CLIP", positive, "clip")
    g.link(ckpt, "CLIP", negative, "clip")
    g.link(ckpt, "MODEL", sampler, "model")
    g.link(positive, "CONDITIONING", sampler, "positive")
    g.link(negative, "CONDITIONING", sampler, "negative")
    g.link(encode, "LATENT", sampler, "latent_image")
    g.link(sampler, "LATENT", decode, "samples")
    g.link(ckpt, "VAE", decode, "vae")
    g.link(decode, "IMAGE", save, "images")
    return g


WORKFLOWS = {
    "unfoldldm_simple_restore": simple_restore,
    "unfoldldm_per_stage_chain": per_stage_chain,
    "unfoldldm_restore_then_upscale_x4": restore_then_upscale,
    "unfoldldm_restore_then_sd_img2img": restore_then_sd_img2img,
}


def main() -> None:
    # The template browser lists workflows/*.json; the API twins live one folder down.
    (OUT / "api").mkdir(parents=True, exist_ok=True)
    for name, build in WORKFLOWS.items():
        graph = build()
        (OUT / f"{name}.json").write_text(json.dumps(graph.ui(), indent=1) + "\n")
        (OUT / "api" / f"{name}.json").write_text(json.dumps(graph.api(), indent=1) + "\n")
        print(f"wrote workflows/{name}.json and workflows/api/{name}.json ({len(graph.nodes)} nodes)")


if __name__ == "__main__":
    main()
