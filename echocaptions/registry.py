"""One registry style for everything the package looks up by name.

A :class:`Registry` maps names to objects of one kind (source adapters, image
readers, executor factories, phantom layout writers). It is filled at import
time by the modules that define the objects and read by the code that picks
one by name::

    WIDGETS: Registry[type[Widget]] = Registry("widget")

    @WIDGETS.register("round")          # as a decorator
    class RoundWidget(Widget): ...

    WIDGETS.register("square", Square)  # or as a plain call
    WIDGETS.get("round")                # RoundWidget
    WIDGETS.get("oval")                 # UnknownNameError: unknown widget 'oval'; available: round, square

Names keep their registration order (``first=True`` puts a name in front), so
a registry also serves where the first match wins (image readers). Registering
the same object again under its name does nothing; a different object under a
name already taken is an error.

This is a foundation module: it imports nothing from ``echocaptions``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar, overload

__all__ = ["Registry", "RegistryError", "UnknownNameError"]

T = TypeVar("T")


class RegistryError(ValueError):
    """A name registered twice (to different objects), or a bad name."""


class UnknownNameError(RegistryError, LookupError):
    """A name looked up that is not registered; the message lists the names that are."""


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


class Registry(Generic[T]):
    """Objects of one ``kind`` by name, in registration order.

    ``error``: the exception class :meth:`get` raises for an unknown name (called
    with the message); by default :class:`UnknownNameError`, a ``ValueError`` and a
    ``LookupError``.
    """

    def __init__(self, kind: str, *, error: Callable[[str], Exception] = UnknownNameError) -> None:
        self.kind = kind
        self._error = error
        self._entries: dict[str, T] = {}

    # -- filling -----------------------------------------------------------------
    @overload
    def register(self, name: str, *, first: bool = False) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T, *, first: bool = False) -> T: ...

    def register(self, name: str, obj: T | _Missing = _MISSING, *, first: bool = False) -> T | Callable[[T], T]:
        """Register ``obj`` under ``name`` and return it; without ``obj``, a decorator that does.

        ``first``: put the name before those already registered (else it goes last).
        Registering the object a name already holds changes nothing (not even its place).
        """
        if not isinstance(name, str) or not name:
            raise RegistryError(f"a {self.kind} needs a non-empty string name, got {name!r}")
        if isinstance(obj, _Missing):

            def decorator(target: T) -> T:
                return self._add(name, target, first)

            return decorator
        return self._add(name, obj, first)

    def _add(self, name: str, obj: T, first: bool) -> T:
        if name in self._entries:
            held = self._entries[name]
            if held is obj:
                return obj
            raise RegistryError(
                f"{self.kind} {name!r} registered twice: it already names {held!r}, "
                f"so {obj!r} cannot be registered under it"
            )
        if first:
            self._entries = {name: obj, **self._entries}
        else:
            self._entries[name] = obj
        return obj

    # -- reading -----------------------------------------------------------------
    def get(self, name: str) -> T:
        """The object registered as ``name``; an unknown name raises ``error`` listing the known ones."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            available = ", ".join(sorted(self._entries)) or "none registered"
            raise self._error(f"unknown {self.kind} {name!r}; available: {available}") from None

    def names(self) -> tuple[str, ...]:
        """The registered names, in order."""
        return tuple(self._entries)

    def values(self) -> tuple[T, ...]:
        """The registered objects, in order."""
        return tuple(self._entries.values())

    def items(self) -> tuple[tuple[str, T], ...]:
        """``(name, object)`` pairs, in order."""
        return tuple(self._entries.items())

    def __contains__(self, name: object) -> bool:
        try:
            return name in self._entries
        except TypeError:  # an unhashable "name"
            return False

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        """The names, in order (as iterating a dict gives its keys)."""
        return iter(tuple(self._entries))

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._entries)!r})"
