from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

from closedloop.web.navigation import NavItem


class FeedbackConfig(AppConfig):
    name = "closedloop.feedback"
    label = "feedback"
    verbose_name = _("Feedback")
    nav_items = [NavItem(_("Feedback"), "feedback:workflow_list", "send-check", 40)]  # type: ignore[arg-type]

    def ready(self) -> None:
        from closedloop.core.demo import register_demo_extension
        from closedloop.feedback import tasks  # noqa: F401 - registers job kinds
        from closedloop.feedback.demo import build_feedback_demo, purge_feedback_demo

        register_demo_extension("feedback", build_feedback_demo, purge_feedback_demo)
