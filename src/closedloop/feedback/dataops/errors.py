"""The one error type of data operations: a message for the user plus, where known, the
rows and columns at fault (``errors = [{"row", "column", "message"}]``).

Row numbers here are those a person sees in the file: the header is row 1, the first
data row is row 2 (JSON records count from 1)."""

from __future__ import annotations

from typing import Any

from closedloop.feedback.services import FeedbackError

__all__ = ["FeedbackError", "data_error", "rows_text"]

#: how many offending rows an error message lists
MAX_LISTED = 5


def data_error(
    message: str, *, row: int | None = None, column: str | None = None, errors: Any = None
) -> FeedbackError:
    return FeedbackError(message, list(errors) if errors else None, row=row, column=column)


def rows_text(rows: list[int], values: list[Any] | None = None) -> str:
    """``"3, 7 and 9"`` or ``"3 (“abc”), 7 (“x”)"``, at most MAX_LISTED, then "…"."""
    shown = rows[:MAX_LISTED]
    if values is not None:
        parts = [f"{r} (“{v}”)" for r, v in zip(shown, values[:MAX_LISTED], strict=False)]
    else:
        parts = [str(r) for r in shown]
    text = ", ".join(parts)
    if len(rows) > MAX_LISTED:
        text += f", … ({len(rows)})"
    return text
