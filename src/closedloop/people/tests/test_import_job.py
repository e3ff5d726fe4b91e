from __future__ import annotations

import io
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.urls import reverse

from closedloop.core.tenancy import account_scope, scopes_disabled
from closedloop.jobs.models import Job, JobStatus
from closedloop.jobs.runtime import enqueue_job, execute_job
from closedloop.people import importer
from closedloop.people.models import Cohort, Person
from closedloop.people.tasks import JOB_KIND

GOOD = "name,email,phone,unit,cohorts\nAnn,ann@example.org,+250788000001,NP1,Class 1\nSol,sol@example.org,,SC1,\n"
BAD = "name,email,unit\nAnn,ann@example.org,NP1\nBad,bad,NP1\nWho,,XX\n"


@pytest.fixture
def media(tmp_path):
    with override_settings(MEDIA_ROOT=tmp_path / "media"):
        yield tmp_path


@pytest.fixture
def eager(monkeypatch):
    """Run the job in this process when the transaction commits, as a worker would."""
    from closedloop.celery_app import app

    monkeypatch.setitem(app.conf, "task_always_eager", True)


def write(tmp_path, text, name="people.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def run_job(world, path, user=None, **options):
    job = enqueue_job(
        account=world.account,
        kind=JOB_KIND,
        created_by=user,
        run_now=True,
        params={"file": str(path), "filename": path.name, "options": options},
    )
    return execute_job(job.pk, worker="test")


def test_the_job_imports_and_returns_counts(world, tmp_path):
    job = run_job(world, write(tmp_path, GOOD), world.alice, unit_column="unit")
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.result["created"] == 2 and job.result["cohorts_created"] == 1
    assert "2 people created, 0 updated, 0 rows skipped." in job.message
    with account_scope(world.account):
        assert Person.objects.count() == 2


def test_a_job_with_problems_fails_lists_them_and_writes_nothing(world, tmp_path):
    job = run_job(world, write(tmp_path, BAD), world.alice, unit_column="unit")
    assert job.status == JobStatus.FAILED
    assert "2 problems found in people.csv" in job.error
    texts = [entry["text"] for entry in job.log]
    assert "Row 3, column “email”: “bad” is not a valid email address." in texts
    assert "Row 4, column “unit”: No org unit has the code “XX”." in texts
    with account_scope(world.account):
        assert not Person.objects.exists()


def test_only_valid_jobs_import_the_good_rows(world, tmp_path):
    job = run_job(world, write(tmp_path, BAD), world.alice, unit_column="unit", only_valid=True)
    assert job.status == JobStatus.SUCCEEDED
    assert (job.result["created"], job.result["skipped"]) == (1, 2)


def test_a_failure_while_writing_leaves_nothing_behind(world, tmp_path, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(importer, "_link_cohorts", explode)
    job = run_job(world, write(tmp_path, GOOD), world.alice, unit_column="unit")
    assert job.status == JobStatus.FAILED and "disk full" in job.error
    with account_scope(world.account):
        assert not Person.objects.exists()
        assert not Cohort.objects.exists()


def test_the_job_holds_a_supervisor_to_his_scope_and_refuses_viewers(world, tmp_path):
    path = write(tmp_path, GOOD)
    job = run_job(world, path, world.sam, unit_column="unit")
    assert job.status == JobStatus.FAILED
    assert any("outside the part of the registry you supervise" in e["text"] for e in job.log)
    job = run_job(world, path, world.bob, unit_column="unit")
    assert job.status == JobStatus.FAILED and "not allowed" in job.error
    job = run_job(world, path, world.charlie, unit_column="unit")
    assert job.status == JobStatus.FAILED and "not allowed" in job.error


def test_unreadable_files_and_bad_options_fail_with_a_clear_message(world, tmp_path):
    job = run_job(world, tmp_path / "missing.csv", world.alice)
    assert job.status == JobStatus.FAILED and "Cannot read the file" in job.error
    job = run_job(world, write(tmp_path, 'name\n"unclosed\n'), world.alice)
    assert job.status == JobStatus.FAILED
    job = run_job(world, write(tmp_path, GOOD), world.alice, unit_match="nope")
    assert job.status == JobStatus.FAILED and "code, ref or id" in job.error
    job = run_job(world, write(tmp_path, GOOD), world.alice, name_column="nom")
    assert job.status == JobStatus.FAILED and "Column “nom” is not in the file" in job.error


# --- CLI ------------------------------------------------------------------------------


def test_the_cli_imports_and_prints_a_summary(world, tmp_path):
    out = io.StringIO()
    call_command(
        "import_people",
        str(write(tmp_path, GOOD)),
        "--account",
        "ministry-a",
        "--unit-column",
        "unit",
        "--cohorts-column",
        "cohorts",
        stdout=out,
    )
    assert re.search(r"Job \d+: 2 created, 0 updated, 0 rows skipped\.", out.getvalue())
    with scopes_disabled():
        job = Job.objects.get()
        assert job.worker == "cli" and job.account == world.account
        assert Person.objects.filter(account=world.account).count() == 2


def test_the_cli_fails_when_nothing_is_imported(world, tmp_path):
    path = write(tmp_path, BAD)
    with pytest.raises(CommandError, match="2 problems found"):
        call_command(
            "import_people",
            str(path),
            "--account",
            "ministry-a",
            "--unit-column",
            "unit",
            stdout=io.StringIO(),
        )
    with pytest.raises(CommandError, match="No account"):
        call_command("import_people", str(path), "--account", "nope", stdout=io.StringIO())
    with pytest.raises(CommandError, match="No such file"):
        call_command("import_people", str(tmp_path / "x.csv"), "--account", "ministry-a")
    with pytest.raises(CommandError, match="COLUMN=KEY"):
        call_command("import_people", str(path), "--account", "ministry-a", "--field", "oops")
    empty = write(tmp_path, "name,email\n,\n", "empty.csv")
    with pytest.raises(CommandError, match="Nothing was imported"):
        call_command("import_people", str(empty), "--account", "ministry-a", stdout=io.StringIO())


def test_the_cli_only_valid_flag(world, tmp_path):
    out = io.StringIO()
    call_command(
        "import_people",
        str(write(tmp_path, BAD)),
        "--account",
        "ministry-a",
        "--unit-column",
        "unit",
        "--only-valid",
        stdout=out,
    )
    assert "1 created, 0 updated, 2 rows skipped." in out.getvalue()


# --- upload and mapping pages ---------------------------------------------------------


def upload(client, text, name="people.csv"):
    file = SimpleUploadedFile(name, text.encode("utf-8"), content_type="text/csv")
    return client.post(reverse("people:import"), {"file": file})


def test_upload_then_map_then_the_job_runs(
    client_for, world, media, eager, django_capture_on_commit_callbacks
):
    client = client_for(world.alice)
    response = upload(client, GOOD)
    assert response.status_code == 302
    map_url = response["Location"]
    token = map_url.rstrip("/").rsplit("/", 1)[-1]
    stored = list((media / "media" / "uploads" / str(world.account.pk) / token).iterdir())
    assert [p.name for p in stored] == ["people.csv"]
    html = client.get(map_url).content.decode()
    assert 'data-testid="preview"' in html and "ann@example.org" in html
    assert '<option value="email" selected>' in html
    assert 'data-testid="no-custom-fields"' in html
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            map_url,
            {
                "name_column": "name",
                "email_column": "email",
                "phone_column": "phone",
                "unit_column": "unit",
                "unit_match": "code",
                "cohorts_column": "cohorts",
            },
        )
    with scopes_disabled():
        job = Job.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/jobs/{job.pk}/")
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.created_by == world.alice
    assert job.params["options"]["auto_map"] is False
    with account_scope(world.account):
        assert Person.objects.count() == 2


def test_the_mapping_form_refuses_a_column_used_twice(client_for, world, media):
    client = client_for(world.alice)
    map_url = upload(client, GOOD)["Location"]
    response = client.post(
        map_url, {"name_column": "name", "email_column": "name", "unit_match": "code"}
    )
    assert "Each column can have only one role." in response.content.decode()
    with scopes_disabled():
        assert not Job.objects.exists()


def test_unreadable_or_too_large_uploads_are_refused(client_for, world, media):
    client = client_for(world.alice)
    response = upload(client, "")
    assert response.status_code == 200
    response = upload(client, 'name\n"a","b"\n')
    assert "has 2 cells but the header has 1 columns" in response.content.decode()
    response = upload(client, GOOD, "people.exe")
    assert "Upload a .csv" in response.content.decode()
    with override_settings(DATAOPS_MAX_UPLOAD_SIZE=10):
        response = upload(client, GOOD)
    assert "the largest accepted is" in response.content.decode()


def test_only_editors_import_and_nobody_reads_another_accounts_upload(client_for, world, media):
    assert client_for(world.bob).get(reverse("people:import")).status_code == 403
    map_url = upload(client_for(world.alice), GOOD)["Location"]
    assert client_for(world.charlie).get(map_url).status_code == 404
    assert (
        client_for(world.alice)
        .get(reverse("people:import_map", args=["00000000-0000-0000-0000-000000000000"]))
        .status_code
        == 404
    )
    sam_url = upload(client_for(world.sam), GOOD)["Location"]
    assert client_for(world.sam).get(sam_url).status_code == 200
