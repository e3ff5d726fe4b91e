"""Bulk SQL of the runs ingest: inserts, set-based recomputes, word-count refresh.

Nothing here goes through the ORM's per-object machinery: PostgreSQL gets ``COPY``
(binary), SQLite one ``executemany`` per chunk; derived columns (active flag, same-day
sums) are recomputed with one set-based ``UPDATE`` for the affected groups, writing only
the rows whose value changes. Callers hold the transaction.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Any

from django.db import connection

from closedloop.polls.models import Answer, Contact, Response, WordCount
from closedloop.polls.words import tokenize_cached

UTC = dt.UTC
IN_CHUNK = 500
INSERT_CHUNK = 20_000

RESPONSE_COLUMNS = (
    "id",
    "account_id",
    "pollrun_id",
    "poll_id",
    "contact_id",
    "run_uuid",
    "status",
    "is_active",
    "created_on",
    "updated_on",
    "modified_on",
    "exited_on",
    "exit_type",
    "local_date",
    "org_unit_id",
)
RESPONSE_TYPES = (
    "int8",
    "int8",
    "int8",
    "int8",
    "int8",
    "varchar",
    "varchar",
    "bool",
    "timestamptz",
    "timestamptz",
    "timestamptz",
    "timestamptz",
    "varchar",
    "date",
    "int8",
)
ANSWER_COLUMNS = (
    "account_id",
    "response_id",
    "question_id",
    "pollrun_id",
    "contact_id",
    "org_unit_id",
    "is_active",
    "local_date",
    "value",
    "value_number",
    "day_sum",
    "category",
    "submitted_on",
)
ANSWER_TYPES = (
    "int8",
    "int8",
    "int8",
    "int8",
    "int8",
    "int8",
    "bool",
    "date",
    "varchar",
    "float8",
    "float8",
    "varchar",
    "timestamptz",
)
#: the tenant filter, written so that no planner prefers the (unselective) account index
#: over the selective ones the other conditions use
ACCOUNT = "account_id + 0 = %s"
WORD_COLUMNS = ("account_id", "question_id", "pollrun_id", "org_unit_id", "word", "count")
WORD_TYPES = ("int8", "int8", "int8", "int8", "varchar", "int4")


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def datetime_param() -> Callable[[dt.datetime | None], Any]:
    """How a datetime goes into a bulk row: as is for COPY, Django's text form for SQLite."""
    if is_postgres():
        return lambda value: value

    def sqlite(value: dt.datetime | None) -> str | None:
        if value is None:
            return None
        if value.tzinfo is not UTC:
            value = value.astimezone(UTC)
        return str(value)[:-6]  # "YYYY-MM-DD HH:MM:SS[.ffffff]", as Django stores it

    return sqlite


def date_param() -> Callable[[dt.date], Any]:
    if is_postgres():
        return lambda value: value
    return lambda value: value.isoformat()


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _placeholders(count: int) -> str:
    return ", ".join(["%s"] * count)


def allocate_ids(model: Any, count: int) -> list[int]:
    """Reserve ``count`` ids of ``model``'s table inside the current transaction.

    PostgreSQL draws them from the identity sequence; SQLite transactions begin
    IMMEDIATE (one writer), so the ids after the largest id and the AUTOINCREMENT
    counter are ours until the commit.
    """
    if count <= 0:
        return []
    table = model._meta.db_table
    with connection.cursor() as cursor:
        if is_postgres():
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                [table, count],
            )
            return sorted(row[0] for row in cursor.fetchall())
        cursor.execute(f'SELECT COALESCE(MAX(id), 0) FROM "{table}"')  # noqa: S608
        highest = cursor.fetchone()[0]
        cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = %s", [table])
        seq = cursor.fetchone()
        start = max(highest, seq[0] if seq else 0) + 1
    return list(range(start, start + count))


def insert_rows(
    table: str, columns: Sequence[str], pg_types: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> int:
    """Insert ``rows`` (tuples in ``columns`` order, values already adapted)."""
    if not rows:
        return 0
    names = ", ".join(f'"{c}"' for c in columns)
    with connection.cursor() as cursor:
        if is_postgres():
            sql = f'COPY "{table}" ({names}) FROM STDIN (FORMAT BINARY)'
            for chunk in chunks(rows, INSERT_CHUNK):
                with cursor.copy(sql) as copy:
                    copy.set_types(pg_types)
                    for row in chunk:
                        copy.write_row(row)
        else:
            sql = f'INSERT INTO "{table}" ({names}) VALUES ({_placeholders(len(columns))})'  # noqa: S608
            for chunk in chunks(rows, INSERT_CHUNK):
                cursor.executemany(sql, chunk)
    return len(rows)


def insert_responses(rows: Sequence[tuple[Any, ...]]) -> int:
    return insert_rows(Response._meta.db_table, RESPONSE_COLUMNS, RESPONSE_TYPES, rows)


def insert_answers(rows: Sequence[tuple[Any, ...]]) -> int:
    return insert_rows(Answer._meta.db_table, ANSWER_COLUMNS, ANSWER_TYPES, rows)


def update_responses(rows: Sequence[tuple[Any, ...]]) -> int:
    """Rewrite changed runs: rows are RESPONSE_COLUMNS tuples (id first); keeps is_active."""
    if not rows:
        return 0
    settable = [c for c in RESPONSE_COLUMNS if c not in ("id", "account_id", "run_uuid")]
    sets = ", ".join(f'"{c}" = %s' for c in settable if c != "is_active")
    index = {c: i for i, c in enumerate(RESPONSE_COLUMNS)}
    params = [
        [row[index[c]] for c in settable if c != "is_active"] + [row[0], row[1]] for row in rows
    ]
    sql = f'UPDATE "{Response._meta.db_table}" SET {sets} WHERE id = %s AND account_id = %s'  # noqa: S608
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
    return len(rows)


def delete_answers(account_id: int, response_ids: Sequence[int]) -> int:
    deleted = 0
    table = Answer._meta.db_table
    with connection.cursor() as cursor:
        for chunk in chunks(response_ids, IN_CHUNK):
            cursor.execute(
                f'DELETE FROM "{table}" WHERE {ACCOUNT} '  # noqa: S608
                f"AND response_id IN ({_placeholders(len(chunk))})",
                [account_id, *chunk],
            )
            deleted += cursor.rowcount
    return deleted


def recompute_active(
    account_id: int, contact_ids: Iterable[int], pollrun_ids: Iterable[int]
) -> dict[int, bool]:
    """Make only the newest response (created_on, then id) per contact per poll run active.

    Works on every (contact, poll run) pair of the two id sets (a superset of the pairs
    that changed is harmless) and writes only the rows whose flag flips. Returns
    {response id: new flag} of the flipped rows.
    """
    table = Response._meta.db_table
    newest = (
        f'(id = (SELECT r2.id FROM "{table}" r2 WHERE r2.contact_id = "{table}".contact_id '  # noqa: S608
        f'AND r2.pollrun_id = "{table}".pollrun_id ORDER BY r2.created_on DESC, r2.id DESC '
        "LIMIT 1))"
    )
    flipped: dict[int, bool] = {}
    pollruns = sorted(set(pollrun_ids))
    with connection.cursor() as cursor:
        for contacts in chunks(sorted(set(contact_ids)), IN_CHUNK):
            for runs in chunks(pollruns, IN_CHUNK):
                cursor.execute(
                    f'UPDATE "{table}" SET is_active = {newest} '  # noqa: S608
                    f"WHERE {ACCOUNT} AND contact_id IN ({_placeholders(len(contacts))}) "
                    f"AND pollrun_id IN ({_placeholders(len(runs))}) "
                    f"AND is_active <> {newest} RETURNING id, is_active",
                    [account_id, *contacts, *runs],
                )
                flipped.update((row[0], bool(row[1])) for row in cursor.fetchall())
    return flipped


def set_answers_active(account_id: int, flags: dict[int, bool]) -> None:
    """Copy flipped response flags onto their answers."""
    table = Answer._meta.db_table
    with connection.cursor() as cursor:
        for value in (True, False):
            ids = sorted(rid for rid, flag in flags.items() if flag is value)
            for chunk in chunks(ids, IN_CHUNK):
                cursor.execute(
                    f'UPDATE "{table}" SET is_active = %s WHERE {ACCOUNT} '  # noqa: S608
                    f"AND response_id IN ({_placeholders(len(chunk))})",
                    [value, account_id, *chunk],
                )


def recompute_day_sums(
    account_id: int,
    question_ids: Iterable[int],
    contact_ids: Iterable[int],
    dates: Iterable[dt.date],
) -> int:
    """``day_sum`` = sum of value_number over a contact's answers to a question on a local
    date (every response, active or not), for the groups in the three sets; only rows whose
    sum differs are written. Answers without a number keep ``day_sum`` NULL."""
    table = Answer._meta.db_table
    distinct = "IS DISTINCT FROM" if is_postgres() else "IS NOT"
    to_date = date_param()
    questions = sorted(set(question_ids))
    day_list = [to_date(d) for d in sorted(set(dates))]
    if not questions or not day_list:
        return 0
    # one index seek (question, contact, local_date) per candidate row
    total = (
        f'(SELECT SUM(a2.value_number) FROM "{table}" a2 '  # noqa: S608
        f'WHERE a2.question_id = "{table}".question_id AND a2.contact_id = "{table}".contact_id '
        f'AND a2.local_date = "{table}".local_date)'
    )
    written = 0
    with connection.cursor() as cursor:
        for contacts in chunks(sorted(set(contact_ids)), IN_CHUNK):
            cursor.execute(
                f'UPDATE "{table}" SET day_sum = {total} '  # noqa: S608
                f"WHERE {ACCOUNT} AND question_id IN ({_placeholders(len(questions))}) "
                f"AND contact_id IN ({_placeholders(len(contacts))}) "
                f"AND local_date IN ({_placeholders(len(day_list))}) "
                f"AND value_number IS NOT NULL AND day_sum {distinct} {total}",
                [account_id, *questions, *contacts, *day_list],
            )
            written += max(cursor.rowcount, 0)
    return written


def analyze_tables() -> None:
    """Refresh PostgreSQL's planner statistics of the ingest tables (a first big back-fill
    grows them from nothing; plans made for empty tables would scan them)."""
    if not is_postgres():
        return
    with connection.cursor() as cursor:
        for model in (Response, Answer, WordCount):
            cursor.execute(f'ANALYZE "{model._meta.db_table}"')


def refresh_word_counts(account_id: int, pairs: Iterable[tuple[int, int]]) -> int:
    """Rebuild WordCount rows of (open question, poll run) pairs from their active answers."""
    by_question: dict[int, set[int]] = {}
    for question_id, pollrun_id in pairs:
        by_question.setdefault(question_id, set()).add(pollrun_id)
    if not by_question:
        return 0
    words_table = WordCount._meta.db_table
    answers = Answer._meta.db_table
    contacts = Contact._meta.db_table
    rows: list[tuple[Any, ...]] = []
    with connection.cursor() as cursor:
        for question_id, pollrun_set in sorted(by_question.items()):
            for runs in chunks(sorted(pollrun_set), IN_CHUNK):
                marks = _placeholders(len(runs))
                cursor.execute(
                    f'DELETE FROM "{words_table}" WHERE {ACCOUNT} AND question_id = %s '  # noqa: S608
                    f"AND pollrun_id IN ({marks})",
                    [account_id, question_id, *runs],
                )
                cursor.execute(
                    f'SELECT a.pollrun_id, a.org_unit_id, a.value, c.language FROM "{answers}" a '  # noqa: S608
                    f'JOIN "{contacts}" c ON c.id = a.contact_id '
                    f"WHERE a.account_id + 0 = %s AND a.question_id = %s AND a.is_active = %s "
                    f"AND a.pollrun_id IN ({marks})",
                    [account_id, question_id, True, *runs],
                )
                counts: Counter[tuple[int, int | None, str]] = Counter()
                for pollrun_id, org_unit_id, value, language in cursor.fetchall():
                    for word in tokenize_cached(value or "", language or ""):
                        counts[(pollrun_id, org_unit_id, word)] += 1
                rows.extend(
                    (account_id, question_id, pollrun_id, org_unit_id, word, count)
                    for (pollrun_id, org_unit_id, word), count in counts.items()
                )
    insert_rows(words_table, WORD_COLUMNS, WORD_TYPES, rows)
    return len(rows)
