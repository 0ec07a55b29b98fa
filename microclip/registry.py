"""A tiny name -> object registry (timm/open_clip style): datasets, methods, backbones.

Registering under a name that exists raises; an unknown name lists the registered ones,
so a typo in config.yaml reads as "did you mean one of these".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from microclip.errors import ConfigError

T = TypeVar("T")


class UnknownNameError(ConfigError, KeyError):
    """A name that is not registered; the message lists the registered ones."""

    __str__ = Exception.__str__  # KeyError would quote the message


class Registry(Generic[T]):
    """Maps lowercase snake-case names to builders or specs."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: file the object under ``name``; a duplicate name is an error."""

        def wrap(obj: T) -> T:
            self.add(name, obj)
            return obj

        return wrap

    def add(self, name: str, obj: T) -> None:
        if name in self._entries:
            raise KeyError(f"{self.kind} '{name}' is already registered")
        self._entries[name] = obj

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(
                f"'{name}' is not a registered {self.kind}; registered: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
