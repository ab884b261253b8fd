"""UnfoldLDM Model Loader: a checkpoint from models/unfoldldm (or the bundled defaults)."""

from __future__ import annotations

from pathlib import Path

import folder_paths

from .bridge import (
    BUNDLED_PREFIX,
    FOLDER,
    MODEL_TYPE,
    register_model_folder,
    wrap_model,
)

register_model_folder()


def _bundled() -> dict[str, Path]:
    weights = Path(__file__).resolve().parents[1] / "unfoldldm" / "weights"
    return {BUNDLED_PREFIX + p.name: p for p in sorted(weights.glob("*.safetensors"))}


class UnfoldLDMModelLoader:
    """Loads an UnfoldLDM checkpoint (safetensors only) as a model ComfyUI manages."""

    CATEGORY = "UnfoldLDM"
    RETURN_TYPES = (MODEL_TYPE,)
    RETURN_NAMES = ("model",)
    FUNCTION = "load"
    DESCRIPTION = "Load an UnfoldLDM checkpoint from models/unfoldldm, or a bundled default."

    @classmethod
    def INPUT_TYPES(cls):
        names = list(_bundled()) + folder_paths.get_filename_list(FOLDER)
        return {"required": {"model_name": (names, {"tooltip": "files in models/unfoldldm; .safetensors only"})}}

    def load(self, model_name: str):
        from ..unfoldldm.checkpoint import load_checkpoint
        from ..unfoldldm.errors import CheckpointError

        bundled = _bundled()
        if model_name in bundled:
            path = bundled[model_name]
        else:
            found = folder_paths.get_full_path(FOLDER, model_name)
            if found is None:
                raise CheckpointError(f"{model_name}: not found in the models/{FOLDER} folder. Refresh the node list.")
            path = Path(found)
        return (wrap_model(load_checkpoint(path), model_name),)
