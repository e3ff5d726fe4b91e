from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils.translation import get_language_bidi

from closedloop import __version__
from closedloop.web.navigation import nav_items


def shell(request: HttpRequest) -> dict[str, Any]:
    membership = getattr(request, "membership", None)
    account = getattr(request, "account", None)
    theme = getattr(account, "theme", None) or {}
    return {
        "APP_TITLE": settings.APP_TITLE,
        "LOGO_PATH": settings.LOGO_PATH,
        "THEME_PRIMARY_COLOR": theme.get("primary_color") or settings.THEME_PRIMARY_COLOR,
        "VERSION": __version__,
        "IS_RTL": get_language_bidi(),
        "current_account": account,
        "current_membership": membership,
        "nav": nav_items(membership, request.path) if membership else [],
    }
