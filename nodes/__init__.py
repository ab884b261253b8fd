"""ComfyUI adapters over the UnfoldLDM core (``..unfoldldm``): thin, typed, one node per stage part."""

from .loader import UnfoldLDMModelLoader
from .restore import UnfoldLDMRestore
from .stage_parts import (
    UnfoldLDMDegradationEstimate,
    UnfoldLDMDiffusionPrior,
    UnfoldLDMRefine,
)

NODE_CLASS_MAPPINGS = {
    "UnfoldLDMModelLoader": UnfoldLDMModelLoader,
    "UnfoldLDMDegradationEstimate": UnfoldLDMDegradationEstimate,
    "UnfoldLDMDiffusionPrior": UnfoldLDMDiffusionPrior,
    "UnfoldLDMRefine": UnfoldLDMRefine,
    "UnfoldLDMRestore": UnfoldLDMRestore,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "UnfoldLDMModelLoader": "UnfoldLDM Model Loader",
    "UnfoldLDMDegradationEstimate": "UnfoldLDM Degradation Estimate (MGDA)",
    "UnfoldLDMDiffusionPrior": "UnfoldLDM Diffusion Prior (DR-LDM)",
    "UnfoldLDMRefine": "UnfoldLDM Refine (OCFormer)",
    "UnfoldLDMRestore": "UnfoldLDM Restore",
}
