"""The Celery application. Workers start with ``closedloop worker``."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "closedloop.settings")

app = Celery("closedloop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _fit_transport_options(sender: Celery, **_: Any) -> None:
    """kombu's SQLAlchemy transport hands every transport option to ``create_engine``,
    which rejects ``polling_interval``; keep it only for brokers that understand it."""
    if not str(sender.conf.broker_url or "").startswith("sqla+"):
        return
    options = dict(sender.conf.broker_transport_options or {})
    if options.pop("polling_interval", None) is not None:
        sender.conf.broker_transport_options = options


_stop = threading.Event()


def _beat(hostname: str, interval: int) -> None:
    from django.db import close_old_connections
    from django.utils import timezone

    from closedloop.jobs.models import WorkerHeartbeat

    while not _stop.is_set():
        try:
            WorkerHeartbeat.objects.update_or_create(
                hostname=hostname, defaults={"seen_at": timezone.now()}
            )
        except Exception:  # a locked or restarting database must not kill the thread
            pass
        finally:
            close_old_connections()
        _stop.wait(interval)


@worker_ready.connect
def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from closedloop.jobs.runtime import fail_orphaned_jobs

    hostname = getattr(sender, "hostname", "") or ""
    interval = settings.WORKER_HEARTBEAT_SECONDS
    fail_orphaned_jobs(
        worker=hostname, stale_before=timezone.now() - timedelta(seconds=interval * 5)
    )
    _stop.clear()
    threading.Thread(target=_beat, args=(hostname, interval), daemon=True).start()
    time.sleep(0)


@worker_shutdown.connect
def _on_worker_shutdown(**_: Any) -> None:
    _stop.set()
