"""Feedback benchmarks (part of the ``feedback`` suite)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

BENCHMARKS: dict[str, Callable[[Any], list[Any]]] = {}
