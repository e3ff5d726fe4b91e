from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

from closedloop.web.navigation import NavItem


class AccountsConfig(AppConfig):
    name = "closedloop.accounts"
    label = "accounts"
    nav_items = (
        NavItem(_("Users"), "accounts:members", "people-fill", 80, admin_only=True),
        NavItem(_("Audit"), "accounts:audit", "clock-history", 90, admin_only=True),
    )
