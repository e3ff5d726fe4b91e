from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

from closedloop.web.navigation import NavItem


class JobsConfig(AppConfig):
    name = "closedloop.jobs"
    label = "jobs"
    verbose_name = _("Jobs")
    nav_items = [NavItem(_("Jobs"), "jobs:list", "hourglass-split", 70)]  # type: ignore[arg-type]

    def ready(self) -> None:
        # Register the job kinds defined here in every process (web, shell, worker),
        # so enqueue_job() knows them even where Celery never autodiscovers tasks.
        from closedloop.jobs import tasks  # noqa: F401
