"""The upload / merge wizard pages, driven through the Django test client."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from closedloop.core.tenancy import account_scope
from closedloop.feedback import services
from closedloop.feedback import table as storage
from closedloop.feedback.dataops import staging, wizard
from closedloop.feedback.models import Column, TableVersion, WorkflowLog
from closedloop.jobs.models import Job
from closedloop.jobs.runtime import execute_job

MERGE_CSV = (
    "Email,midterm,score,comment\n"
    "ana@example.org,12,95,great\n"
    "ben@example.org,7,,ok\n"
    "zoe@example.org,15,80,new\n"
)


@pytest.fixture(autouse=True)
def media(settings: Any, tmp_path: Any) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def course(make_workflow: Any) -> Any:
    return make_workflow()


def url(name: str, *args: Any) -> str:
    return reverse(f"feedback:{name}", args=args)


def table_rows(workflow: Any) -> dict[str, dict[str, Any]]:
    with account_scope(workflow.account_id):
        return {r["email"]: r for r in storage.read_frame(workflow).to_dicts()}


def upload(client: Any, workflow: Any, kind: str, data: dict[str, Any]) -> str:
    """Posts step 1; returns the token of the staged upload."""
    response = client.post(url("upload_source", workflow.pk, kind), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    match = re.search(r"/data/([0-9a-f-]{36})/columns/", response["Location"])
    assert match, response["Location"]
    return match.group(1)


def csv_file(text: str | bytes, name: str = "data.csv") -> SimpleUploadedFile:
    raw = text.encode() if isinstance(text, str) else text
    return SimpleUploadedFile(name, raw, content_type="text/csv")


def columns_post(names: list[str], **overrides: dict[str, Any]) -> dict[str, str]:
    """Step 2 form data: every column loaded with its type unchanged unless overridden."""
    data: dict[str, str] = {}
    for i, name in enumerate(names):
        options = overrides.get(name, {})
        if options.get("load", True):
            data[f"load-{i}"] = "on"
        data[f"rename-{i}"] = options.get("rename", "")
        data[f"type-{i}"] = options.get("type", "")
        if options.get("key"):
            data[f"key-{i}"] = "on"
    return data


def test_a_csv_merge_goes_through_every_step(client_for: Any, world: Any, course: Any) -> None:
    client = client_for(world.alice)
    assert client.get(url("upload_start", course.pk)).status_code == 200
    assert client.get(url("upload_source", course.pk, "csv")).status_code == 200
    token = upload(
        client, course, "csv", {"file": csv_file(MERGE_CSV), "skip_top": 0, "skip_bottom": 0}
    )
    page = client.get(url("upload_columns", course.pk, token))
    assert page.status_code == 200 and "4 rows read" not in page.content.decode()
    names = ["Email", "midterm", "score", "comment"]
    response = client.post(
        url("upload_columns", course.pk, token),
        columns_post(
            names,
            Email={"rename": "email"},
            midterm={"type": "double", "rename": "Midterm"},
            comment={"load": False},
        ),
    )
    assert response["Location"] == url("upload_keys", course.pk, token)
    assert client.get(url("upload_keys", course.pk, token)).status_code == 200
    response = client.post(
        url("upload_keys", course.pk, token),
        {"left_on": "email", "right_on": "email", "how": "left"},
    )
    assert response["Location"] == url("upload_preview", course.pk, token)
    preview = client.get(url("upload_preview", course.pk, token))
    html = preview.content.decode()
    tags = {c.name: c.tag for c in preview.context["result"].columns}
    assert tags == {"email": "key", "Midterm": "renamed", "score": "update", "comment": "ignored"}
    assert 'data-tag="renamed"' in html and "Email → <strong>email</strong>" in html
    assert preview.context["result"].updated == 2 and preview.context["result"].added == 0
    assert "Midterm" not in table_rows(course)["ana@example.org"]  # nothing written yet
    response = client.post(url("upload_preview", course.pk, token), {"version": course.version})
    assert response["Location"] == url("upload_done", course.pk, token)
    done = client.get(response["Location"])
    assert "Merged: 0 rows added, 2 updated, 4 unchanged, 0 dropped." in done.content.decode()
    rows = table_rows(course)
    assert rows["ana@example.org"]["Midterm"] == 12.0 and rows["ana@example.org"]["score"] == 95.0
    assert rows["ben@example.org"]["score"] == 48.0  # empty cell does not clear
    assert "zoe@example.org" not in rows
    with account_scope(world.account):
        assert Column.objects.get(workflow=course, name="Midterm").data_type == "double"
        assert not Column.objects.filter(workflow=course, name="comment").exists()
    # the staged data is gone once written; the session held only the token
    assert not (staging.staging_root() / str(course.account_id) / token / "data.parquet").exists()
    assert client.session["feedback_upload"] == {"workflow": course.pk, "token": token}
    undo = client.post(url("upload_undo", course.pk))
    assert undo.status_code == 302
    assert "Midterm" not in table_rows(course)["ana@example.org"]


def test_a_first_upload_loads_an_empty_workflow(client_for: Any, world: Any) -> None:
    with account_scope(world.account):
        workflow = services.workflow_create(account=world.account, actor=world.alice, name="New")
    client = client_for(world.alice)
    token = upload(
        client, workflow, "csv", {"file": csv_file("sid;name;joined\n1;Ann;2024-01-02\n2;Bo;\n")}
    )
    names = ["sid", "name", "joined"]
    response = client.post(url("upload_columns", workflow.pk, token), columns_post(names))
    assert "Keep at least one key" in response.content.decode()
    response = client.post(
        url("upload_columns", workflow.pk, token), columns_post(names, sid={"key": True})
    )
    assert response["Location"] == url("upload_preview", workflow.pk, token)
    preview = client.get(response["Location"])
    assert preview.context["result"].added == 2
    client.post(url("upload_preview", workflow.pk, token))
    with account_scope(world.account):
        columns = {
            c.name: (c.data_type, c.is_key) for c in Column.objects.filter(workflow=workflow)
        }
    assert columns == {
        "sid": ("integer", True),
        "name": ("string", False),
        "joined": ("datetime", False),
    }


@pytest.mark.parametrize("how", ["outer", "inner", "left", "right"])
def test_each_merge_mode_from_the_wizard(
    client_for: Any, world: Any, course: Any, how: str
) -> None:
    client = client_for(world.alice)
    token = upload(client, course, "csv", {"file": csv_file(MERGE_CSV)})
    client.post(
        url("upload_columns", course.pk, token),
        columns_post(["Email", "midterm", "score", "comment"]),
    )
    client.post(
        url("upload_keys", course.pk, token), {"left_on": "email", "right_on": "Email", "how": how}
    )
    expected = {"outer": 7, "inner": 2, "left": 6, "right": 3}[how]
    client.post(url("upload_preview", course.pk, token))
    assert len(table_rows(course)) == expected


def test_clear_with_empty_from_the_wizard(client_for: Any, world: Any, course: Any) -> None:
    client = client_for(world.alice)
    token = upload(client, course, "csv", {"file": csv_file(MERGE_CSV)})
    client.post(
        url("upload_columns", course.pk, token),
        columns_post(["Email", "midterm", "score", "comment"]),
    )
    client.post(
        url("upload_keys", course.pk, token),
        {"left_on": "email", "right_on": "Email", "how": "left", "clear_with_empty": "on"},
    )
    client.post(url("upload_preview", course.pk, token))
    assert table_rows(course)["ben@example.org"]["score"] is None


def test_a_broken_file_is_refused_at_step_one(client_for: Any, world: Any, course: Any) -> None:
    client = client_for(world.alice)
    response = client.post(
        url("upload_source", course.pk, "csv"), {"file": csv_file('email,x\na@x.org,"open\n')}
    )
    assert response.status_code == 200
    assert (
        "Row 2 cannot be read: unexpected end of data (check the quotes)."
        in response.content.decode()
    )
    response = client.post(
        url("upload_source", course.pk, "csv"), {"file": csv_file(b"\x00\x01\x02junk" * 50)}
    )
    assert "binary data" in response.content.decode()
    response = client.post(
        url("upload_source", course.pk, "csv"), {"file": csv_file("a\n1\n"), "skip_top": -1}
    )
    assert "Enter 0 or a positive number of lines." in response.content.decode()


def test_a_type_conflict_shows_on_the_preview_and_cannot_be_confirmed(
    client_for: Any, world: Any, course: Any
) -> None:
    client = client_for(world.alice)
    token = upload(
        client, course, "csv", {"file": csv_file("email,attempts\nana@example.org,lots\n")}
    )
    client.post(url("upload_columns", course.pk, token), columns_post(["email", "attempts"]))
    client.post(
        url("upload_keys", course.pk, token),
        {"left_on": "email", "right_on": "email", "how": "outer"},
    )
    preview = client.get(url("upload_preview", course.pk, token))
    html = preview.content.decode()
    assert "Column “attempts” holds integers" in html and "rows 2 (“lots”)" in html
    assert 'data-testid="confirm"' not in html
    before = table_rows(course)
    response = client.post(url("upload_preview", course.pk, token))
    assert response["Location"] == url("upload_preview", course.pk, token)
    assert table_rows(course) == before


def test_a_type_override_that_does_not_fit_names_the_rows(
    client_for: Any, world: Any, course: Any
) -> None:
    client = client_for(world.alice)
    token = upload(
        client,
        course,
        "csv",
        {"file": csv_file("email,code\nana@example.org,12\nben@example.org,A7\n")},
    )
    response = client.post(
        url("upload_columns", course.pk, token),
        columns_post(["email", "code"], code={"type": "integer"}),
    )
    assert (
        "Column “code” holds integers, but the new data has values that are not: rows 3 (“A7”)."
        in response.content.decode()
    )


def test_large_uploads_run_as_a_job(
    client_for: Any, world: Any, course: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wizard, "JOB_THRESHOLD", 2)
    client = client_for(world.alice)
    token = upload(client, course, "csv", {"file": csv_file(MERGE_CSV)})
    client.post(
        url("upload_columns", course.pk, token),
        columns_post(["Email", "midterm", "score", "comment"]),
    )
    client.post(
        url("upload_keys", course.pk, token),
        {"left_on": "email", "right_on": "Email", "how": "outer"},
    )
    response = client.post(url("upload_preview", course.pk, token), {"version": course.version})
    match = re.search(r"/data/job/(\d+)/", response["Location"])
    assert match
    job_id = int(match.group(1))
    assert "job-live" in client.get(response["Location"]).content.decode()
    job = execute_job(job_id)
    assert job is not None and job.status == "succeeded", job.error if job else None
    assert job.result["added"] == 1
    page = client.get(response["Location"], HTTP_HX_REQUEST="true")
    assert (
        "Merged: 1 rows added" in page.content.decode()
        and 'data-testid="undo"' in page.content.decode()
    )
    assert len(table_rows(course)) == 7


def test_a_failing_job_leaves_the_table_unchanged(
    client_for: Any, world: Any, course: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wizard, "JOB_THRESHOLD", 0)
    client = client_for(world.alice)
    token = upload(client, course, "csv", {"file": csv_file("email,score\nana@example.org,1\n")})
    client.post(url("upload_columns", course.pk, token), columns_post(["email", "score"]))
    client.post(
        url("upload_keys", course.pk, token),
        {"left_on": "email", "right_on": "email", "how": "outer"},
    )
    before = table_rows(course)
    # someone else changes the workflow after the preview was built
    response = client.post(url("upload_preview", course.pk, token), {"version": course.version - 1})
    job_id = int(re.search(r"/data/job/(\d+)/", response["Location"]).group(1))  # type: ignore[union-attr]
    job = execute_job(job_id)
    assert job is not None and job.status == "failed" and "Someone else changed" in job.error
    assert table_rows(course) == before


# --- other sources ---------------------------------------------------------------------


def _merge_staged(
    client: Any, workflow: Any, token: str, names: list[str], right_on: str, **keys: Any
) -> Any:
    client.post(url("upload_columns", workflow.pk, token), columns_post(names, **keys))
    client.post(
        url("upload_keys", workflow.pk, token),
        {"left_on": "email", "right_on": right_on, "how": "left"},
    )
    return client.post(url("upload_preview", workflow.pk, token))


def test_an_excel_sheet_can_be_chosen(client_for: Any, world: Any, course: Any) -> None:
    from openpyxl import Workbook

    book = Workbook()
    book.active.title = "Intro"
    book.active.append(["nothing here"])
    sheet = book.create_sheet("Grades")
    sheet.append(["email", "final"])
    sheet.append(["ana@example.org", 17])
    sheet.append([None, None])
    sheet.append(["dan@example.org", 12.5])
    buffer = io.BytesIO()
    book.save(buffer)
    client = client_for(world.alice)
    upload_file = SimpleUploadedFile("grades.xlsx", buffer.getvalue())
    response = client.post(
        url("upload_source", course.pk, "xlsx"), {"file": upload_file, "sheet": "Missing"}
    )
    assert (
        "Sheet “Missing” is not in the workbook. Sheets: Intro, Grades."
        in response.content.decode()
    )
    upload_file.seek(0)
    token = upload(client, course, "xlsx", {"file": upload_file, "sheet": "Grades"})
    _merge_staged(client, course, token, ["email", "final"], "email")
    rows = table_rows(course)
    assert rows["ana@example.org"]["final"] == 17.0 and rows["dan@example.org"]["final"] == 12.5


def test_a_json_file(client_for: Any, world: Any, course: Any) -> None:
    client = client_for(world.alice)
    body = b'[{"email": "eve@example.org", "badge": true}, {"email": "ana@example.org", "badge": false}]'
    token = upload(client, course, "json", {"file": SimpleUploadedFile("d.json", body)})
    _merge_staged(client, course, token, ["email", "badge"], "email")
    assert table_rows(course)["eve@example.org"]["badge"] is True
    response = client.post(
        url("upload_source", course.pk, "json"), {"file": SimpleUploadedFile("d.json", b'{"a": 1}')}
    )
    assert "The JSON must be a list of records (objects)" in response.content.decode()


def test_the_people_table_source(client_for: Any, world: Any, make_workflow: Any) -> None:
    from closedloop.people.models import Identifier, Person

    with account_scope(world.account):
        for name, unit, email in (
            ("Nora", world.school_n1, "ana@example.org"),
            ("Sol", world.school_s1, "sol@example.org"),
        ):
            person = Person.objects.create(account=world.account, name=name, org_unit=unit)
            Identifier.objects.create(
                account=world.account, person=person, kind="email", value=email
            )
    workflow = make_workflow(name="People merge")
    client = client_for(world.alice)
    token = upload(client, workflow, "source", {"source": "people"})
    rows = client.get(url("upload_columns", workflow.pk, token)).context["rows"]
    names = [r["choice"].name for r in rows]
    assert names[:3] == ["id", "name", "email"]
    wanted = {n: {"load": n in ("email", "name", "org unit path")} for n in names}
    wanted["name"]["rename"] = "person"
    client.post(url("upload_columns", workflow.pk, token), columns_post(names, **wanted))
    client.post(
        url("upload_keys", workflow.pk, token),
        {"left_on": "email", "right_on": "email", "how": "left"},
    )
    preview = client.get(url("upload_preview", workflow.pk, token))
    assert preview.context["result"].updated == 1, preview.context["error"]
    client.post(url("upload_preview", workflow.pk, token))
    row = table_rows(workflow)["ana@example.org"]
    assert (
        row["person"] == "Nora"
        and row["org unit path"] == "Atlantis › North › Northvale › Northvale Primary"
    )


def test_viewers_and_outsiders_cannot_use_the_wizard(
    client_for: Any, world: Any, course: Any
) -> None:
    for user in (world.charlie, world.bob):
        client = client_for(user)
        assert client.get(url("upload_start", course.pk)).status_code == 404
        assert client.get(url("upload_source", course.pk, "csv")).status_code == 404
    with account_scope(world.account):
        services.workflow_share(
            workflow=course, actor=world.alice, email=world.bob.email, role="viewer"
        )
    client = client_for(world.bob)
    page = client.get(url("upload_start", course.pk))
    assert page.status_code == 200 and 'data-testid="sources"' not in page.content.decode()
    assert client.get(url("upload_source", course.pk, "csv")).status_code == 403
    assert client.post(url("upload_undo", course.pk)).status_code == 403


def test_an_editor_cannot_use_someone_elses_staged_upload(
    client_for: Any, world: Any, course: Any
) -> None:
    token = upload(client_for(world.alice), course, "csv", {"file": csv_file(MERGE_CSV)})
    with account_scope(world.account):
        services.workflow_share(
            workflow=course, actor=world.alice, email=world.sam.email, role="editor"
        )
    client = client_for(world.sam)
    assert client.get(url("upload_source", course.pk, "csv")).status_code == 200
    assert client.get(url("upload_columns", course.pk, token)).status_code == 404
    assert client.get(url("upload_preview", course.pk, token)).status_code == 404


def test_the_data_page_lists_versions_and_operations(
    client_for: Any, world: Any, course: Any, django_assert_max_num_queries: Any
) -> None:
    client = client_for(world.alice)
    token = upload(client, course, "csv", {"file": csv_file(MERGE_CSV)})
    client.post(
        url("upload_columns", course.pk, token),
        columns_post(["Email", "midterm", "score", "comment"]),
    )
    client.post(
        url("upload_keys", course.pk, token),
        {"left_on": "email", "right_on": "Email", "how": "outer"},
    )
    client.post(url("upload_preview", course.pk, token))
    with django_assert_max_num_queries(20):
        page = client.get(url("upload_start", course.pk))
    html = page.content.decode()
    assert "merge: 1 added, 2 updated, 0 dropped" in html
    with account_scope(world.account):
        assert TableVersion.objects.filter(workflow=course).count() >= 1
        assert WorkflowLog.objects.filter(workflow=course, name="workflow_data_merge").exists()
    assert Job.objects is not None


def test_an_s3_object_through_the_wizard(client_for: Any, world: Any, course: Any) -> None:
    import boto3
    from moto import mock_aws

    client = client_for(world.alice)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="lms")
        s3.put_object(Bucket="lms", Key="exports/quiz.csv", Body=b"email,quiz\nana@example.org,4\n")
        token = upload(client, course, "s3", {"bucket": "lms", "key": "exports/quiz.csv", "region": "us-east-1",
                                              "access_key": "AKIAX", "secret_key": "secret"})  # fmt: skip
        response = client.post(
            url("upload_source", course.pk, "s3"), {"bucket": "lms", "key": "nope.csv"}
        )
        assert "There is no object “nope.csv” in bucket “lms”." in response.content.decode()
    _merge_staged(client, course, token, ["email", "quiz"], "email")
    assert table_rows(course)["ana@example.org"]["quiz"] == 4


def test_a_google_sheet_through_the_wizard(
    client_for: Any, world: Any, course: Any, settings: Any
) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Sheet(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = b"email,forum\nben@example.org,12\n"
            ok = self.path == "/spreadsheets/d/XYZ/export?format=csv&gid=3"
            self.send_response(200 if ok else 404)
            self.send_header("Content-Length", str(len(body) if ok else 0))
            self.end_headers()
            if ok:
                self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sheet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.DATAOPS_REMOTE_HOSTS = ["127.0.0.1"]
    try:
        client = client_for(world.alice)
        link = f"http://127.0.0.1:{server.server_address[1]}/spreadsheets/d/XYZ/edit#gid=3"
        token = upload(client, course, "gsheet", {"url": link})
    finally:
        server.shutdown()
        server.server_close()
    _merge_staged(client, course, token, ["email", "forum"], "email")
    assert table_rows(course)["ben@example.org"]["forum"] == 12


def test_a_connection_without_a_stored_password_asks_for_it(
    client_for: Any, world: Any, course: Any
) -> None:
    from closedloop.feedback.dataops import sqlconn

    with account_scope(world.account):
        conn = sqlconn.sqlconn_create(account=world.account, actor=world.alice, name="LMS", engine="postgresql",
                                      host="127.0.0.1", port=1, database="lms", db_table="marks")  # fmt: skip
    client = client_for(world.alice)
    response = client.post(url("upload_source", course.pk, "sql"), {"connection": conn.pk})
    assert "This connection does not store its password: enter it." in response.content.decode()
    response = client.post(
        url("upload_source", course.pk, "sql"), {"connection": conn.pk, "password": "x"}
    )
    assert "The database answered:" in response.content.decode()
    with account_scope(world.account):
        sqlconn.sqlconn_update(connection=conn, actor=world.alice, enabled=False)
    response = client.post(
        url("upload_source", course.pk, "sql"), {"connection": conn.pk, "password": "x"}
    )
    assert 'data-testid="no-connections"' in response.content.decode()
