"""ComfyUI entry point of the UnfoldLDM node pack.

ComfyUI imports this folder as a package. We export the classic (V1) node mappings rather than the
V3 ``comfy_entrypoint``: V1 loads in every ComfyUI release still in use (and in forks and portable
builds that lag behind), while V3 needs ``comfy_api.latest`` from late-2025 releases. Importing the
pack loads no weights; the model code is imported when a node first runs.
"""

import sys

WEB_DIRECTORY = "./web"

if "folder_paths" in sys.modules:  # imported by ComfyUI, which loads folder_paths before custom nodes
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
else:  # imported elsewhere (e.g. pytest collecting the repository): no ComfyUI, no nodes
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = {}, {}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
