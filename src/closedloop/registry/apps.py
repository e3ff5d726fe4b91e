from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

from closedloop.web.navigation import NavItem


class RegistryConfig(AppConfig):
    name = "closedloop.registry"
    label = "registry"
    nav_items = [NavItem(_("Registry"), "registry:tree", "diagram-3", 10)]
