"""closedloop: one org-unit tree, one set of people, one job system."""

__version__ = "0.1.0"

from closedloop.celery_app import app as celery_app  # noqa: E402

__all__ = ["__version__", "celery_app"]
