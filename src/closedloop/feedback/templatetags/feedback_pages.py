"""Template helpers of the workflow pages (shared by every part's workflow templates)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import template
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

register = template.Library()


@register.simple_tag
def feedback_url(name: str, *args: Any) -> str:
    """``{% feedback_url "feedback:upload_start" workflow.pk %}``: the URL, or "#" while the
    page that owns the name is not installed (so a tab never breaks a page)."""
    try:
        return reverse(name, args=[a for a in args if a not in (None, "")])
    except NoReverseMatch:
        return "#"


@register.simple_tag(takes_context=True)
def workflow_starred(context: template.Context, workflow: Any) -> bool:
    """Whether the current user starred ``workflow`` (cached on the object)."""
    cached = getattr(workflow, "is_starred", None)
    if cached is not None:
        return bool(cached)
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return False
    starred = workflow.stars.filter(user_id=user.pk).exists()
    workflow.is_starred = starred
    return starred


@register.filter
def cell(value: Any) -> str:
    """A table value as shown in a cell: empty for NULL, local time for datetimes."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.get_current_timezone())
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e15 else str(value)
    return str(value)


@register.filter
def get_item(mapping: Any, key: Any) -> Any:
    try:
        return mapping[key]
    except (KeyError, IndexError, TypeError):
        return None


@register.filter
def can_edit_workflow(workflow: Any) -> bool:
    return getattr(workflow, "user_role", None) in ("owner", "editor")


@register.filter
def owns_workflow(workflow: Any) -> bool:
    return getattr(workflow, "user_role", None) == "owner"
