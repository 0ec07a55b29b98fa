"""Method declarations, torch-free: importing this package registers every method in METHODS.

One import line per method; the module holds the method's hyperparameter dataclass and its
release training settings, the implementation lives in ``microclip/methods/<module>.py``.
"""

# isort: off
from microclip.methods.configs import zeroshot  # noqa: F401
from microclip.methods.configs import microclip  # noqa: F401
from microclip.methods.configs import dpa  # noqa: F401
from microclip.methods.configs import lafter  # noqa: F401
from microclip.methods.configs import must  # noqa: F401
from microclip.methods.configs import reclip  # noqa: F401
# isort: on
