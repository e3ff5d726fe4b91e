"""Registers the feedback job kinds (each part keeps its handlers in its own module)."""

from closedloop.feedback import tasks_dataops, tasks_delivery, tasks_plugins  # noqa: F401
