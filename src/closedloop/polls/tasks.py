"""Job kinds and Celery tasks of the polls module; each part keeps its own module."""

from closedloop.polls import tasks_outbound, tasks_sync  # noqa: F401 - register job kinds
