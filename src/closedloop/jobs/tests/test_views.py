"""Jobs pages: list, detail, live progress partial, cancel and result download."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.utils import timezone

from closedloop.core.models import AuditEntry
from closedloop.core.tenancy import scopes_disabled
from closedloop.jobs.models import Job, JobStatus


def make_job(account, *, created_by=None, **fields) -> Job:
    fields.setdefault("kind", "jobs.selftest")
    fields.setdefault("title", "Count to ten")
    with scopes_disabled():
        return Job.objects.create(account=account, created_by=created_by, **fields)


@pytest.fixture
def running(world):
    return make_job(
        world.account,
        created_by=world.alice,
        status=JobStatus.RUNNING,
        progress_done=3,
        progress_total=10,
        message="Counted 3 of 10.",
        started_at=timezone.now(),
        log=[
            {"at": "2026-01-01T10:00:00+00:00", "level": "info", "text": "Counting to 10."},
            {"at": "2026-01-01T10:00:01+00:00", "level": "warning", "text": "Row 4 looks odd."},
        ],
    )


@pytest.fixture
def finished(world):
    return make_job(
        world.account,
        created_by=world.alice,
        title="Finished count",
        status=JobStatus.SUCCEEDED,
        progress_done=10,
        progress_total=10,
        result={"counted": 10},
        finished_at=timezone.now(),
    )


def test_it_lists_the_account_jobs_newest_first(world, client_for, running, finished):
    make_job(world.other_account, title="Charlie's secret job")
    r = client_for(world.alice).get("/jobs/")
    assert r.status_code == 200
    body = r.content.decode()
    assert body.index("Finished count") < body.index("Count to ten")
    assert "Charlie&#x27;s secret job" not in body and "secret job" not in body
    assert 'aria-valuenow="30"' in body


def test_it_shows_an_empty_state_without_jobs(world, client_for):
    r = client_for(world.bob).get("/jobs/")
    assert r.status_code == 200
    assert b'data-testid="empty-state"' in r.content
    assert b"No jobs yet." in r.content


def test_it_filters_by_status_and_kind(world, client_for, running, finished):
    make_job(world.account, kind="registry.import", title="Import hierarchy")
    c = client_for(world.alice)
    body = c.get("/jobs/?status=succeeded").content.decode()
    assert "Finished count" in body and "Count to ten" not in body
    body = c.get("/jobs/?kind=registry.import").content.decode()
    assert "Import hierarchy" in body and "Finished count" not in body
    body = c.get("/jobs/?status=running&kind=registry.import").content.decode()
    assert "No job matches these filters." in body


def test_an_unknown_status_filter_is_ignored(world, client_for, running, finished):
    body = client_for(world.alice).get("/jobs/?status=bogus&page=zzz").content.decode()
    assert "Finished count" in body and "Count to ten" in body


def test_the_list_paginates(world, client_for):
    for n in range(30):
        make_job(world.account, title=f"Job number {n:02d}")
    c = client_for(world.alice)
    first = c.get("/jobs/").content.decode()
    assert first.count('data-testid="job-row"') == 25
    assert "Job number 29" in first and "Page 1 of 2" in first
    second = c.get("/jobs/?page=2").content.decode()
    assert second.count('data-testid="job-row"') == 5
    assert "Job number 00" in second


def test_the_list_query_count_does_not_grow_with_jobs(
    world, client_for, django_assert_max_num_queries
):
    for n in range(25):
        make_job(world.account, created_by=world.bob, title=f"Job {n}")
    c = client_for(world.alice)
    c.get("/jobs/")  # warm the session
    with django_assert_max_num_queries(8):
        r = c.get("/jobs/")
    assert r.content.decode().count('data-testid="job-row"') == 25


def test_the_detail_shows_a_live_progress_bar_that_polls(world, client_for, running):
    r = client_for(world.alice).get(f"/jobs/{running.pk}/")
    assert r.status_code == 200
    body = r.content.decode()
    assert 'data-testid="job-progress"' in body
    assert 'role="progressbar"' in body and 'aria-valuenow="30"' in body and "30 %" in body
    assert f'hx-get="/jobs/{running.pk}/progress/"' in body
    assert 'hx-trigger="every 1s"' in body
    assert "cl-log-warning" in body and "Row 4 looks odd." in body
    assert 'data-testid="job-cancel"' in body


def test_the_progress_partial_is_a_fragment_that_keeps_polling_while_running(
    world, client_for, running
):
    r = client_for(world.alice).get(f"/jobs/{running.pk}/progress/", HTTP_HX_REQUEST="true")
    body = r.content.decode()
    assert r.status_code == 200
    assert "<html" not in body
    assert 'hx-trigger="every 1s"' in body and "30 %" in body


def test_the_progress_partial_stops_polling_once_the_job_is_finished(world, client_for, running):
    c = client_for(world.alice)
    with scopes_disabled():
        Job.objects.filter(pk=running.pk).update(
            status=JobStatus.SUCCEEDED, result={"counted": 10}, progress_done=10
        )
    body = c.get(f"/jobs/{running.pk}/progress/", HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in body and "hx-get" not in body
    assert "100 %" in body and "&quot;counted&quot;: 10" in body
    assert 'data-testid="job-cancel"' not in body


def test_the_detail_shows_error_and_pretty_result(world, client_for):
    job = make_job(
        world.account,
        status=JobStatus.FAILED,
        error="Row 7: the column 'name' is empty.",
        result={"rows": 6, "nested": {"a": 1}},
    )
    body = client_for(world.bob).get(f"/jobs/{job.pk}/").content.decode()
    assert 'data-testid="job-error"' in body and "Row 7" in body
    assert "&quot;nested&quot;: {\n    &quot;a&quot;: 1\n  }" in body
    assert "hx-trigger" not in body


def test_alice_cancels_a_queued_job_and_it_is_audited(world, client_for):
    job = make_job(world.account, created_by=world.bob)
    r = client_for(world.alice).post(f"/jobs/{job.pk}/cancel/")
    assert r.status_code == 302 and r.url == f"/jobs/{job.pk}/"
    with scopes_disabled():
        job.refresh_from_db()
        entry = AuditEntry.objects.get(object_type="jobs.job", object_id=str(job.pk))
    assert job.status == JobStatus.CANCELLED
    assert entry.actor == world.alice
    assert entry.changes["status"] == ["queued", "cancelled"]


def test_cancelling_a_running_job_asks_it_to_stop(world, client_for, running):
    client_for(world.alice).post(f"/jobs/{running.pk}/cancel/")
    with scopes_disabled():
        running.refresh_from_db()
    assert running.status == JobStatus.RUNNING and running.cancel_requested


def test_cancel_needs_post(world, client_for, running):
    assert client_for(world.alice).get(f"/jobs/{running.pk}/cancel/").status_code == 405


def test_cancelling_a_finished_job_changes_nothing(world, client_for, finished):
    r = client_for(world.alice).post(f"/jobs/{finished.pk}/cancel/", follow=True)
    assert b"already finished" in r.content
    with scopes_disabled():
        finished.refresh_from_db()
    assert finished.status == JobStatus.SUCCEEDED and not finished.cancel_requested


def test_bob_the_viewer_sees_jobs_but_cannot_cancel(world, client_for, running):
    c = client_for(world.bob)
    r = c.get(f"/jobs/{running.pk}/")
    assert r.status_code == 200 and b'data-testid="job-cancel"' not in r.content
    assert c.post(f"/jobs/{running.pk}/cancel/").status_code == 403
    with scopes_disabled():
        running.refresh_from_db()
    assert not running.cancel_requested


@pytest.mark.parametrize("suffix", ["", "progress/", "download/"])
def test_charlie_from_another_account_gets_404(world, client_for, running, suffix):
    assert client_for(world.charlie).get(f"/jobs/{running.pk}/{suffix}").status_code == 404


def test_charlie_cannot_cancel_and_gets_404(world, client_for, running):
    assert client_for(world.charlie).post(f"/jobs/{running.pk}/cancel/").status_code == 404
    with scopes_disabled():
        running.refresh_from_db()
    assert not running.cancel_requested


def test_a_missing_job_is_the_same_404(world, client_for):
    assert client_for(world.alice).get("/jobs/999999/").status_code == 404


def test_sam_the_supervisor_sees_only_his_own_jobs(world, client_for, running):
    own = make_job(world.account, created_by=world.sam, title="Sam's export")
    c = client_for(world.sam)
    body = c.get("/jobs/").content.decode()
    assert "Sam&#x27;s export" in body and "Count to ten" not in body
    assert c.get(f"/jobs/{running.pk}/").status_code == 404
    assert c.get(f"/jobs/{running.pk}/progress/").status_code == 404
    assert c.post(f"/jobs/{running.pk}/cancel/").status_code == 404
    assert c.get(f"/jobs/{own.pk}/").status_code == 200


def test_sam_can_cancel_his_own_job(world, client_for):
    own = make_job(world.account, created_by=world.sam)
    client_for(world.sam).post(f"/jobs/{own.pk}/cancel/")
    with scopes_disabled():
        own.refresh_from_db()
    assert own.status == JobStatus.CANCELLED


def test_anonymous_users_are_sent_to_login(client, world, running):
    r = client.get(f"/jobs/{running.pk}/")
    assert r.status_code == 302 and "/accounts/login/" in r.url


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    (tmp_path / "media" / "jobs").mkdir(parents=True)
    return Path(settings.MEDIA_ROOT)


def test_the_result_file_downloads(world, client_for, media):
    (media / "jobs" / "export.csv").write_text("name\nNorth\n")
    job = make_job(world.account, status=JobStatus.SUCCEEDED, result={"file": "jobs/export.csv"})
    c = client_for(world.alice)
    assert b'data-testid="job-download"' in c.get(f"/jobs/{job.pk}/").content
    r = c.get(f"/jobs/{job.pk}/download/")
    assert r.status_code == 200
    assert "attachment" in r["Content-Disposition"] and "export.csv" in r["Content-Disposition"]
    assert b"".join(r.streaming_content) == b"name\nNorth\n"


@pytest.mark.parametrize(
    "result",
    [None, {"rows": 3}, {"file": "jobs/missing.csv"}, {"file": "../secret.txt"}, {"file": 7}],
)
def test_a_download_without_a_usable_file_is_404(world, client_for, media, result):
    (media.parent / "secret.txt").write_text("outside media")
    job = make_job(world.account, status=JobStatus.SUCCEEDED, result=result)
    assert client_for(world.alice).get(f"/jobs/{job.pk}/download/").status_code == 404


def test_the_jobs_link_is_in_the_navigation(world, client_for):
    assert b'href="/jobs/"' in client_for(world.bob).get("/jobs/").content
