from importlib import import_module
from importlib.util import find_spec

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

from closedloop.web.navigation import NavItem

#: Modules that register job handlers (import / export); imported in every process.
JOB_MODULES = (
    "closedloop.registry.tasks",
    "closedloop.registry.importer",
    "closedloop.registry.exporter",
)


class RegistryConfig(AppConfig):
    name = "closedloop.registry"
    label = "registry"
    verbose_name = _("Registry")
    nav_items = [NavItem(_("Registry"), "registry:tree", "diagram-3", 10)]

    def ready(self) -> None:
        # enqueue_job() only knows registered kinds, so register them in the web process too.
        for module in JOB_MODULES:
            if find_spec(module) is not None:
                import_module(module)
