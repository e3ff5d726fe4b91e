"""Navigation that apps plug into: an app's AppConfig lists ``nav_items``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.urls import NoReverseMatch, reverse


@dataclass(frozen=True)
class NavItem:
    label: Any  # str or a lazy translation
    url_name: str
    icon: str = ""
    order: int = 100
    admin_only: bool = False


def nav_items(membership: object | None, path: str = "") -> list[dict[str, Any]]:
    items: list[NavItem] = []
    for config in apps.get_app_configs():
        items.extend(getattr(config, "nav_items", ()))
    is_admin = bool(membership is not None and getattr(membership, "is_admin", False))
    result = []
    for item in sorted(items, key=lambda i: i.order):
        if item.admin_only and not is_admin:
            continue
        try:
            url = reverse(item.url_name)
        except NoReverseMatch:
            continue
        result.append({"label": str(item.label), "url": url, "icon": item.icon, "active": False})
    # the longest matching URL is the active one (/accounts/audit/ beats /accounts/)
    matches = [entry for entry in result if entry["url"] != "/" and path.startswith(entry["url"])]
    if matches:
        max(matches, key=lambda entry: len(entry["url"]))["active"] = True
    return result
