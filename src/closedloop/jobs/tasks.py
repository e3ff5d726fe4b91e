from __future__ import annotations

import socket

from celery import shared_task
from django.utils import timezone

from closedloop.jobs.models import WorkerHeartbeat
from closedloop.jobs.runtime import execute_job


@shared_task(name="closedloop.jobs.run_job", ignore_result=True, acks_late=False)
def run_job(job_id: int) -> None:
    """Run one Job. Thin: claims the row and calls its handler."""
    hostname = getattr(run_job.request, "hostname", None) or socket.gethostname()
    execute_job(job_id, worker=hostname)


@shared_task(name="closedloop.jobs.heartbeat", ignore_result=True)
def heartbeat(hostname: str) -> None:
    WorkerHeartbeat.objects.update_or_create(
        hostname=hostname, defaults={"seen_at": timezone.now()}
    )
