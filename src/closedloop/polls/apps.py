from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

from closedloop.web.navigation import NavItem


class PollsConfig(AppConfig):
    name = "closedloop.polls"
    label = "polls"
    verbose_name = _("Polls")
    nav_items = [NavItem(_("Polls"), "polls:home", "bar-chart-line", 30)]  # type: ignore[arg-type]

    def ready(self) -> None:
        from closedloop.polls import hooks, tasks  # noqa: F401 - registers job kinds

        hooks.register_all()
