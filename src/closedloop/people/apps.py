from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

from closedloop.web.navigation import NavItem


class PeopleConfig(AppConfig):
    name = "closedloop.people"
    label = "people"
    nav_items = [NavItem(_("People"), "people:list", "person-lines-fill", 20)]  # type: ignore[arg-type]

    def ready(self) -> None:
        from closedloop.people import tasks  # noqa: F401 - registers the import job
        from closedloop.people.sections import register_builtin_sections

        register_builtin_sections()
        from closedloop.people.tablesource import register_table_source

        register_table_source()
