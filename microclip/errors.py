"""The suite's error classes: one base per kind of fault a user can cause.

Every message says where (a file, a config key, a rule), what is wrong, what is allowed and
what to do. The command line prints a ``MicroclipError`` as one line and exits with 2; any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Sequence


class MicroclipError(Exception):
    """A fault in the user's input or environment, worded for the user."""


class ConfigError(MicroclipError, ValueError):
    """A configuration file or key is malformed, unknown or inconsistent."""


class DataError(MicroclipError, RuntimeError):
    """A dataset or manifest is missing, incomplete or corrupt."""


class TextError(MicroclipError, ValueError):
    """A description set, LLM answer, cache entry or text prototype file is unusable."""


class RunError(MicroclipError, RuntimeError):
    """A run cannot start or finish: device, checkpoint, state or output problem."""


def quoted_names(names: Sequence[object], limit: int = 20) -> str:
    """'a', 'b', ... (N more): quoted, cut after ``limit`` so a message stays one short line."""
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")
