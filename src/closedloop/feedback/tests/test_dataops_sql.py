"""SQL connections: reading SQLite (and PostgreSQL when the suite runs on it), read-only
checks, the admin pages, the wizard's SQL source and scheduled refreshes."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from django.db import connection as django_connection
from django.urls import reverse

from closedloop.core.crypto import decrypt
from closedloop.core.tenancy import account_scope
from closedloop.feedback import table as storage
from closedloop.feedback.dataops import sqlconn
from closedloop.feedback.dataops.refresh import refresh_from_source
from closedloop.feedback.dataops.sources import load_sql
from closedloop.feedback.models import SQLConnection, WorkflowLog
from closedloop.feedback.services import FeedbackError
from closedloop.jobs.runtime import enqueue_job, execute_job


@pytest.fixture
def sqlite_db(settings: Any, tmp_path: Path) -> Path:
    settings.DATAOPS_SQLITE_DIRS = [str(tmp_path)]
    settings.MEDIA_ROOT = tmp_path / "media"
    path = tmp_path / "school.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE grades (email TEXT, final REAL, passed INTEGER, at TEXT)")
    db.executemany(
        "INSERT INTO grades VALUES (?, ?, ?, ?)",
        [
            ("ana@example.org", 17.5, 1, "2024-06-01 10:00:00"),
            ("ben@example.org", 9.0, 0, "2024-06-02 11:30:00"),
            ("new@example.org", 12.0, 1, None),
        ],
    )
    db.commit()
    db.close()
    return path


@pytest.fixture
def conn(world: Any, sqlite_db: Path) -> SQLConnection:
    with account_scope(world.account):
        return sqlconn.sqlconn_create(
            account=world.account,
            actor=world.alice,
            name="School DB",
            engine="sqlite",
            database=str(sqlite_db),
            db_table="grades",
        )


def message(func: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(FeedbackError) as error:
        func(*args, **kwargs)
    return str(error.value)


def test_a_sqlite_table_and_a_query_are_read_and_typed(conn: SQLConnection, world: Any) -> None:
    with account_scope(world.account):
        parsed = load_sql(conn, time_zone="UTC")
        assert parsed.types == {
            "email": "string",
            "final": "double",
            "passed": "integer",
            "at": "datetime",
        }
        assert parsed.frame.height == 3
        parsed = load_sql(
            conn, query="SELECT email, final * 2 AS doubled FROM grades WHERE final > 10"
        )
        assert parsed.frame.to_dicts() == [
            {"email": "ana@example.org", "doubled": 35.0},
            {"email": "new@example.org", "doubled": 24.0},
        ]


@pytest.mark.parametrize(
    "query",
    [
        "DELETE FROM grades",
        "SELECT 1; DELETE FROM grades",
        "UPDATE grades SET final = 0",
        "/* SELECT */ DROP TABLE grades",
        "ATTACH DATABASE 'x' AS y",
    ],
)
def test_only_one_select_is_accepted(
    conn: SQLConnection, world: Any, sqlite_db: Path, query: str
) -> None:
    with account_scope(world.account):
        assert message(load_sql, conn, query=query) == (
            "Only one SELECT query is allowed (it may start with WITH); nothing that changes data."
        )
    assert sqlite3.connect(sqlite_db).execute("SELECT COUNT(*) FROM grades").fetchone()[0] == 3


def test_sqlite_is_opened_read_only(conn: SQLConnection, world: Any) -> None:
    with account_scope(world.account):
        text = message(
            load_sql, conn, query="WITH x AS (SELECT 1) INSERT INTO grades SELECT * FROM grades"
        )
    assert text.startswith("The database answered:") or text.startswith("Only one SELECT")


def test_files_outside_the_allowed_folders_are_refused(
    world: Any, sqlite_db: Path, settings: Any
) -> None:
    with account_scope(world.account):
        text = message(
            sqlconn.sqlconn_create,
            account=world.account,
            actor=world.alice,
            name="Server DB",
            engine="sqlite",
            database=str(settings.VAR_DIR / "closedloop.sqlite3"),
            db_table="accounts_user",
        )
    assert text.startswith("SQLite files must be in ")


def test_passwords_are_stored_encrypted_and_kept_when_left_empty(
    world: Any, sqlite_db: Path
) -> None:
    with account_scope(world.account):
        pg = sqlconn.sqlconn_create(
            account=world.account, actor=world.alice, name="PG", engine="postgresql",
            host="db.example.org", database="lms", user="reader", password="s3cret", db_table="marks",
        )  # fmt: skip
        assert pg.password_encrypted != "s3cret" and decrypt(pg.password_encrypted) == "s3cret"
        sqlconn.sqlconn_update(connection=pg, actor=world.alice, password="", description="x")
        assert decrypt(pg.password_encrypted) == "s3cret"
        sqlconn.sqlconn_update(connection=pg, actor=world.alice, clear_password=True)
        assert pg.password_encrypted == ""


def test_a_disabled_connection_cannot_be_read(conn: SQLConnection, world: Any) -> None:
    with account_scope(world.account):
        sqlconn.sqlconn_update(connection=conn, actor=world.alice, enabled=False)
        assert message(load_sql, conn) == "The connection “School DB” is disabled."


@pytest.mark.skipif(
    django_connection.vendor != "postgresql", reason="runs when the suite runs on PostgreSQL"
)
def test_a_postgresql_table_is_read(world: Any, settings: Any) -> None:
    import psycopg

    db = settings.DATABASES["default"]
    params = {"host": db["HOST"] or None, "port": db["PORT"] or None, "user": db["USER"] or None,
              "password": db["PASSWORD"] or None, "dbname": db["NAME"]}  # fmt: skip
    test_name = django_connection.settings_dict["NAME"]
    with psycopg.connect(**{**params, "dbname": test_name}, autocommit=True) as raw:
        raw.execute("DROP TABLE IF EXISTS dataops_pg_source")
        raw.execute(
            "CREATE TABLE dataops_pg_source (email text, mark numeric(5,2), at timestamptz, ok boolean)"
        )
        raw.execute(
            "INSERT INTO dataops_pg_source VALUES ('ana@example.org', 15.5, '2024-06-01 10:00+02', true),"
            " ('ben@example.org', 8, NULL, false)"
        )
    try:
        with account_scope(world.account):
            conn = sqlconn.sqlconn_create(
                account=world.account, actor=world.alice, name="PG", engine="postgresql",
                host=params["host"] or "", port=int(params["port"]) if params["port"] else None,
                database=test_name, user=params["user"] or "", password=params["password"] or "",
                db_table="dataops_pg_source",
            )  # fmt: skip
            parsed = load_sql(conn)
            assert parsed.types == {
                "email": "string",
                "mark": "double",
                "at": "datetime",
                "ok": "boolean",
            }
            assert parsed.frame.row(0)[1] == 15.5
            assert message(
                load_sql, conn, query="SELECT pg_sleep(0) FROM dataops_pg_source; DELETE FROM x"
            )
            text = message(
                load_sql,
                conn,
                query="WITH d AS (DELETE FROM dataops_pg_source RETURNING *) SELECT * FROM d",
            )
            assert "read-only" in text
    finally:
        with psycopg.connect(**{**params, "dbname": test_name}, autocommit=True) as raw:
            raw.execute("DROP TABLE IF EXISTS dataops_pg_source")


# The MySQL / MariaDB path runs against a real server in tests/integration/test_mysql_source.py


# --- refreshes -----------------------------------------------------------------------------


def test_refresh_from_an_sql_connection(
    conn: SQLConnection, world: Any, make_workflow: Any
) -> None:
    workflow = make_workflow()
    spec = {"kind": "sql", "connection": conn.pk, "how": "left", "left_on": "email", "right_on": "email",
            "columns": ["final"]}  # fmt: skip
    with account_scope(world.account):
        result = refresh_from_source(workflow=workflow, actor=world.alice, spec=spec)
        assert (result.added, result.updated) == (0, 2)
        rows = {r["email"]: r for r in storage.read_frame(workflow).to_dicts()}
        assert rows["ana@example.org"]["final"] == 17.5 and "at" not in rows["ana@example.org"]
        job = enqueue_job(account=world.account, kind="feedback.refresh", run_now=True,
                          params={"workflow": workflow.pk, "user": world.alice.pk,
                                  "spec": {**spec, "how": "outer"}})  # fmt: skip
    done = execute_job(job.pk)
    assert done is not None and done.status == "succeeded" and done.result["added"] == 1


def test_refresh_from_the_people_source(world: Any, make_workflow: Any) -> None:
    from closedloop.people.models import Identifier, Person

    workflow = make_workflow()
    with account_scope(world.account):
        person = Person.objects.create(
            account=world.account, name="Ana P", org_unit=world.school_n1
        )
        Identifier.objects.create(
            account=world.account, person=person, kind="email", value="ana@example.org"
        )
        result = refresh_from_source(
            workflow=workflow,
            actor=world.alice,
            spec={
                "kind": "table_source",
                "key": "people",
                "how": "left",
                "left_on": "email",
                "right_on": "email",
                "columns": ["org unit"],
            },  # fmt: skip
        )
        assert result.updated == 1
        rows = {r["email"]: r for r in storage.read_frame(workflow).to_dicts()}
        assert rows["ana@example.org"]["org unit"] == "Northvale Primary"


# --- the wizard's SQL source ---------------------------------------------------------------


def test_the_wizard_reads_from_a_connection(
    client_for: Any, world: Any, conn: SQLConnection, make_workflow: Any
) -> None:
    workflow = make_workflow()
    client = client_for(world.alice)
    response = client.post(
        reverse("feedback:upload_source", args=[workflow.pk, "sql"]), {"connection": conn.pk}
    )
    token = re.search(r"/data/([0-9a-f-]{36})/columns/", response["Location"]).group(1)  # type: ignore[union-attr]
    page = client.get(reverse("feedback:upload_columns", args=[workflow.pk, token]))
    assert [r["choice"].name for r in page.context["rows"]] == ["email", "final", "passed", "at"]
    response = client.post(
        reverse("feedback:upload_source", args=[workflow.pk, "sql"]),
        {"connection": conn.pk, "query": "DELETE FROM grades"},
    )
    assert "Only one SELECT query is allowed" in response.content.decode()


# --- admin pages -----------------------------------------------------------------------------


def test_admins_manage_connections_and_never_see_passwords(
    client_for: Any, world: Any, sqlite_db: Path
) -> None:
    client = client_for(world.alice)
    assert client.get(reverse("feedback:sqlconn_list")).status_code == 200
    response = client.post(
        reverse("feedback:sqlconn_create"),
        {
            "name": "LMS",
            "engine": "postgresql",
            "host": "db.example.org",
            "database": "lms",
            "user": "reader",
            "password": "hunter2-secret",
            "db_table": "marks",
            "enabled": "on",
        },  # fmt: skip
    )
    assert response.status_code == 302
    with account_scope(world.account):
        lms = SQLConnection.objects.get(name="LMS")
    edit = client.get(reverse("feedback:sqlconn_edit", args=[lms.pk])).content.decode()
    assert "hunter2-secret" not in edit and lms.password_encrypted not in edit
    assert "A password is stored" in edit
    response = client.post(
        reverse("feedback:sqlconn_edit", args=[lms.pk]),
        {"name": "LMS 2", "engine": "postgresql", "database": "lms", "query": "DROP TABLE marks"},
    )
    assert "Only one SELECT query is allowed" in response.content.decode()
    response = client.post(
        reverse("feedback:sqlconn_create"),
        {
            "name": "Local",
            "engine": "sqlite",
            "database": str(sqlite_db),
            "db_table": "grades",
            "enabled": "on",
        },
    )
    with account_scope(world.account):
        local = SQLConnection.objects.get(name="Local")
    result = client.post(reverse("feedback:sqlconn_test", args=[local.pk]))
    assert "Connected: 3 rows, columns email, final, passed, at." in result.content.decode()
    result = client.post(reverse("feedback:sqlconn_test", args=[lms.pk]))
    assert "The database answered:" in result.content.decode()
    assert client.post(reverse("feedback:sqlconn_delete", args=[lms.pk])).status_code == 302
    with account_scope(world.account):
        assert not SQLConnection.objects.filter(pk=lms.pk).exists()


def test_only_admins_of_the_account_reach_connections(
    client_for: Any, world: Any, conn: SQLConnection
) -> None:
    for user, status in ((world.bob, 403), (world.sam, 403)):
        client = client_for(user)
        assert client.get(reverse("feedback:sqlconn_list")).status_code == status
        assert client.get(reverse("feedback:sqlconn_edit", args=[conn.pk])).status_code == status
    client = client_for(world.charlie)
    assert client.get(reverse("feedback:sqlconn_list")).status_code == 200
    assert "School DB" not in client.get(reverse("feedback:sqlconn_list")).content.decode()
    assert client.get(reverse("feedback:sqlconn_edit", args=[conn.pk])).status_code == 404
    assert client.post(reverse("feedback:sqlconn_test", args=[conn.pk])).status_code == 404
    assert client.post(reverse("feedback:sqlconn_delete", args=[conn.pk])).status_code == 404


def test_the_connection_list_has_a_bounded_query_count(
    client_for: Any, world: Any, conn: SQLConnection, django_assert_max_num_queries: Any
) -> None:
    client = client_for(world.alice)
    with django_assert_max_num_queries(12):
        assert client.get(reverse("feedback:sqlconn_list")).status_code == 200
    assert not WorkflowLog.objects.none().exists()
