"""Named registries: architectures and heads (balancers and loss terms next) by decorator.

A registry maps a name to a class. Each plug-in package (``mtlrec.models``,
``mtlrec.heads``) holds one and imports every module in its folder when first asked, so
adding an architecture or a head is one new file: its class registers itself with
``@ARCHITECTURES.register("name")``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .exceptions import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> class, filled by :meth:`register`; ``kind`` names the entries in errors.

    Args:
        kind: what an entry is, e.g. ``"architecture"``.
        package: the package whose modules register entries (imported on first lookup).
    """

    def __init__(self, kind: str, package: str) -> None:
        self.kind, self.package = kind, package
        self._entries: dict[str, T] = {}
        self._ranks: dict[str, tuple[int, int]] = {}
        self._loaded = False

    def register(self, name: str, rank: int = 1000) -> Callable[[T], T]:
        """Class decorator: register the class as ``name`` (set as its ``registered_name``);
        ``rank`` orders the listing (lower first, then registration order)."""

        def decorate(cls: T) -> T:
            if name in self._entries and self._entries[name] is not cls:
                raise ConfigError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = cls
            self._ranks[name] = (rank, len(self._ranks))
            cls.registered_name = name  # type: ignore[attr-defined]
            return cls

        return decorate

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        package = importlib.import_module(self.package)
        for module in pkgutil.iter_modules(package.__path__):
            if not module.name.startswith("_"):
                importlib.import_module(f"{self.package}.{module.name}")

    def names(self) -> list[str]:
        """Registered names, by rank, then in registration order."""
        self._load()
        return sorted(self._entries, key=self._ranks.__getitem__)

    def get(self, name: str) -> T:
        """The class registered as ``name``; ConfigError listing the valid names otherwise."""
        self._load()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ConfigError(
                f"unknown {self.kind} {name!r}; choose one of {self.names()}"
            ) from None

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, T]]:
        return [(name, self._entries[name]) for name in self.names()]
