"""Running one grid cell: ``RunContext`` loads it, the stages adapt, score and explain it."""

from microclip.runner.context import Placement, RunContext, effective_precision, pick_device
from microclip.runner.stages import (
    adapt,
    diagnose,
    evaluate,
    explain,
    make_prototypes,
    run_record,
)

__all__ = [
    "Placement",
    "RunContext",
    "adapt",
    "diagnose",
    "effective_precision",
    "evaluate",
    "explain",
    "make_prototypes",
    "pick_device",
    "run_record",
]
