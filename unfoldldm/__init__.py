"""UnfoldLDM: blind image restoration by deep unfolding with latent diffusion priors.

Importing this package is cheap (no torch); the public API is loaded on first use:

    import unfoldldm
    model = unfoldldm.load_model(task="restore")       # bundled default weights
    result = unfoldldm.restore(model, image)            # image: (B, C, H, W) float tensor in [0, 1]
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "load_model": ".api",
    "restore": ".pipeline",
    "RestoreOptions": ".pipeline",
    "RestoreResult": ".pipeline",
    "ModelConfig": ".config",
    "preset": ".config",
    "save_checkpoint": ".checkpoint",
    "load_checkpoint": ".checkpoint",
    "UnfoldLDMError": ".errors",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)  # relative: the package may be nested
    raise AttributeError(f"module 'unfoldldm' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
