"""SQL connections an account admin defines (PostgreSQL, MySQL/MariaDB, SQLite), the
services that manage them, and reading one table or query from them, read-only.

Safety: only a single ``SELECT`` (or ``WITH … SELECT``) is accepted; the session is
read-only on the server (``default_transaction_read_only`` / ``TRANSACTION READ ONLY``;
SQLite is opened with ``mode=ro``) and every statement has a time limit
(``DATAOPS_SQL_TIMEOUT`` seconds, default 30). SQLite files must lie in one of
``DATAOPS_SQLITE_DIRS`` (default ``VAR_DIR/sqlite-sources``), so no one reads the
server's own database through a connection.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.http import Http404
from django.utils.translation import gettext as _

from closedloop.core.audit import record_audit, snapshot
from closedloop.core.crypto import SecretUnreadable, decrypt, encrypt
from closedloop.feedback.dataops.errors import data_error
from closedloop.feedback.dataops.sources import ParsedTable, check_names, finish, frame_from_rows
from closedloop.feedback.models import SQLConnection, SQLEngine

AUDITED = ["name", "description", "engine", "host", "port", "database", "user", "db_table", "query", "enabled"]  # fmt: skip
EDITABLE = set(AUDITED)
CONNECT_TIMEOUT = 10
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")
_START = re.compile(r"^\s*(select|with)\b", re.IGNORECASE)
_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)


def sql_timeout() -> int:
    return int(getattr(settings, "DATAOPS_SQL_TIMEOUT", 30))


def sqlite_dirs() -> list[Path]:
    dirs = getattr(settings, "DATAOPS_SQLITE_DIRS", None)
    if dirs:
        return [Path(d).resolve() for d in dirs]
    return [(Path(settings.VAR_DIR) / "sqlite-sources").resolve()]


# --- reads ---------------------------------------------------------------------------


def connections_for(account: Any, *, enabled_only: bool = False) -> QuerySet[SQLConnection]:
    qs = SQLConnection.objects.filter(account_id=getattr(account, "pk", account))
    return qs.filter(enabled=True) if enabled_only else qs


def get_connection(account: Any, pk: Any, *, enabled_only: bool = False) -> SQLConnection:
    try:
        return connections_for(account, enabled_only=enabled_only).get(pk=int(pk))
    except (SQLConnection.DoesNotExist, ValueError, TypeError):
        raise Http404 from None


# --- services ------------------------------------------------------------------------


def _clean(fields: dict[str, Any]) -> dict[str, Any]:
    unknown = set(fields) - EDITABLE
    if unknown:
        raise TypeError(f"unknown SQL connection fields: {sorted(unknown)}")
    values = {k: v.strip() if isinstance(v, str) and k != "query" else v for k, v in fields.items()}
    if values.get("db_table") and not _IDENT.match(values["db_table"]):
        raise data_error(
            _("“%(t)s” is not a table name (letters, digits and _, optionally schema.table).")
            % {"t": values["db_table"]},
            column="db_table",
        )
    if values.get("query"):
        values["query"] = check_query(values["query"])
    if values.get("engine") == SQLEngine.SQLITE and values.get("database"):
        sqlite_path(values["database"])
    return values


def sqlconn_create(*, account: Any, actor: Any, password: str = "", **fields: Any) -> SQLConnection:
    values = _clean(fields)
    with transaction.atomic():
        try:
            with transaction.atomic():
                connection = SQLConnection.objects.create(
                    account=account, password_encrypted=encrypt(password or ""), **values
                )
        except IntegrityError:
            raise data_error(
                _("There is already a connection named “%(name)s”.") % {"name": values.get("name")},
                column="name",
            ) from None
        record_audit(account=account, actor=actor, action="create", obj=connection,
                     after=snapshot(connection, AUDITED))  # fmt: skip
    return connection


def sqlconn_update(
    *,
    connection: SQLConnection,
    actor: Any,
    password: str | None = None,
    clear_password: bool = False,
    **fields: Any,
) -> SQLConnection:
    """``password`` None or empty keeps the stored one; ``clear_password`` removes it
    (it is then asked at run time)."""
    values = _clean(fields)
    before = snapshot(connection, AUDITED)
    for name, value in values.items():
        setattr(connection, name, value)
    if clear_password:
        connection.password_encrypted = ""
    elif password:
        connection.password_encrypted = encrypt(password)
    with transaction.atomic():
        try:
            with transaction.atomic():
                connection.save()
        except IntegrityError:
            raise data_error(
                _("There is already a connection named “%(name)s”.") % {"name": connection.name},
                column="name",
            ) from None
        record_audit(account=connection.account_id, actor=actor, action="update", obj=connection,
                     before=before, after=snapshot(connection, AUDITED))  # fmt: skip
    return connection


def sqlconn_delete(*, connection: SQLConnection, actor: Any) -> None:
    with transaction.atomic():
        record_audit(account=connection.account_id, actor=actor, action="delete", obj=connection,
                     before=snapshot(connection, AUDITED))  # fmt: skip
        connection.delete()


# --- reading -------------------------------------------------------------------------


def check_query(query: str) -> str:
    """One read-only statement, or a FeedbackError saying why not."""
    text = query.strip().rstrip(";").strip()
    bare = _COMMENT.sub(" ", text)
    if not _START.match(bare) or ";" in bare:
        raise data_error(
            _("Only one SELECT query is allowed (it may start with WITH); nothing that changes data."),
            column="query",
        )  # fmt: skip
    return text


def sqlite_path(database: str) -> Path:
    path = Path(database).expanduser().resolve()
    allowed = sqlite_dirs()
    if not any(path.is_relative_to(d) for d in allowed):
        raise data_error(
            _("SQLite files must be in %(dirs)s.") % {"dirs": ", ".join(str(d) for d in allowed)},
            column="database",
        )
    return path


def password_for(connection: SQLConnection, given: str | None) -> str:
    if given:
        return given
    try:
        return decrypt(connection.password_encrypted)
    except SecretUnreadable as exc:
        raise data_error(str(exc), column="password") from None


def _open(connection: SQLConnection, password: str) -> Any:
    engine = connection.engine
    timeout = sql_timeout()
    if engine == SQLEngine.SQLITE:
        path = sqlite_path(connection.database)
        if not path.is_file():
            raise data_error(_("The SQLite file %(path)s does not exist.") % {"path": path})
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=CONNECT_TIMEOUT)
        deadline = time.monotonic() + timeout
        db.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        return db
    if engine == SQLEngine.POSTGRESQL:
        import psycopg

        return psycopg.connect(
            host=connection.host or None,
            port=connection.port or None,
            dbname=connection.database,
            user=connection.user or None,
            password=password or None,
            connect_timeout=CONNECT_TIMEOUT,
            options=f"-c statement_timeout={timeout * 1000} -c default_transaction_read_only=on",
        )
    if engine == SQLEngine.MYSQL:
        import pymysql  # type: ignore[import-untyped]

        db = pymysql.connect(
            host=connection.host or "localhost",
            port=connection.port or 3306,
            user=connection.user or None,
            password=password or "",
            database=connection.database,
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=timeout,
        )
        with db.cursor() as cursor:
            cursor.execute("SET SESSION TRANSACTION READ ONLY")
            for statement in (f"SET SESSION MAX_EXECUTION_TIME={timeout * 1000}",  # MySQL
                              f"SET SESSION max_statement_time={timeout}"):  # MariaDB  # fmt: skip
                with contextlib.suppress(pymysql.MySQLError):
                    cursor.execute(statement)
        return db
    raise data_error(_("Unknown database engine “%(e)s”.") % {"e": engine})


def _quote(engine: str, name: str) -> str:
    if not _IDENT.match(name):
        raise data_error(_("“%(t)s” is not a table name.") % {"t": name}, column="db_table")
    mark = "`" if engine == SQLEngine.MYSQL else '"'
    return ".".join(f"{mark}{part}{mark}" for part in name.split("."))


def _statement(connection: SQLConnection, table: str | None, query: str | None) -> str:
    query = query if query is not None else connection.query
    table = table if table is not None else connection.db_table
    if query and query.strip():
        return check_query(query)
    if table:
        return f"SELECT * FROM {_quote(connection.engine, table)}"
    raise data_error(
        _("The connection has neither a table nor a query to read."), column="db_table"
    )


def _failure(exc: Exception) -> Exception:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "interrupted" in text.lower() or "timeout" in text.lower() or "canceling" in text.lower():
        return data_error(_("The query took longer than %(n)d seconds and was stopped.") % {"n": sql_timeout()})  # fmt: skip
    return data_error(_("The database answered: %(err)s") % {"err": text})


def fetch(
    connection: SQLConnection,
    *,
    password: str | None = None,
    table: str | None = None,
    query: str | None = None,
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and rows of the table or query."""
    if not connection.enabled:
        raise data_error(_("The connection “%(name)s” is disabled.") % {"name": connection.name})
    statement = _statement(connection, table, query)
    try:
        db = _open(connection, password_for(connection, password))
    except Exception as exc:
        if hasattr(exc, "errors"):
            raise
        raise _failure(exc) from None
    try:
        cursor = db.cursor()
        cursor.execute(statement)
        names = [d[0] for d in cursor.description or []]
        rows = [tuple(r) for r in cursor.fetchall()]
        cursor.close()
    except Exception as exc:
        raise _failure(exc) from None
    finally:
        db.close()
    return names, rows


def read_connection(
    connection: SQLConnection,
    *,
    password: str | None = None,
    table: str | None = None,
    query: str | None = None,
    time_zone: str | None = None,
) -> ParsedTable:
    names, rows = fetch(connection, password=password, table=table, query=query)
    if not names:
        raise data_error(_("The query returned no columns."))
    if not rows:
        raise data_error(_("The query returned no rows."))
    frame = frame_from_rows(check_names(names), rows)
    account_tz = getattr(getattr(connection, "account", None), "time_zone", "")
    parsed = finish(
        frame,
        source="sql",
        time_zone=time_zone or account_tz or settings.TIME_ZONE,
        notes=[_("Connection “%(name)s”.") % {"name": connection.name}],
        row_numbers=list(range(1, len(rows) + 1)),
        text_inference="datetime",
    )
    return parsed


def test_connection(connection: SQLConnection, *, password: str | None = None) -> str:
    """A one-line report of reading the connection's table or query (FeedbackError if not)."""
    names, rows = fetch(connection, password=password)
    return _("Connected: %(rows)d rows, columns %(cols)s.") % {
        "rows": len(rows),
        "cols": ", ".join(names[:10]) + (" …" if len(names) > 10 else ""),
    }
