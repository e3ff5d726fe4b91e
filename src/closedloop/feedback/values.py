"""Typed cell values and the errors feedback services raise (re-exported by
:mod:`closedloop.feedback.services`)."""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _

from closedloop.feedback.models import Column, DataType

TRUE_WORDS = {"true", "yes", "1", "y", "t", "on"}
FALSE_WORDS = {"false", "no", "0", "n", "f", "off"}


class FeedbackError(Exception):
    """A change refused, with a message for the user.

    ``errors`` lists ``{"row": int | None, "column": str | None, "message": str}``; row
    numbers count data rows from 1 (the header is not a row)."""

    def __init__(
        self,
        message: Any,
        errors: list[dict[str, Any]] | None = None,
        *,
        row: int | None = None,
        column: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(str(message))
        self.message = str(message)
        self.field = field or column
        if errors is None:
            errors = [{"row": row, "column": column, "message": self.message}]
        self.errors = errors


class ConflictError(FeedbackError):
    """Someone else changed the workflow since the form was built."""


class RowNotFound(FeedbackError):
    """No row has the given key value (the API answers 404)."""


# --- values --------------------------------------------------------------------------------


def _bad(column: Column, raw: Any, what: str) -> FeedbackError:
    message = _("Column “%(column)s”: %(value)r is not %(what)s.") % {
        "column": column.name,
        "value": raw,
        "what": what,
    }
    return FeedbackError(message, column=column.name)


def parse_datetime(raw: Any) -> dt.datetime:
    """ISO date/time (``T`` or space, optional offset or ``Z``); naive values are in the
    current time zone. Returns an aware UTC datetime; ValueError if unreadable."""
    if isinstance(raw, dt.datetime):
        value = raw
    elif isinstance(raw, dt.date):
        value = dt.datetime(raw.year, raw.month, raw.day)
    else:
        value = dt.datetime.fromisoformat(str(raw).strip())
    if value.tzinfo is None:
        value = value.replace(tzinfo=zoneinfo.ZoneInfo(str(timezone.get_current_timezone())))
    return value.astimezone(dt.UTC)


def _typed(column: Column, raw: Any) -> Any:
    kind = column.data_type
    if kind == DataType.STRING:
        if isinstance(raw, (list, dict)):
            raise _bad(column, raw, _("text"))
        return str(raw)
    if kind == DataType.BOOLEAN:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, (int, float)) and raw in (0, 1):
            return bool(raw)
        text = str(raw).strip().lower()
        if text in TRUE_WORDS:
            return True
        if text in FALSE_WORDS:
            return False
        raise _bad(column, raw, _("true or false"))
    if kind in (DataType.INTEGER, DataType.DOUBLE):
        if isinstance(raw, (bool, list, dict)):
            raise _bad(column, raw, _("a number"))
        try:
            number = float(raw) if not isinstance(raw, int) else raw
        except (TypeError, ValueError):
            raise _bad(column, raw, _("a number")) from None
        if isinstance(number, float) and not math.isfinite(number):
            raise _bad(column, raw, _("a finite number"))
        if kind == DataType.DOUBLE:
            return float(number)
        if isinstance(raw, str) and raw.strip().lstrip("+-").isdigit():
            return int(raw.strip())
        if float(number).is_integer() and abs(number) < 2**63:
            return int(number)
        raise _bad(column, raw, _("a whole number"))
    if kind == DataType.DATETIME:
        if isinstance(raw, (bool, int, float, list, dict)):
            raise _bad(column, raw, _("a date and time"))
        try:
            return parse_datetime(raw)
        except (ValueError, TypeError, OverflowError, zoneinfo.ZoneInfoNotFoundError):
            raise _bad(column, raw, _("a date and time (YYYY-MM-DD HH:MM:SS)")) from None
    raise _bad(column, raw, kind)


def coerce_value(column: Column, raw: Any) -> Any:
    """A str/JSON value as the column's Python type (None for empty), checked against
    the column's categories. FeedbackError names the column."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    value = _typed(column, raw)
    if column.categories:
        allowed = [_typed(column, c) for c in column.categories]
        if value not in allowed:
            raise FeedbackError(
                _("Column “%(column)s”: %(value)r is not one of the allowed values: %(allowed)s.")
                % {
                    "column": column.name,
                    "value": raw,
                    "allowed": ", ".join(str(c) for c in column.categories),
                },
                column=column.name,
            )
    return value
