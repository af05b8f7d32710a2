"""SGD with momentum, learning-rate schedules, filter renormalization and initialisation."""
from .init import SCHEMES, initialize
from .renorm import renormalize_filters
from .schedules import ReduceLROnPlateau, StepLR
from .sgd import SGD

__all__ = ["SGD", "StepLR", "ReduceLROnPlateau", "renormalize_filters", "initialize", "SCHEMES"]
