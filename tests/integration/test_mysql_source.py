"""Reading a feedback table from a real MariaDB server (Debian's mariadb-server).

The server runs from a throw-away data folder on a free localhost port. Without it the
test skips, except with CI=true, where it fails: CI installs mariadb-server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from closedloop.core.tenancy import account_scope
from closedloop.feedback.dataops import sqlconn
from closedloop.feedback.dataops.sources import load_sql
from closedloop.feedback.services import FeedbackError

from .conftest import free_port, port_open, stop, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _binary(name: str) -> str | None:
    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if Path(p).exists()), None
    )


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    server, install = _binary("mariadbd"), _binary("mariadb-install-db")
    if not server or not install:
        message = "mariadb-server is missing (apt-get install mariadb-server)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("mariadb")
    data = root / "data"
    user = ["--user=root"] if os.geteuid() == 0 else []
    subprocess.run(
        [install, "--no-defaults", f"--datadir={data}", "--auth-root-authentication-method=normal",
         "--skip-test-db", *user],
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(
        [server, "--no-defaults", f"--datadir={data}", f"--port={port}",
         "--bind-address=127.0.0.1", f"--socket={root / 'mysqld.sock'}",
         f"--pid-file={root / 'mysqld.pid'}", "--skip-grant-tables", "--skip-log-bin", *user],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for(lambda: port_open(port), 60, "MariaDB to listen")
        import pymysql

        raw = pymysql.connect(host="127.0.0.1", port=port, user="root", autocommit=True)
        with raw, raw.cursor() as cursor:
            cursor.execute("CREATE DATABASE school")
            cursor.execute(
                "CREATE TABLE school.marks (email VARCHAR(100), mark DECIMAL(5,2),"
                " at DATETIME NULL, ok BOOLEAN)"
            )
            cursor.execute(
                "INSERT INTO school.marks VALUES ('ana@example.org', 15.5,"
                " '2024-06-01 10:00:00', TRUE), ('ben@example.org', 8, NULL, FALSE)"
            )
        yield port
    finally:
        stop(process)
        log.close()


def test_a_mariadb_table_is_read_typed(world, mariadb):
    with account_scope(world.account):
        conn = sqlconn.sqlconn_create(
            account=world.account, actor=world.alice, name="School MariaDB", engine="mysql",
            host="127.0.0.1", port=mariadb, database="school", user="root", password="unused",
            db_table="marks",
        )  # fmt: skip
        parsed = load_sql(conn)
    frame = parsed.frame
    assert frame.height == 2
    assert frame["email"].to_list() == ["ana@example.org", "ben@example.org"]
    assert frame["mark"].to_list() == [15.5, 8.0]
    # MySQL's BOOLEAN is TINYINT(1): it arrives as the integers it stores
    assert frame["ok"].to_list() == [1, 0]
    assert parsed.types["mark"] == "double" and parsed.types["ok"] == "integer"
    assert parsed.types["at"] == "datetime" and frame["at"][1] is None


def test_a_mariadb_query_must_only_read(world, mariadb):
    fields = dict(
        name="School MariaDB", engine="mysql", host="127.0.0.1", port=mariadb,
        database="school", user="root", password="unused",
    )  # fmt: skip
    with account_scope(world.account):
        with pytest.raises(FeedbackError) as error:
            sqlconn.sqlconn_create(
                account=world.account, actor=world.alice, query="DELETE FROM marks", **fields
            )
        assert "SELECT" in error.value.message
        conn = sqlconn.sqlconn_create(
            account=world.account, actor=world.alice, query="SELECT email FROM marks WHERE ok",
            **fields,
        )  # fmt: skip
        assert load_sql(conn).frame["email"].to_list() == ["ana@example.org"]
