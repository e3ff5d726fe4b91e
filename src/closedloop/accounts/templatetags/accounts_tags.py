from __future__ import annotations

from typing import Any

from django import forms, template
from django.http import HttpRequest
from django.utils.safestring import SafeString

from closedloop.accounts.models import Membership

register = template.Library()


@register.filter
def bootstrap(field: forms.BoundField) -> SafeString:
    """Render a form field's widget with Bootstrap's classes."""
    widget = field.field.widget
    if isinstance(widget, forms.CheckboxInput):
        css = "form-check-input"
    elif isinstance(widget, forms.Select):
        css = "form-select"
    else:
        css = "form-control"
    if field.errors:
        css += " is-invalid"
    return field.as_widget(attrs={"class": css})


@register.simple_tag(takes_context=True)
def other_accounts(context: dict[str, Any]) -> list[Membership]:
    """The user's other active accounts, for the switcher (one query, kept per request)."""
    request: HttpRequest | None = context.get("request")
    if request is None or not request.user.is_authenticated:
        return []
    cached = getattr(request, "_cl_other_accounts", None)
    if cached is None:
        current = getattr(request, "account", None)
        qs = Membership.objects.filter(
            user=request.user, is_active=True, account__is_active=True
        ).select_related("account")
        if current is not None:
            qs = qs.exclude(account=current)
        cached = list(qs.order_by("account__name"))
        request._cl_other_accounts = cached  # type: ignore[attr-defined]
    return cached


@register.filter
def change_value(value: Any) -> str:
    """An audited value as short text: lists joined, empty shown as a dash."""
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, bool):
        return "✓" if value else "✗"
    return str(value)


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


@register.filter
def change_rows(entry: Any) -> list[tuple[str, Any, Any]]:
    """(field, before, after) rows worth showing: a creation hides its empty fields."""
    rows = []
    for name, pair in (entry.changes or {}).items():
        before, after = (list(pair) + [None, None])[:2] if isinstance(pair, list) else (None, pair)
        if entry.action == "create" and _is_empty(after):
            continue
        if entry.action == "delete" and _is_empty(before):
            continue
        rows.append((name, before, after))
    return rows
