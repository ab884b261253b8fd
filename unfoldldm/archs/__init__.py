"""Architectures: the UnfoldLDM framework and the parts it is assembled from."""

from ..config import ModelConfig
from .mgda import Degradation
from .unfolding import StageState, UnfoldLDM, UnfoldOutput


def build_model(config: ModelConfig) -> UnfoldLDM:
    """Build an (untrained) UnfoldLDM network from a config."""
    return UnfoldLDM(config)


__all__ = ["Degradation", "StageState", "UnfoldLDM", "UnfoldOutput", "build_model"]
