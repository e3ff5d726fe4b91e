"""Job kinds and Celery tasks of the polls module; each part keeps its own module."""

from closedloop.polls import (  # noqa: F401 - register job kinds
    ingest_jobs,  # noqa: F401
    tasks_outbound,
    tasks_sync,
)
