"""Typed facts: what a plugin reads from a host, and how its output becomes a value.

Every fact of every plugin of a host runs inside the one facts exec of a reconcile (never
one command per fact); each snippet's output is cut out and handed to its own ``parse``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class Fact(Generic[T]):
    """A read-only shell snippet (``script``) and ``parse(output) -> T``.

    ``parse`` must accept any text, the empty string included (the snippet's host may lack
    the service yet): a fact never raises, it answers "nothing there"."""

    name: str
    script: str
    parse: Callable[[str], T]

    def __repr__(self) -> str:
        return f"Fact({self.name!r})"


def lines(text: str) -> frozenset[str]:
    """The non-empty lines of a fact's output, a common parse."""
    return frozenset(line for line in text.splitlines() if line.strip())


@dataclass(frozen=True)
class Facts:
    """What the host carries now, read with one command per reconcile.

    The engine's own facts are fields; a plugin's are read with ``facts[FACT]``, which
    answers ``FACT.parse("")`` for a fact that was not read (a plan built from nothing)."""

    manifest: Mapping[str, str] = field(default_factory=dict)  # tree path -> sha256
    users: Mapping[str, int] = field(default_factory=dict)  # unix user -> uid
    present: frozenset[str] = frozenset()  # bootstrap paths that exist on the host
    reload_pending: bool = False  # a previous reconcile swapped but died before reloading
    values: Mapping[str, Any] = field(default_factory=dict)  # fact name -> parsed value

    def __getitem__(self, fact: Fact[T]) -> T:
        if fact.name in self.values:
            return cast(T, self.values[fact.name])
        return fact.parse("")

    @classmethod
    def of(cls, outputs: Mapping[Fact[Any], str], **fields: Any) -> Facts:
        """Facts from raw snippet outputs, parsed as the engine would (tests, FakeRunner)."""
        return cls(values={f.name: f.parse(text) for f, text in outputs.items()}, **fields)
