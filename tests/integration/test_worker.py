"""A real Redis and a real Celery worker process run jobs end to end.

The worker and this test share one SQLite database file; the test enqueues jobs
through the real code in short-lived processes and reads their rows directly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from .conftest import Install, stop, wait_for

pytestmark = pytest.mark.integration

WORKER_NAME = "itest@localhost"
JOB_TIMEOUT = 60


def enqueue(install: Install, total: int, delay: float) -> int:
    code = f"""
from django.db import transaction
from closedloop.accounts.models import Account
from closedloop.jobs.runtime import enqueue_job
account, _ = Account.objects.get_or_create(slug="itest", defaults={{"name": "Integration"}})
with transaction.atomic():
    job = enqueue_job(account=account, kind="jobs.selftest",
                      params={{"total": {total}, "delay": {delay}}}, title="Self-test")
print(job.pk)
"""
    return int(install.django(code).strip().splitlines()[-1])


def cancel(install: Install, job_id: int) -> None:
    install.django(
        "from closedloop.core.tenancy import scopes_disabled\n"
        "from closedloop.jobs.models import Job\n"
        "from closedloop.jobs.runtime import cancel_job\n"
        "with scopes_disabled():\n"
        f"    cancel_job(Job.objects.get(pk={job_id}))\n"
    )


def job_row(install: Install, job_id: int) -> dict[str, object]:
    cols = ("status", "progress_done", "progress_total", "log", "error", "worker", "result")
    row = install.query(f"SELECT {', '.join(cols)} FROM jobs_job WHERE id = ?", job_id)[0]
    data = dict(zip(cols, row, strict=True))
    data["log"] = json.loads(str(data["log"] or "[]"))
    return data


def wait_status(install: Install, job_id: int, status: str) -> dict[str, object]:
    return wait_for(
        lambda: (row := job_row(install, job_id))["status"] == status and row,
        JOB_TIMEOUT,
        f"job {job_id} to be {status} (now {job_row(install, job_id)['status']})",
    )


def start_worker(install: Install, log: Path) -> subprocess.Popen[bytes]:
    before = install.query(
        "SELECT COALESCE(MAX(seen_at), '') FROM jobs_workerheartbeat WHERE hostname = ?",
        WORKER_NAME,
    )[0][0]
    process = install.spawn("worker", "--pool=solo", f"--hostname={WORKER_NAME}", log=log)

    def ready() -> bool:
        assert process.poll() is None, log.read_text()[-3000:]
        seen = install.query(
            "SELECT MAX(seen_at) FROM jobs_workerheartbeat WHERE hostname = ?", WORKER_NAME
        )[0][0]
        return bool(seen) and seen > before

    wait_for(ready, JOB_TIMEOUT, "the worker to report ready")
    return process


@pytest.fixture
def install(make_install, redis_url):
    return make_install(
        REDIS_URL=redis_url, CELERY_BROKER_URL=redis_url, WORKER_HEARTBEAT_SECONDS="1"
    )


def test_a_real_worker_runs_cancels_and_recovers_jobs(install, tmp_path):
    log = tmp_path / "worker.log"
    worker = start_worker(install, log)
    try:
        # 1. a job runs to the end, reporting progress and logging
        done_id = enqueue(install, total=8, delay=0.05)
        done = wait_status(install, done_id, "succeeded")
        assert done["progress_done"] == done["progress_total"] == 8
        assert [line["text"] for line in done["log"]] == ["Counting to 8.", "Counted to 8."]
        assert done["worker"] == WORKER_NAME
        assert json.loads(str(done["result"])) == {"counted": 8}

        # 2. a job cancelled while it runs ends "cancelled", part-way through
        slow_id = enqueue(install, total=400, delay=0.05)
        wait_for(
            lambda: int(job_row(install, slow_id)["progress_done"]) >= 3, JOB_TIMEOUT, "progress"
        )
        cancel(install, slow_id)
        cancelled = wait_status(install, slow_id, "cancelled")
        assert 3 <= int(cancelled["progress_done"]) < 400
        assert cancelled["log"][-1]["level"] == "warning"

        # 3. the worker dies mid-job (kill -9); its replacement fails the orphan
        doomed_id = enqueue(install, total=2000, delay=0.05)
        wait_for(
            lambda: int(job_row(install, doomed_id)["progress_done"]) >= 2, JOB_TIMEOUT, "progress"
        )
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        assert job_row(install, doomed_id)["status"] == "running"
        worker = start_worker(install, log)
        failed = wait_status(install, doomed_id, "failed")
        assert "worker" in str(failed["error"]) and "stopped" in str(failed["error"])

        # 4. the replacement worker runs new jobs
        after_id = enqueue(install, total=3, delay=0)
        wait_status(install, after_id, "succeeded")
    except BaseException:
        print(log.read_text()[-5000:])
        raise
    finally:
        stop(worker)
