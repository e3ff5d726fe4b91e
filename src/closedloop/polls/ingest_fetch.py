"""Fetching runs from RapidPro page by page, resumable, into the ingest.

Incremental fetches ask for runs modified since ``Connection.runs_after`` (RapidPro's
``after`` is inclusive: the newest run is read again and skipped as unchanged), oldest
first (``reverse``), up to a ``before`` fixed when the fetch starts. Pages are committed
in batches (up to ``COMMIT_RUNS`` runs or ``COMMIT_SECONDS``; a failed page request
commits the pages read before it). After every page, in the batch's transaction, the
ingest writes the page and the connection stores:

- ``runs_after``: the newest ``modified_on`` seen (never moved backwards);
- ``runs_cursor``: the state of the unfinished fetch, as JSON
  ``{"cursor": <RapidPro cursor of the next page>, "after": <iso or null>, "backfill": bool}``;
- ``runs_before``: the fetch's fixed ``before``.

If the fetch dies mid-way, the next call first resumes that query from its cursor (same
``after`` and ``before``), then runs the fetch it was asked for. A finished fetch clears
the cursor. A backfill (``after = now - days``) reads older runs without moving the
incremental watermark backwards.

On PostgreSQL the batches commit with ``synchronous_commit = off`` (``relax_durability``):
the data can always be fetched again, and cursor and data are lost or kept together.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from django.db import connection as db_connection
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from closedloop.core.tenancy import account_scope
from closedloop.polls import ingest_sql as sql
from closedloop.polls.ingest import IngestCache, empty_stats, ingest_page
from closedloop.polls.models import Connection

logger = logging.getLogger(__name__)

#: rows written before the planner statistics are refreshed (then at 2×, 4×, ... that)
ANALYZE_AFTER = 20_000
#: pages are committed together until a batch holds this many runs or took this long
#: (each commit costs a WAL flush and the deferred FK checks; word counts are rebuilt
#: once per batch); a batch holds the database's write lock on SQLite meanwhile
COMMIT_RUNS = 2_000
COMMIT_SECONDS = 1.0
COUNTED = (
    "runs",
    "created",
    "updated",
    "unchanged",
    "skipped",
    "invalid",
    "answers",
    "contacts_created",
    "pollruns_created",
)


class RawRuns:
    """Stands in for ``temba_client``'s ``Run`` class: pages stay plain dicts (the ingest
    reads both; skipping the object conversion saves most of the client-side time)."""

    @staticmethod
    def deserialize_list(items: list[Any], transformer: Any = None) -> list[Any]:
        return items


@dataclass
class FetchState:
    cursor: str
    after: dt.datetime | None
    before: dt.datetime | None
    backfill: bool

    def dump(self) -> str:
        return json.dumps(
            {
                "cursor": self.cursor,
                "after": self.after.isoformat() if self.after else None,
                "backfill": self.backfill,
            }
        )


def pending_state(connection: Connection) -> FetchState | None:
    """The interrupted fetch of this connection, if any."""
    raw = (connection.runs_cursor or "").strip()
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict):  # a bare cursor: an incremental fetch
        return FetchState(raw, connection.runs_after, connection.runs_before, False)
    after = data.get("after")
    return FetchState(
        cursor=str(data.get("cursor") or ""),
        after=dt.datetime.fromisoformat(after) if after else None,
        before=connection.runs_before,
        backfill=bool(data.get("backfill")),
    )


def _client(connection: Connection) -> Any:
    from closedloop.polls.client import client_for

    return client_for(connection)


def _pages(client: Any, state: FetchState) -> Any:
    from closedloop.polls.client import Pages

    query = client.get_runs(after=state.after, before=state.before, reverse=True, paths=False)
    query.clazz = RawRuns
    return Pages(query, resume_cursor=state.cursor or None)


def fetch_runs(
    connection: Connection,
    ctx: Any = None,
    *,
    after: dt.datetime | None = None,
    before: dt.datetime | None = None,
    backfill: bool = False,
) -> dict[str, Any]:
    """Fetch and ingest runs; returns the summed counts of every page plus ``pages``,
    ``resumed`` (an interrupted fetch was finished first) and ``runs_after``."""
    with account_scope(connection.account_id):
        totals: dict[str, Any] = {key: 0 for key in COUNTED}
        totals.update(pages=0, resumed=False)
        client = _client(connection)
        cache = IngestCache.load(connection)
        pending = pending_state(connection)
        if pending is not None:
            totals["resumed"] = True
            _log(ctx, _("Resuming the interrupted run fetch where it stopped."))
            _run(connection, client, cache, pending, ctx, totals)
        if backfill and after is None:
            raise ValueError("a backfill needs `after`")
        state = FetchState(
            cursor="",
            after=after if backfill or after is not None else connection.runs_after,
            before=before or timezone.now(),
            backfill=backfill,
        )
        _run(connection, client, cache, state, ctx, totals)
        totals["runs_after"] = connection.runs_after.isoformat() if connection.runs_after else None
        return totals


def _run(
    connection: Connection,
    client: Any,
    cache: IngestCache,
    state: FetchState,
    ctx: Any,
    totals: dict[str, Any],
) -> None:
    pages = _pages(client, state)
    analyzed_at = 0
    done = False
    while not done:
        if ctx is not None:
            ctx.check_cancelled()
        failure: BaseException | None = None
        with transaction.atomic():
            relax_durability()
            words: set[tuple[int, int]] = set()
            batch_runs = 0
            started = time.monotonic()
            while True:
                try:
                    page = next(pages)
                except StopIteration:
                    done = True
                    break
                except BaseException as exc:  # noqa: BLE001 — re-raised after the commit
                    # the pages already written and their cursor are consistent: keep them
                    failure = exc
                    break
                next_cursor = pages.get_cursor()
                stats = ingest_page(connection, cache, page, word_pairs=words)
                _save_state(connection, state, next_cursor, stats["last_modified_on"])
                totals["pages"] += 1
                for key in COUNTED:
                    totals[key] += stats[key]
                batch_runs += stats["runs"]
                if ctx is not None:
                    ctx.progress(
                        totals["runs"],
                        None,
                        _("%(runs)s runs read, %(created)s new, %(updated)s changed")
                        % {k: totals[k] for k in ("runs", "created", "updated")},
                    )
                if not next_cursor:
                    done = True
                    break
                if batch_runs >= COMMIT_RUNS or time.monotonic() - started >= COMMIT_SECONDS:
                    break
            if words:
                sql.refresh_word_counts(cache.account_id, words)
        if failure is not None:
            raise failure
        written = totals["answers"] + totals["created"]
        if written >= 2 * analyzed_at + ANALYZE_AFTER:
            sql.analyze_tables()
            analyzed_at = written
    _finish(connection)


def relax_durability() -> None:
    """PostgreSQL: this transaction's commit does not wait for its WAL flush.

    A crash may lose the last few hundred milliseconds of committed batches — data and
    saved cursor together (they share the transaction), so the next fetch re-reads those
    runs from RapidPro; the database stays consistent. Only the ingest's own transaction is
    affected (``SET LOCAL``).
    """
    if sql.is_postgres():
        with db_connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")


def _save_state(
    connection: Connection, state: FetchState, next_cursor: str | None, seen: dt.datetime | None
) -> None:
    """Store the watermark and where the fetch goes on, with the page's writes."""
    runs_after = connection.runs_after
    # a backfill carries the watermark forward only when its window reaches back to it
    # (no gap between the watermark and the backfill's start); it never moves it back
    movable = not state.backfill or (
        runs_after is not None and (state.after is None or state.after <= runs_after)
    )
    if seen is not None and movable and (runs_after is None or seen > runs_after):
        runs_after = seen
    state.cursor = next_cursor or ""
    values = {
        "runs_after": runs_after,
        "runs_cursor": state.dump() if next_cursor else "",
        "runs_before": state.before if next_cursor else None,
    }
    Connection.objects.filter(pk=connection.pk).update(**values)
    for name, value in values.items():
        setattr(connection, name, value)


def _finish(connection: Connection) -> None:
    if connection.runs_cursor or connection.runs_before:
        Connection.objects.filter(pk=connection.pk).update(runs_cursor="", runs_before=None)
        connection.runs_cursor = ""
        connection.runs_before = None


def _log(ctx: Any, text: str) -> None:
    if ctx is not None:
        ctx.log(text)
    else:
        logger.info(text)


__all__ = ["FetchState", "RawRuns", "empty_stats", "fetch_runs", "pending_state"]
