"""UnfoldLDM: blind image restoration by deep unfolding with latent diffusion priors.

Importing this package is cheap (no torch); the public API is loaded on first use:

    import unfoldldm
    model = unfoldldm.load_model(task="restore")       # bundled default weights
    result = unfoldldm.restore(model, image)            # image: (B, C, H, W) float tensor in [0, 1]
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "load_model": "unfoldldm.api",
    "restore": "unfoldldm.pipeline",
    "RestoreOptions": "unfoldldm.pipeline",
    "RestoreResult": "unfoldldm.pipeline",
    "ModelConfig": "unfoldldm.config",
    "preset": "unfoldldm.config",
    "save_checkpoint": "unfoldldm.checkpoint",
    "load_checkpoint": "unfoldldm.checkpoint",
    "UnfoldLDMError": "unfoldldm.errors",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'unfoldldm' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
