"""Methods: importing this package registers every method module in METHODS."""

from microclip.methods import dpa, lafter, microclip, must, reclip, zeroshot  # noqa: F401
from microclip.methods.base import (
    METHODS,
    AdaptationMethod,
    MethodContext,
    StepOutput,
    TrainData,
    TrainSettings,
)

__all__ = [
    "METHODS",
    "AdaptationMethod",
    "MethodContext",
    "StepOutput",
    "TrainData",
    "TrainSettings",
]
