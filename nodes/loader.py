"""UnfoldLDM Model Loader: a checkpoint from models/unfoldldm (or the bundled defaults)."""

from __future__ import annotations

from pathlib import Path

import folder_paths

from .bridge import (
    FOLDER,
    MODEL_TYPE,
    register_model_folder,
    wrap_model,
)

register_model_folder()


def _models() -> dict[str, Path]:
    """Name -> file: the bundled weights, then the files ComfyUI lists in its ``unfoldldm`` folders
    (models/unfoldldm and extra_model_paths.yaml), named as the core names them for every front end."""
    from ..unfoldldm.api import list_models

    host = {}
    for name in folder_paths.get_filename_list(FOLDER):
        path = folder_paths.get_full_path(FOLDER, name)
        if path is not None:
            host[name] = path
    return {entry.name: entry.path for entry in list_models(host_files=host, keep_suffix=True, bundled_first=True)}


class UnfoldLDMModelLoader:
    """Loads an UnfoldLDM checkpoint (safetensors only) as a model ComfyUI manages."""

    CATEGORY = "UnfoldLDM"
    RETURN_TYPES = (MODEL_TYPE,)
    RETURN_NAMES = ("model",)
    FUNCTION = "load"
    DESCRIPTION = "Load an UnfoldLDM checkpoint from models/unfoldldm, or a bundled default."

    @classmethod
    def INPUT_TYPES(cls):
        names = list(_models())
        return {"required": {"model_name": (names, {"tooltip": "files in models/unfoldldm; .safetensors only"})}}

    def load(self, model_name: str):
        from ..unfoldldm.checkpoint import load_checkpoint
        from ..unfoldldm.errors import CheckpointError

        path = _models().get(model_name)
        if path is None:
            raise CheckpointError(f"{model_name}: not found in the models/{FOLDER} folder. Refresh the node list.")
        return (wrap_model(load_checkpoint(path), model_name),)
