"""The job runtime: the self-test kind, cancel, and failing jobs of dead workers."""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from django.utils import timezone

from closedloop.core.tenancy import scopes_disabled
from closedloop.jobs import runtime
from closedloop.jobs.models import Job, JobStatus, WorkerHeartbeat
from closedloop.jobs.runtime import enqueue_job, execute_job, fail_orphaned_jobs
from closedloop.jobs.tasks import SELFTEST_KIND


def load(job: Job) -> Job:
    with scopes_disabled():
        return Job.objects.get(pk=job.pk)


@pytest.fixture
def eager(monkeypatch):
    from closedloop.celery_app import app

    monkeypatch.setitem(app.conf, "task_always_eager", True)


def test_the_selftest_job_counts_to_its_total_and_logs(
    world, eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        job = enqueue_job(
            account=world.account, kind=SELFTEST_KIND, params={"total": 5, "delay": 0}
        )
    job = load(job)
    assert job.status == JobStatus.SUCCEEDED
    assert (job.progress_done, job.progress_total, job.percent) == (5, 5, 100)
    assert job.result == {"counted": 5}
    assert [line["text"] for line in job.log] == ["Counting to 5.", "Counted to 5."]


def test_the_selftest_job_can_leave_a_file(world, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    job = enqueue_job(
        account=world.account,
        kind=SELFTEST_KIND,
        params={"total": 2, "delay": 0, "write_file": True},
        run_now=True,
    )
    job = execute_job(job.pk)
    assert job.result["file"] == f"jobs/{job.pk}/selftest.txt"
    assert (tmp_path / job.result["file"]).read_text().startswith("closedloop self-test")


def test_a_cancel_request_stops_a_running_selftest(world, monkeypatch):
    job = enqueue_job(
        account=world.account, kind=SELFTEST_KIND, params={"total": 50, "delay": 0}, run_now=True
    )
    calls = {"n": 0}
    original = runtime.JobContext.check_cancelled

    def cancel_on_third_check(self):
        calls["n"] += 1
        if calls["n"] == 3:
            with scopes_disabled():
                Job.objects.filter(pk=self.job.pk).update(cancel_requested=True)
        original(self)

    monkeypatch.setattr(runtime.JobContext, "check_cancelled", cancel_on_third_check)
    job = execute_job(job.pk)
    assert job.status == JobStatus.CANCELLED
    assert job.progress_done == 2
    assert job.log[-1]["level"] == "warning"


def test_bad_selftest_params_fail_the_job_with_a_message(world):
    job = enqueue_job(
        account=world.account, kind=SELFTEST_KIND, params={"total": "many"}, run_now=True
    )
    job = execute_job(job.pk)
    assert job.status == JobStatus.FAILED
    assert "many" in job.error


def test_an_unknown_kind_cannot_be_enqueued(world):
    with pytest.raises(KeyError):
        enqueue_job(account=world.account, kind="no.such.kind")


def running_job(account, worker: str) -> Job:
    with scopes_disabled():
        return Job.objects.create(
            account=account, kind=SELFTEST_KIND, status=JobStatus.RUNNING, worker=worker
        )


def test_a_restarted_worker_fails_the_jobs_it_was_running(world):
    mine = running_job(world.account, "celery@box")
    other = running_job(world.account, "celery@elsewhere")
    assert fail_orphaned_jobs(worker="celery@box") == 1
    mine, other = load(mine), load(other)
    assert mine.status == JobStatus.FAILED and "worker" in mine.error and "stopped" in mine.error
    assert mine.finished_at is not None
    assert other.status == JobStatus.RUNNING


def test_jobs_of_a_silent_worker_are_failed_but_live_workers_keep_theirs(world):
    now = timezone.now()
    WorkerHeartbeat.objects.create(hostname="celery@dead", seen_at=now - timedelta(hours=1))
    WorkerHeartbeat.objects.create(hostname="celery@alive", seen_at=now)
    dead = running_job(world.account, "celery@dead")
    alive = running_job(world.account, "celery@alive")
    assert fail_orphaned_jobs(stale_before=now - timedelta(minutes=5)) == 1
    assert load(dead).status == JobStatus.FAILED
    assert "stopped answering" in load(dead).error
    assert load(alive).status == JobStatus.RUNNING


def heartbeat_recorded(celery_app, hostname: str) -> bool:
    """Poll for the heartbeat thread's row. SQLite's shared-cache test database answers
    "table is locked" (no busy wait) while that thread writes: retry then too."""
    from django.db import OperationalError

    for _ in range(100):
        try:
            if WorkerHeartbeat.objects.filter(hostname=hostname).exists():
                return True
        except OperationalError:
            pass
        celery_app._stop.wait(0.05)
    return False


def test_worker_ready_fails_orphans_and_starts_the_heartbeat(world, transactional_db):
    celery_app = importlib.import_module("closedloop.celery_app")

    orphan = running_job(world.account, "celery@restarted")

    class Consumer:
        hostname = "celery@restarted"

    try:
        celery_app._on_worker_ready(sender=Consumer())
        assert load(orphan).status == JobStatus.FAILED
        assert heartbeat_recorded(celery_app, "celery@restarted")
    finally:
        celery_app._on_worker_shutdown()
