"""Reading sources into typed frames: CSV quirks, Excel, JSON, remote sources, people."""

from __future__ import annotations

import datetime as dt
import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import polars as pl
import pytest

from closedloop.core.tenancy import account_scope
from closedloop.feedback.dataops import remote
from closedloop.feedback.dataops.sources import (
    load_remote,
    load_table_source,
    parse_csv,
    parse_json,
    parse_upload,
    parse_xlsx,
)
from closedloop.feedback.services import FeedbackError

UTC = dt.UTC


def message(func: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(FeedbackError) as error:
        func(*args, **kwargs)
    return str(error.value)


# --- CSV -------------------------------------------------------------------------------


def test_types_are_inferred_conservatively() -> None:
    parsed = parse_csv(
        b"id,code,score,ok,yes,when,day,name\n"
        b"1,007,1.5,true,yes,2024-03-01T10:00:00+02:00,2024-03-01, Ann \n"
        b"2,010,,FALSE,no,2024-03-02 08:30,2024-03-02,\n",
        time_zone="Europe/Paris",
    )
    assert parsed.types == {
        "id": "integer",
        "code": "string",
        "score": "double",
        "ok": "boolean",
        "yes": "string",
        "when": "datetime",
        "day": "datetime",
        "name": "string",
    }
    rows = parsed.frame.to_dicts()
    assert rows[0]["name"] == "Ann" and rows[1]["name"] is None  # stripped; empty is null
    assert rows[0]["when"] == dt.datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
    assert rows[1]["when"] == dt.datetime(2024, 3, 2, 7, 30, tzinfo=UTC)  # naive: Paris time
    assert parsed.frame.schema["when"] == pl.Datetime("us", "UTC")


@pytest.mark.parametrize(
    ("raw", "encoding"),
    [
        ("\ufeffemail;name\nzoé@x.org;Zoé\n".encode(), "utf-8-sig"),
        ("email\tname\nzoé@x.org\tZoé\n".encode("utf-16"), "utf-16"),
        ("email,name\nzoé@x.org,Zoé\n".encode("cp1252"), "cp1252"),
    ],
)
def test_encodings_and_delimiters_are_detected(raw: bytes, encoding: str) -> None:
    parsed = parse_csv(raw)
    assert parsed.frame.columns == ["email", "name"]
    assert parsed.frame.row(0) == ("zoé@x.org", "Zoé")
    assert encoding in parsed.notes[0]


def test_a_wrong_chosen_encoding_is_reported() -> None:
    assert message(parse_csv, "a\nü\n".encode("utf-16"), encoding="utf-8").startswith(
        "The file is not valid utf-8 (line 1"
    )


def test_lines_are_skipped_at_top_and_bottom_and_rows_keep_file_numbers() -> None:
    parsed = parse_csv(b"Export of 2024\n\nid,x\n1,a\n1,b\nTotal,2\n", skip_top=2, skip_bottom=1)
    assert parsed.frame.height == 2 and parsed.row_numbers == [4, 5]
    assert (
        message(parse_csv, b"a\n1\n", skip_bottom=-1)
        == "Lines to skip at the bottom cannot be negative."
    )
    assert (
        message(parse_csv, b"a\n1\n", skip_top=5)
        == "The file has fewer lines than the lines to skip."
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", "The file is empty."),
        (b"   \n", "The file is empty."),
        (b"a,b\n", "There is no data: the file has a header but no rows."),
        (b'a,b\n1,"x\n2,3\n', "Row 2 cannot be read: unexpected end of data (check the quotes)."),
        (b"a,b\n1,2\n3,4,5\n", "Row 3 has 3 cells but the header has 2 columns."),
        (b"a,a\n1,2\n", "The column name “a” appears twice (columns 1 and 2)."),
        (b"a,,c\n1,2,3\n", "Column 2 has no name: give every column a name in the first row."),
        (bytes(range(256)) * 4, "The file contains binary data; it does not look like a CSV file."),
        (
            b"a,b\n1,x\n1,x\n",
            "No column can be a key: a key needs a value in every row and no value twice. "
            "Add a column with a unique identifier (e.g. an email or an id).",
        ),
    ],
)
def test_bad_files_get_a_clear_message(raw: bytes, expected: str) -> None:
    assert message(parse_csv, raw) == expected


def test_names_over_63_characters_are_refused_with_the_name() -> None:
    name = "q" * 64
    assert message(parse_csv, f"id,{name}\n1,2\n".encode()) == (
        f"The column name “{name}” is 64 characters long; at most 63."
    )
    assert parse_csv(f"id,{'q' * 63}\n1,2\n".encode()).frame.width == 2


def test_files_over_the_size_limit_are_refused(settings: Any) -> None:
    settings.DATAOPS_MAX_UPLOAD_SIZE = 1000
    assert message(parse_csv, b"a\n" + b"1\n" * 600) == (
        "The data is 1.2 kB; the largest accepted is 1.0 kB."
    )


def test_trailing_separators_are_tolerated() -> None:
    parsed = parse_csv(b"a,b,\n1,2,\n3,4,\n")
    assert parsed.frame.columns == ["a", "b"] and parsed.frame.height == 2


# --- Excel and JSON --------------------------------------------------------------------


def workbook(rows: list[list[Any]], title: str = "Sheet1") -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    book.active.title = title
    for row in rows:
        book.active.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_excel_drops_empty_rows_and_keeps_cell_types() -> None:
    data = workbook(
        [
            ["email", "n", "when", "ok"],
            ["a@x.org", 3, dt.datetime(2024, 5, 1, 12, 0), True],
            [None, None, None, None],
            ["b@x.org", 4.5, None, False],
        ]
    )
    parsed = parse_xlsx(data, time_zone="UTC")
    assert parsed.types == {"email": "string", "n": "double", "when": "datetime", "ok": "boolean"}
    assert parsed.row_numbers == [2, 4]
    assert parsed.frame.row(0)[2] == dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert message(parse_upload, "xlsx", b"not a zip") == "The file is not an Excel .xlsx workbook."


def test_json_records_and_their_errors() -> None:
    parsed = parse_json(b'[{"id": 1, "v": 1.5, "ok": true}, {"id": 2, "v": 2, "tags": ["x"]}]')
    assert parsed.types == {"id": "integer", "v": "double", "ok": "boolean", "tags": "string"}
    assert parsed.frame.row(1) == (2, 2.0, None, '["x"]')
    assert message(parse_json, b"[1, 2]").startswith("Every record must be an object")
    assert message(parse_json, b"[]") == "There is no data: the list of records is empty."
    assert message(parse_json, b"{").startswith("The file is not valid JSON")


# --- remote sources ---------------------------------------------------------------------


def test_google_sheet_links_are_rewritten_to_the_csv_export() -> None:
    assert remote.sheet_export_url(
        "https://docs.google.com/spreadsheets/d/AbC_1-x/edit#gid=42"
    ) == ("https://docs.google.com/spreadsheets/d/AbC_1-x/export?format=csv&gid=42")
    assert remote.sheet_export_url(
        "https://docs.google.com/spreadsheets/d/AbC/edit?usp=sharing"
    ) == ("https://docs.google.com/spreadsheets/d/AbC/export?format=csv&gid=0")


@pytest.fixture
def sheet_server() -> Iterator[tuple[str, list[str]]]:
    requested: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            requested.append(self.path)
            if self.path == "/spreadsheets/d/SHEET/export?format=csv&gid=7":
                body = b"email,attendance\nana@example.org,5\nben@example.org,3\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/csv")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_response(404)
                self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requested
    server.shutdown()
    server.server_close()


def test_a_public_sheet_is_read_over_http(settings: Any, sheet_server: Any) -> None:
    base, requested = sheet_server
    settings.DATAOPS_REMOTE_HOSTS = ["127.0.0.1"]
    parsed = load_remote(f"{base}/spreadsheets/d/SHEET/edit#gid=7")
    assert requested == ["/spreadsheets/d/SHEET/export?format=csv&gid=7"]
    assert parsed.types == {"email": "string", "attendance": "integer"}
    assert "HTTP 404" in message(load_remote, f"{base}/spreadsheets/d/OTHER/edit")


def test_only_allowed_hosts_are_fetched(settings: Any, sheet_server: Any) -> None:
    base, requested = sheet_server
    settings.DATAOPS_REMOTE_HOSTS = ["docs.google.com"]
    assert message(load_remote, f"{base}/spreadsheets/d/SHEET/edit#gid=7") == (
        "Data can be read only from docs.google.com."
    )
    assert requested == []


def test_an_s3_object_is_read_with_credentials() -> None:
    import boto3
    from moto import mock_aws

    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        s3.create_bucket(
            Bucket="grades", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        s3.put_object(
            Bucket="grades", Key="2024/final.json", Body=b'[{"email": "a@x.org", "final": 9}]'
        )
        parsed = load_remote(
            "s3://grades/2024/final.json", access_key="AKIA", secret_key="s", region="eu-west-1"
        )
        assert parsed.types == {"email": "string", "final": "integer"}
        assert message(load_remote, "s3://grades/missing.csv", region="eu-west-1") == (
            "There is no object “missing.csv” in bucket “grades”."
        )
    assert message(load_remote, "s3://only-bucket") == "Enter an S3 address as s3://bucket/key."


def test_an_s3_object_over_the_limit_is_not_downloaded(settings: Any) -> None:
    import boto3
    from moto import mock_aws

    settings.DATAOPS_MAX_UPLOAD_SIZE = 100
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="big")
        s3.put_object(Bucket="big", Key="a.csv", Body=b"a\n" + b"1\n" * 100)
        assert message(load_remote, "s3://big/a.csv").startswith("The data is 202 bytes")


# --- the people table source ------------------------------------------------------------


@pytest.fixture
def people(world: Any) -> Any:
    from closedloop.people.models import Cohort, CustomField, Identifier, Person

    with account_scope(world.account):
        CustomField.objects.create(account=world.account, key="grade", label="Grade", type="number")
        CustomField.objects.create(account=world.account, key="born", label="Born", type="date")
        CustomField.objects.create(account=world.account, key="name", label="Nickname", type="text")
        cohort = Cohort.objects.create(account=world.account, name="Class A")
        nora = Person.objects.create(
            account=world.account,
            name="Nora",
            org_unit=world.school_n1,
            fields={"grade": 7, "born": "2010-04-02", "name": "No"},
        )
        nora.cohorts.add(cohort)
        for kind, system, value in (
            ("email", "", "nora@example.org"),
            ("email", "", "a.nora@example.org"),
            ("phone", "", "tel:+250788000001"),
            ("external", "moodle", "42"),
        ):
            Identifier.objects.create(
                account=world.account, person=nora, kind=kind, system=system, value=value
            )
        Person.objects.create(
            account=world.account, name="Sol", org_unit=world.school_s1, is_active=False
        )
        Person.objects.create(account=world.account, name="Nobody's")
    return world


def test_the_people_source_has_one_typed_row_per_visible_person(people: Any) -> None:
    world = people
    with account_scope(world.account):
        parsed = load_table_source(
            "people", account=world.account, membership=world.alice_membership
        )
    assert parsed.types["id"] == "integer" and parsed.types["grade"] == "double"
    assert parsed.types["born"] == "datetime" and parsed.types["active"] == "boolean"
    assert parsed.types["name (field)"] == "string"
    rows = {r["name"]: r for r in parsed.frame.to_dicts()}
    assert set(rows) == {"Nora", "Sol", "Nobody's"}
    nora = rows["Nora"]
    assert nora["email"] == "a.nora@example.org"
    assert nora["emails"] == "a.nora@example.org, nora@example.org"
    assert nora["phones"] == "tel:+250788000001" and nora["external ids"] == "moodle:42"
    assert nora["org unit path"] == "Atlantis › North › Northvale › Northvale Primary"
    assert nora["cohorts"] == "Class A" and nora["grade"] == 7.0
    assert nora["born"] == dt.datetime(2010, 4, 2, tzinfo=UTC)
    assert "id" in parsed.key_candidates()


def test_a_supervisor_gets_only_his_subtree(people: Any) -> None:
    world = people
    with account_scope(world.account):
        parsed = load_table_source("people", account=world.account, membership=world.sam_membership)
        active = load_table_source(
            "people",
            account=world.account,
            membership=world.alice_membership,
            params={"active_only": True},
        )
    assert parsed.frame.get_column("name").to_list() == ["Nora"]
    assert "Sol" not in active.frame.get_column("name").to_list()
    assert message(
        load_table_source, "nope", account=world.account, membership=world.sam_membership
    ) == ("There is no table source “nope”.")


def test_names_follow_the_platform_rules() -> None:
    assert (
        message(parse_csv, b"id,__secret\n1,2\n")
        == "Column “__secret”: a name cannot start with two underscores."
    )
    assert (
        message(parse_csv, b"id,it's\n1,2\n")
        == "Column “it's”: a name cannot contain quotes (' or \")."
    )
