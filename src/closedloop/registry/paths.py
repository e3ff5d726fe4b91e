"""Materialized paths for the org-unit tree.

A unit's path is its ancestors' ids and its own, each as six base-36 digits followed
by a dot: ``00000a.00001b.``. Descendants of a unit (itself included) are exactly the
paths in ``[path, upper(path))``, a range both SQLite and PostgreSQL answer from a
plain index (the column uses the "C" collation on PostgreSQL so the order is bytewise).
"""

from __future__ import annotations

from typing import Any

from django.db import models

SEGMENT_WIDTH = 6
SEPARATOR = "."
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_SEGMENT_LIMIT = 36**SEGMENT_WIDTH


def encode_segment(pk: int) -> str:
    # unrolled for speed: bulk imports encode one segment per new unit
    if pk < 0:
        raise ValueError("ids are positive")
    if pk >= _SEGMENT_LIMIT:
        raise ValueError("id too large for a path segment")
    d = _DIGITS
    return (
        d[pk // 60466176 % 36]
        + d[pk // 1679616 % 36]
        + d[pk // 46656 % 36]
        + d[pk // 1296 % 36]
        + d[pk // 36 % 36]
        + d[pk % 36]
        + SEPARATOR
    )


def child_path(parent_path: str, pk: int) -> str:
    return parent_path + encode_segment(pk)


def upper_bound(path: str) -> str:
    """The smallest string greater than every descendant path of ``path``."""
    return path[:-1] + chr(ord(SEPARATOR) + 1)


def ids_in_path(path: str) -> list[int]:
    return [int(seg, 36) for seg in path.split(SEPARATOR) if seg]


def depth_of(path: str) -> int:
    return path.count(SEPARATOR)


class PathField(models.CharField):
    """A CharField compared bytewise on every database (collation "C" on PostgreSQL)."""

    def db_parameters(self, connection: Any) -> dict[str, Any]:
        params = super().db_parameters(connection)
        if connection.vendor == "postgresql":
            params["collation"] = "C"
        return params
