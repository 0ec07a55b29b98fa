"""Check a mapping of overrides against a dataclass's fields: names and value types.

Configuration reaches a method as plain YAML values; before any job runs, every key must be
a field of the target dataclass (a method's config or ``TrainSettings``) and every value
must fit the field's annotation. Messages name the key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from functools import cache
from typing import Any, Literal, Union, get_args, get_origin


@cache
def field_types(cls: type) -> dict[str, Any]:
    """Field name -> resolved annotation (string annotations evaluated)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def field_defaults(cls: type) -> dict[str, Any]:
    """Every field's default value (all fields of the suite's dataclasses have one)."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
        else:
            raise TypeError(f"{cls.__name__}.{f.name} has no default")
    return out


def _describe(hint: Any) -> str:
    origin = get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(hint))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(hint))
    if origin is tuple:
        return f"a list of {len(get_args(hint))} numbers"
    if hint is type(None):
        return "null"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )


def value_fits(hint: Any, value: Any) -> bool:
    """Whether a YAML value may stand for a field annotated ``hint``."""
    origin = get_origin(hint)
    if origin is Literal:
        return value in get_args(hint) and type(value) in {type(a) for a in get_args(hint)}
    if origin in (Union, types.UnionType):
        return any(value_fits(a, value) for a in get_args(hint))
    if origin is tuple:
        args = get_args(hint)
        return (
            isinstance(value, (list, tuple))
            and len(value) == len(args)
            and all(value_fits(a, v) for a, v in zip(args, value, strict=True))
        )
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return True  # annotations the configs do not use are not checked


def override_problems(cls: type, overrides: Mapping[str, Any], *, where: str) -> list[str]:
    """Unknown keys and ill-typed values of ``overrides`` for dataclass ``cls``."""
    types_ = field_types(cls)
    problems = []
    unknown = sorted(set(overrides) - set(types_))
    if unknown:
        problems.append(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(types_))}"
        )
    for key, value in overrides.items():
        if key in types_ and not value_fits(types_[key], value):
            problems.append(f"{where}.{key} = {value!r}: expected {_describe(types_[key])}")
    return problems


def coerce(cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """JSON/YAML spellings to field types: lists -> tuples, integers -> floats where declared."""
    types_ = field_types(cls)
    out = dict(values)
    for key, value in values.items():
        hint = types_.get(key)
        if get_origin(hint) is tuple and isinstance(value, list):
            out[key] = tuple(value)
        elif hint is float and isinstance(value, int) and not isinstance(value, bool):
            out[key] = float(value)
    return out
