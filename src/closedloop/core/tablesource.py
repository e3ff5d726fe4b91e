"""Table sources: how one module offers a per-person or per-org-unit table to others.

A capability module (polls, courses, collect, people) registers a :class:`TableSource`;
the feedback module lists them and merges one like an uploaded file. Modules never
import each other: they meet here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class SourceColumn:
    name: str
    type: str  # "string" | "integer" | "double" | "boolean" | "datetime"
    is_key: bool = False
    description: str = ""


class TableSource(Protocol):
    """What a module implements to offer a table."""

    key: str
    title: str

    def columns(self, *, account: Any, params: dict[str, Any]) -> list[SourceColumn]: ...

    def rows(
        self, *, account: Any, membership: Any, params: dict[str, Any]
    ) -> Iterator[dict[str, Any]]: ...


@dataclass
class _Registry:
    sources: dict[str, TableSource] = field(default_factory=dict)

    def register(self, source: TableSource) -> TableSource:
        if source.key in self.sources:
            raise ValueError(f"table source {source.key!r} registered twice")
        self.sources[source.key] = source
        return source

    def get(self, key: str) -> TableSource:
        try:
            return self.sources[key]
        except KeyError:
            raise LookupError(f"no table source {key!r}") from None

    def all(self) -> Iterable[TableSource]:
        return sorted(self.sources.values(), key=lambda s: s.title)


table_sources = _Registry()
