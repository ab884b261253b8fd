"""Restoration defaults and bounds, in one place: every front end reads these.

The model-dependent defaults (stages, prior steps) come from the model itself
(``model.describe().defaults``); the rest are here.
"""

from __future__ import annotations

DEFAULT_TILE = 512  # tile side in output pixels: bounded memory for any image size
DEFAULT_OVERLAP = 32  # tile overlap in output pixels
TILE_ALIGN = 16  # tiles start and end on this grid of output pixels
MIN_TILE = 64  # the smallest tile (also the floor of the out-of-memory retry)
MAX_TILE = 8192
MAX_OVERLAP = 512
MAX_PIXELS = 8192 * 8192  # larger inputs are refused unless the caller raises the limit
MAX_SEED = 2**32 - 1  # the ComfyUI nodes' seed range
MAX_PRIOR_STRENGTH = 2.0
MAX_PRIOR_STEPS = 1000
MAX_NODE_PRIOR_STEPS = 50  # the sliders of the nodes and the app
ENSEMBLE_PASSES = (1, 2, 4, 8)  # orientations a self-ensemble may average (1 = off)
MAX_STAGES = 8  # the most stages a model may have (its config is refused above this)
# What the nodes show for prior steps before a model is connected (a node's inputs are declared
# without one): the shipped models' own ``describe().defaults.prior_steps``; a test checks they agree.
DEFAULT_PRIOR_STEPS = 4
