"""Template filters of the poll dashboards."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.formats import number_format

register = template.Library()


@register.filter
def num(value: Any, digits: int = 2) -> str:
    """A figure rounded to ``digits`` decimals without trailing zeros ("–" when missing)."""
    if value is None or value == "":
        return "–"
    try:
        number = round(float(value), int(digits))
    except (TypeError, ValueError):
        return str(value)
    if number == int(number):
        return number_format(int(number), use_l10n=True)
    text = f"{number:.{int(digits)}f}".rstrip("0")
    return number_format(float(text), decimal_pos=len(text.split(".")[1]), use_l10n=True)
