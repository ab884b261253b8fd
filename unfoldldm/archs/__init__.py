"""Architectures: the UnfoldLDM framework and the parts it is assembled from."""

from ..config import ModelConfig
from .mgda import Degradation
from .unfolding import StageState, UnfoldLDM, UnfoldOutput


def build_model(config: ModelConfig) -> UnfoldLDM:
    """Build an (untrained) UnfoldLDM network from a config."""
    return UnfoldLDM(config)


def first_stages(model: UnfoldLDM, stages: int) -> UnfoldLDM:
    """A ``stages``-stage network with ``model``'s weights: it computes what ``model`` computes when
    stopped after ``stages`` stages (``RestoreOptions(stages=...)``). All stages share their weights but
    for a few per-stage rows (step sizes, stage embeddings), of which the first ``stages`` are kept."""
    old = model.config.stages
    if not 1 <= stages <= old:
        raise ValueError(f"stages must be from 1 to the model's {old}, got {stages}")
    cut = build_model(model.config.replace(stages=stages))
    target, state = cut.state_dict(), {}
    for name, tensor in model.state_dict().items():
        want = target[name].shape
        if tensor.shape != want:
            if tensor.shape[1:] != want[1:] or tensor.shape[0] != old:
                raise ValueError(f"{name}: shape {tuple(tensor.shape)} is not per stage (expected {tuple(want)})")
            tensor = tensor[:stages]
        state[name] = tensor
    cut.load_state_dict(state)
    reference = next(model.parameters())
    return cut.to(device=reference.device, dtype=reference.dtype).train(model.training)


__all__ = ["Degradation", "StageState", "UnfoldLDM", "UnfoldOutput", "build_model", "first_stages"]
