from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from closedloop.jobs.models import WorkerHeartbeat
from closedloop.jobs.runtime import JobContext, execute_job, register_job

SELFTEST_KIND = "jobs.selftest"
SELFTEST_MAX_TOTAL = 100_000


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


@register_job(SELFTEST_KIND)
def selftest(ctx: JobContext) -> dict[str, Any]:
    """Count to ``total``, pausing ``delay`` seconds per step, honouring cancel.

    Proves a worker runs jobs end to end (demo, health checks, integration tests).
    With ``write_file`` it also leaves a small text file as its result.
    """
    total = max(0, min(int(ctx.params.get("total", 10)), SELFTEST_MAX_TOTAL))
    delay = max(0.0, min(float(ctx.params.get("delay", 0.1)), 10.0))
    ctx.log(f"Counting to {total}.")
    ctx.progress(0, total, "Starting.", force=True)
    for step in range(1, total + 1):
        ctx.check_cancelled()
        time.sleep(delay)
        ctx.progress(step, total, f"Counted {step} of {total}.")
    ctx.log(f"Counted to {total}.")
    result: dict[str, Any] = {"counted": total}
    if ctx.params.get("write_file"):
        result["file"] = _write_selftest_file(ctx.job.pk, total)
    return result


def _write_selftest_file(job_id: int, total: int) -> str:
    relative = Path("jobs") / str(job_id) / "selftest.txt"
    target = Path(settings.MEDIA_ROOT) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(f"closedloop self-test: counted to {total}.\n", encoding="utf-8")
    return relative.as_posix()
