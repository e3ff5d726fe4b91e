"""The one pagination style: ``?limit=&offset=`` in, ``{"count": N, "items": [...]}`` out."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.db.models import QuerySet
from ninja import Schema
from pydantic import Field, field_validator

T = TypeVar("T")

DEFAULT_LIMIT = 50


class PageParams(Schema):
    limit: int = Field(
        DEFAULT_LIMIT, ge=1, description="Items per page (at most API_MAX_PAGE_SIZE)."
    )
    offset: int = Field(0, ge=0, description="How many items to skip.")

    @field_validator("limit")
    @classmethod
    def _not_above_max(cls, value: int) -> int:
        maximum = settings.API_MAX_PAGE_SIZE
        if value > maximum:
            raise ValueError(f"limit must be at most {maximum}.")
        return value


class Page(Schema, Generic[T]):
    count: int
    items: list[T]


def paginate(
    qs: QuerySet[Any],
    page: PageParams,
    to_item: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    """Count, then fetch one page (evaluated here, inside the account scope)."""
    count = qs.count()
    rows: Iterable[Any] = list(qs[page.offset : page.offset + page.limit]) if count else []
    items = [to_item(row) for row in rows] if to_item else list(rows)
    return {"count": count, "items": items}
