"""Ground-truth data sets for disentanglement evaluation."""
from .dsprites import DSprites
from .ground_truth import FactorObservations

__all__ = ["DSprites", "FactorObservations"]
