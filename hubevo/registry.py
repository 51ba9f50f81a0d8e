"""Every name -> thing table of hubevo (strategies, backends, operators, merge methods, ...), and its one error.

A `Registry` is a read-only mapping from names to entries. An entry may be `Lazy("module:attribute")`,
imported on first use, so that validating a config imports no strategy and the `local` backend runs
without Ray installed. A name no table holds raises `UnknownNameError` with the same message
everywhere (`unknown_name`): what was asked for, the close matches, and every known name.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import TypeVar

from hubevo.errors import HubevoError, UnknownNameError

T = TypeVar("T")


def unknown_name(kind: str, name: object, known: Iterable[str], *, plural: str | None = None) -> str:
    """The one message for a name that is not in a table: what was asked, close matches, every known name."""
    known = sorted(known)
    close = difflib.get_close_matches(str(name), known, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return f"unknown {kind} {name!r}.{hint} Known {plural or kind + 's'}: {', '.join(known) or 'none'}"


@dataclass(frozen=True)
class Lazy:
    """An entry imported on first use: "package.module:attribute"."""

    path: str

    def load(self):
        module, _, attribute = self.path.partition(":")
        return getattr(importlib.import_module(module), attribute)


class Registry(MutableMapping[str, T]):
    """Names -> entries of one `kind` ("search strategy", "merge method", ...), used like a dict: `registry[name]`
    or `registry.get(name)`, an unknown name raising `UnknownNameError` (a `KeyError`).

    `missing(name, err)` turns a `ModuleNotFoundError` raised while a lazy entry imports into the error to
    raise (for an optional dependency: which extra to install).
    """

    def __init__(self, kind: str, entries: Mapping[str, T | Lazy] | Iterable[T] = (), *, plural: str | None = None,
                 missing: Callable[[str, ModuleNotFoundError], HubevoError] | None = None):
        self.kind, self.plural, self.missing = kind, plural, missing
        items = entries.items() if isinstance(entries, Mapping) else ((entry.name, entry) for entry in entries)
        self._entries: dict[str, T | Lazy] = dict(items)

    def __getitem__(self, name: str) -> T:
        if name not in self._entries:
            raise UnknownNameError(unknown_name(self.kind, name, self._entries, plural=self.plural))
        entry = self._entries[name]
        if isinstance(entry, Lazy):
            try:
                entry = self._entries[name] = entry.load()
            except ModuleNotFoundError as err:
                if self.missing is None:
                    raise
                raise self.missing(name, err) from err
        return entry

    def __setitem__(self, name: str, entry: T | Lazy) -> None:
        self._entries[name] = entry

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._entries)})"
