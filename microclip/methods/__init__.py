"""Methods: torch-free declarations (``METHODS``) and the implementations they point to.

``METHODS.get(name)`` is a ``MethodDeclaration`` (hyperparameter dataclass, release training
settings, per-dataset settings file); ``.load()`` imports the implementation, an
``AdaptationMethod`` (``microclip.methods.base``), only in the process that trains.
"""

from microclip.methods import configs  # noqa: F401  (registers every declaration)
from microclip.methods.declaration import METHODS, MethodDeclaration

__all__ = ["METHODS", "MethodDeclaration"]
