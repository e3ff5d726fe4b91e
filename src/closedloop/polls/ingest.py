"""The runs ingest: RapidPro runs → Responses and Answers, in bulk and idempotently.

``ingest_runs(connection, runs)`` takes one page of runs (API-v2 dicts or ``temba_client``
``Run`` objects) and, in one transaction and a fixed number of set-based queries:

- keeps only runs of the connection's ACTIVE polls (other flows are counted as skipped);
- skips runs whose stored ``modified_on`` is unchanged (a second ingest writes nothing);
- finds contacts by uuid; contacts closedloop has not synced yet are asked from RapidPro
  (``sync.fetch_contacts`` when the sync offers it) or else created as *placeholders*
  (Contact + Person with the run's contact name, ``modified_on`` NULL: the next contact
  sync fills in the rest);
- assigns the poll run: the FlowStart of ``start.uuid`` (regional/propagated poll runs
  started from closedloop) or else the universal poll run of (poll, account-local day of
  the run's ``created_on``), created on demand;
- writes status (C completed, P some value, E none), then recomputes in SQL the active
  flag (only the newest response per contact per poll run) for the affected pairs and the
  same-day sums of the affected (contact, question, local day) groups, and rebuilds the
  word counts of the affected (open question, poll run) pairs.

``fetch_runs`` (in :mod:`closedloop.polls.ingest_fetch`) pages through RapidPro's runs
endpoint and calls the page ingest with the watermark and cursor saved per page.
"""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from closedloop.accounts.models import Account
from closedloop.core.tenancy import account_scope
from closedloop.people.models import Identifier, Person
from closedloop.polls import ingest_sql as sql
from closedloop.polls.ingest_parse import ParsedRun, parse_run
from closedloop.polls.models import (
    Contact,
    FlowStart,
    Poll,
    PollRun,
    PollRunType,
    Question,
    QuestionType,
    Response,
    ResponseStatus,
)
from closedloop.polls.rules import (
    ALL_RESPONSES,
    OTHER,
    CompiledRule,
    categorize_number,
    compile_rules,
    localized_name,
    to_number,
)

logger = logging.getLogger(__name__)

MAX_VALUE = 640
MAX_CATEGORY = 100
LOOKUP_CHUNK = 2_000
RAPIDPRO_SYSTEM = "rapidpro"


@dataclass(slots=True)
class QuestionInfo:
    id: int
    type: str
    rules: list[CompiledRule]


@dataclass
class PollInfo:
    id: int
    by_key: dict[str, QuestionInfo] = field(default_factory=dict)
    by_node: dict[str, QuestionInfo] = field(default_factory=dict)
    question_ids: list[int] = field(default_factory=list)
    open_question_ids: list[int] = field(default_factory=list)


@dataclass
class IngestCache:
    """What one fetch looks up once: polls and questions, the time zone, and the contacts,
    flow starts and universal poll runs already resolved by earlier pages."""

    account_id: int
    connection_id: int
    tz: dt.tzinfo
    polls: dict[str, PollInfo]
    polls_by_id: dict[int, PollInfo]
    #: contact uuid → (id, org unit id)
    contacts: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    #: start uuid → (poll run id, poll id, local date), None when unknown
    starts: dict[str, tuple[int, int, dt.date] | None] = field(default_factory=dict)
    #: (poll id, local date) → universal poll run id
    universal: dict[tuple[int, dt.date], int] = field(default_factory=dict)

    @classmethod
    def load(cls, connection: Any) -> IngestCache:
        tz_name = (
            Account.objects.filter(pk=connection.account_id)
            .values_list("time_zone", flat=True)
            .first()
        )
        try:
            tz: dt.tzinfo = zoneinfo.ZoneInfo(tz_name or "UTC")
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            tz = dt.UTC
        polls: dict[str, PollInfo] = {}
        by_id: dict[int, PollInfo] = {}
        for poll_id, flow_uuid in Poll.objects.filter(
            connection_id=connection.pk, is_active=True
        ).values_list("id", "flow_uuid"):
            info = PollInfo(id=poll_id)
            polls[flow_uuid] = info
            by_id[poll_id] = info
        rows = Question.objects.filter(poll_id__in=list(by_id)).values_list(
            "id", "poll_id", "result_key", "node_uuids", "type", "rules"
        )
        for qid, poll_id, key, nodes, qtype, rules in rows:
            info = by_id[poll_id]
            question = QuestionInfo(id=qid, type=qtype, rules=compile_rules(list(rules or [])))
            info.by_key[key] = question
            for node in nodes or []:
                info.by_node.setdefault(str(node), question)
            info.question_ids.append(qid)
            if qtype == QuestionType.OPEN:
                info.open_question_ids.append(qid)
        return cls(
            account_id=connection.account_id,
            connection_id=connection.pk,
            tz=tz,
            polls=polls,
            polls_by_id=by_id,
        )


def empty_stats() -> dict[str, Any]:
    return {
        "runs": 0,
        "created": 0,
        "updated": 0,
        "unchanged": 0,
        "skipped": 0,
        "invalid": 0,
        "answers": 0,
        "contacts_created": 0,
        "pollruns_created": 0,
        "last_modified_on": None,
    }


def ingest_runs(
    connection: Any,
    runs: list[Any],
    *,
    now: dt.datetime | None = None,
    cache: IngestCache | None = None,
) -> dict[str, Any]:
    """Ingest one page of runs in one transaction; returns counts (see ``empty_stats``).

    ``runs`` may be API-v2 dicts or ``temba_client`` ``Run`` objects (dicts are much
    cheaper: building ``Run`` objects costs about as much as the whole ingest). ``now`` is
    accepted for symmetry with the other services; every time comes from the runs.
    """
    with account_scope(connection.account_id), transaction.atomic():
        cache = cache or IngestCache.load(connection)
        return ingest_page(connection, cache, runs, now=now)


def ingest_page(
    connection: Any,
    cache: IngestCache,
    runs: list[Any],
    *,
    now: dt.datetime | None = None,
    word_pairs: set[tuple[int, int]] | None = None,
) -> dict[str, Any]:
    """The page ingest; the caller holds the transaction and the account scope.

    With ``word_pairs`` the (open question, poll run) pairs whose word counts are stale are
    added to that set and the caller refreshes them (``ingest_sql.refresh_word_counts``)
    before it commits — once for several pages; without it the page refreshes them itself.
    """
    stats = empty_stats()
    stats["runs"] = len(runs)
    parsed: dict[str, ParsedRun] = {}
    last_modified: dt.datetime | None = None
    for raw in runs:
        run = parse_run(raw)
        if run is None:
            stats["invalid"] += 1
            continue
        if last_modified is None or run.modified_on > last_modified:
            last_modified = run.modified_on
        if run.flow_uuid not in cache.polls:
            stats["skipped"] += 1
            continue
        seen = parsed.get(run.uuid)
        if seen is None or run.modified_on >= seen.modified_on:
            parsed[run.uuid] = run
    stats["last_modified_on"] = last_modified
    if not parsed:
        return stats

    existing = _existing_responses(cache.account_id, list(parsed))
    changed = [
        run
        for uuid, run in parsed.items()
        if uuid not in existing or existing[uuid][1] != run.modified_on
    ]
    stats["unchanged"] = len(parsed) - len(changed)
    if not changed:
        return stats

    stats["contacts_created"] = _resolve_contacts(connection, cache, changed)
    pollrun_of, local_date_of, stats["pollruns_created"] = _resolve_pollruns(cache, changed)
    _write(cache, changed, existing, pollrun_of, local_date_of, stats, word_pairs)
    return stats


# --- lookups -----------------------------------------------------------------------------


def _existing_responses(account_id: int, uuids: list[str]) -> dict[str, tuple[Any, ...]]:
    """run uuid → (id, modified_on, pollrun id, contact id, local date, is_active, poll id)."""
    found: dict[str, tuple[Any, ...]] = {}
    for chunk in sql.chunks(uuids, LOOKUP_CHUNK):
        rows = Response.objects.filter(account_id=account_id, run_uuid__in=chunk).values_list(
            "run_uuid",
            "id",
            "modified_on",
            "pollrun_id",
            "contact_id",
            "local_date",
            "is_active",
            "poll_id",
        )
        for row in rows:
            found[row[0]] = row[1:]
    return found


def _resolve_contacts(connection: Any, cache: IngestCache, runs: list[ParsedRun]) -> int:
    missing = {r.contact_uuid: r.contact_name for r in runs if r.contact_uuid not in cache.contacts}
    if not missing:
        return 0
    for chunk in sql.chunks(list(missing), LOOKUP_CHUNK):
        rows = Contact.objects.filter(connection_id=cache.connection_id, uuid__in=chunk)
        for uuid, pk, unit in rows.values_list("uuid", "id", "org_unit_id"):
            cache.contacts[uuid] = (pk, unit)
    unknown = {u: n for u, n in missing.items() if u not in cache.contacts}
    if not unknown:
        return 0
    created = _fetch_unknown_contacts(connection, cache, list(unknown))
    still = {u: n for u, n in unknown.items() if u not in cache.contacts}
    return created + _create_placeholders(connection, cache, still)


def _fetch_unknown_contacts(connection: Any, cache: IngestCache, uuids: list[str]) -> int:
    """Ask RapidPro for contacts we do not know, through the contact sync when it offers
    ``fetch_contacts(connection, uuids) -> {uuid: Contact}``."""
    try:
        from closedloop.polls import sync
    except ImportError:
        return 0
    fetch = getattr(sync, "fetch_contacts", None)
    if fetch is None:
        return 0
    try:
        with transaction.atomic():
            fetched = fetch(connection, uuids) or {}
    except Exception:  # RapidPro unreachable for this lookup: placeholders will do
        logger.warning("fetching %d unknown contacts failed", len(uuids), exc_info=True)
        return 0
    for uuid, contact in fetched.items():
        cache.contacts[uuid] = (contact.pk, contact.org_unit_id)
    return len(fetched)


def _create_placeholders(connection: Any, cache: IngestCache, names: dict[str, str]) -> int:
    """Minimal Contact + Person for contacts RapidPro did not give us (``modified_on`` NULL
    marks them: the next contact sync completes them). A person already carrying the
    contact's RapidPro identifier is reused."""
    if not names:
        return 0
    account_id = cache.account_id
    existing_people = dict(
        Identifier.objects.filter(
            account_id=account_id,
            kind=Identifier.Kind.EXTERNAL,
            system=RAPIDPRO_SYSTEM,
            value__in=list(names),
            person__rapidpro_contact__isnull=True,
        ).values_list("value", "person_id")
    )
    new_people = [
        Person(account_id=account_id, name=(names[u] or u)[:255])
        for u in names
        if u not in existing_people
    ]
    Person.objects.bulk_create(new_people)
    people = iter(new_people)
    person_of = {u: existing_people[u] if u in existing_people else next(people).pk for u in names}
    Identifier.objects.bulk_create(
        [
            Identifier(
                account_id=account_id,
                person_id=person_of[u],
                kind=Identifier.Kind.EXTERNAL,
                system=RAPIDPRO_SYSTEM,
                value=u,
            )
            for u in names
            if u not in existing_people
        ],
        ignore_conflicts=True,
    )
    contacts = [
        Contact(
            account_id=account_id,
            connection_id=cache.connection_id,
            person_id=person_of[u],
            uuid=u,
            name=(names[u] or "")[:255],
            modified_on=None,
        )
        for u in names
    ]
    Contact.objects.bulk_create(contacts)
    for contact in contacts:
        cache.contacts[contact.uuid] = (contact.pk, None)
    return len(contacts)


def _resolve_pollruns(
    cache: IngestCache, runs: list[ParsedRun]
) -> tuple[dict[str, int], dict[int, dt.date], int]:
    """run uuid → poll run id, poll run id → local date, and how many poll runs were made."""
    unknown_starts = {
        r.start_uuid for r in runs if r.start_uuid and r.start_uuid not in cache.starts
    }
    for chunk in sql.chunks(sorted(unknown_starts), LOOKUP_CHUNK):
        for start_uuid in chunk:
            cache.starts[start_uuid] = None
        rows = FlowStart.objects.filter(account_id=cache.account_id, uuid__in=chunk).values_list(
            "uuid", "pollrun_id", "pollrun__poll_id", "pollrun__local_date"
        )
        for start_uuid, pollrun_id, poll_id, day in rows:
            cache.starts[start_uuid] = (pollrun_id, poll_id, day)

    pollrun_of: dict[str, int] = {}
    local_date_of: dict[int, dt.date] = {}
    wanted: dict[tuple[int, dt.date], dt.datetime] = {}
    universal_runs: list[tuple[ParsedRun, tuple[int, dt.date]]] = []
    for run in runs:
        poll_id = cache.polls[run.flow_uuid].id
        start = cache.starts.get(run.start_uuid) if run.start_uuid else None
        if start is not None and start[1] == poll_id:
            pollrun_of[run.uuid] = start[0]
            local_date_of[start[0]] = start[2]
            continue
        key = (poll_id, run.created_on.astimezone(cache.tz).date())
        universal_runs.append((run, key))
        if key not in cache.universal:
            first = wanted.get(key)
            if first is None or run.created_on < first:
                wanted[key] = run.created_on
    created = 0
    if wanted:
        created = _create_universal(cache, wanted)
    for run, key in universal_runs:
        pollrun_id = cache.universal[key]
        pollrun_of[run.uuid] = pollrun_id
        local_date_of[pollrun_id] = key[1]
    return pollrun_of, local_date_of, created


def _read_universal(cache: IngestCache, keys: list[tuple[int, dt.date]]) -> None:
    polls = sorted({k[0] for k in keys})
    days = sorted({k[1] for k in keys})
    rows = PollRun.objects.filter(
        account_id=cache.account_id,
        type=PollRunType.UNIVERSAL,
        poll_id__in=polls,
        local_date__in=days,
    ).values_list("poll_id", "local_date", "id")
    for poll_id, day, pk in rows:
        cache.universal[(poll_id, day)] = pk


def _create_universal(cache: IngestCache, wanted: dict[tuple[int, dt.date], dt.datetime]) -> int:
    """Universal poll runs for (poll, day) keys: read the existing ones, insert the rest.
    The partial unique constraint (poll, local_date) makes a concurrent insert a no-op
    (ignore_conflicts), and the re-read picks up the winner's row."""
    keys = list(wanted)
    _read_universal(cache, keys)
    missing = [k for k in keys if k not in cache.universal]
    if not missing:
        return 0
    PollRun.objects.bulk_create(
        [
            PollRun(
                account_id=cache.account_id,
                poll_id=poll_id,
                type=PollRunType.UNIVERSAL,
                conducted_on=wanted[(poll_id, day)],
                local_date=day,
            )
            for poll_id, day in missing
        ],
        ignore_conflicts=True,
    )
    _read_universal(cache, missing)
    return len(missing)


# --- writes ------------------------------------------------------------------------------


def _write(
    cache: IngestCache,
    runs: list[ParsedRun],
    existing: dict[str, tuple[Any, ...]],
    pollrun_of: dict[str, int],
    local_date_of: dict[int, dt.date],
    stats: dict[str, Any],
    stale_words: set[tuple[int, int]] | None = None,
) -> None:
    account_id = cache.account_id
    to_dt = sql.datetime_param()
    to_date = sql.date_param()
    new_runs = [r for r in runs if r.uuid not in existing]
    ids = iter(sql.allocate_ids(Response, len(new_runs)))
    response_id: dict[str, int] = {r.uuid: next(ids) for r in new_runs}
    base_active: dict[int, bool] = {}

    # groups whose derived columns must be recomputed (old places of moved runs included)
    contact_ids: set[int] = set()
    pollrun_ids: set[int] = set()
    day_questions: set[int] = set()
    days: set[dt.date] = set()
    word_pairs: set[tuple[int, int]] = set()
    pollrun_poll: dict[int, int] = {}

    inserts: list[tuple[Any, ...]] = []
    updates: list[tuple[Any, ...]] = []
    rewritten: list[int] = []
    answer_specs: list[tuple[int, ParsedRun, list[tuple[QuestionInfo, Any]]]] = []
    for run in runs:
        poll = cache.polls[run.flow_uuid]
        contact_id, org_unit_id = cache.contacts[run.contact_uuid]
        pollrun_id = pollrun_of[run.uuid]
        local_date = local_date_of[pollrun_id]
        matched: dict[int, tuple[QuestionInfo, Any]] = {}
        for value in run.values:
            question = poll.by_key.get(value.key) or poll.by_node.get(value.node)
            if question is None:
                continue  # a result the poll does not track (yet)
            seen = matched.get(question.id)
            if seen is None or (value.time or run.modified_on) >= (seen[1].time or run.modified_on):
                matched[question.id] = (question, value)
        times = [v.time for _, v in matched.values() if v.time is not None]
        updated_on = max(times) if times else run.modified_on
        if run.exit_type == "completed":
            status = ResponseStatus.COMPLETE
        elif matched:
            status = ResponseStatus.PARTIAL
        else:
            status = ResponseStatus.EMPTY
        old = existing.get(run.uuid)
        rid = old[0] if old else response_id[run.uuid]
        response_id[run.uuid] = rid
        row = (
            rid,
            account_id,
            pollrun_id,
            poll.id,
            contact_id,
            run.uuid,
            str(status),
            True,
            to_dt(run.created_on),
            to_dt(updated_on),
            to_dt(run.modified_on),
            to_dt(run.exited_on),
            run.exit_type[:20],
            to_date(local_date),
            org_unit_id,
        )
        if old:
            updates.append(row)
            rewritten.append(rid)
            base_active[rid] = bool(old[5])
            contact_ids.add(old[3])
            pollrun_ids.add(old[2])
            pollrun_poll[old[2]] = old[6]
            days.add(old[4])
            old_poll = cache.polls_by_id.get(old[6])
            if old_poll is not None:
                day_questions.update(old_poll.question_ids)
                word_pairs.update((q, old[2]) for q in old_poll.open_question_ids)
        else:
            inserts.append(row)
            base_active[rid] = True
        contact_ids.add(contact_id)
        pollrun_ids.add(pollrun_id)
        pollrun_poll[pollrun_id] = poll.id
        days.add(local_date)
        answer_specs.append((rid, run, list(matched.values())))

    sql.insert_responses(inserts)
    sql.update_responses(updates)
    if rewritten:
        sql.delete_answers(account_id, rewritten)
    stats["created"] = len(inserts)
    stats["updated"] = len(updates)

    flipped = sql.recompute_active(account_id, contact_ids, pollrun_ids)
    page_ids = set(base_active)
    others = {rid: flag for rid, flag in flipped.items() if rid not in page_ids}
    if others:
        sql.set_answers_active(account_id, others)
        # answers of those responses changed activeness: their words move too
        for pollrun_id in pollrun_ids:
            info = cache.polls_by_id.get(pollrun_poll.get(pollrun_id, -1))
            if info is not None:
                word_pairs.update((q, pollrun_id) for q in info.open_question_ids)

    answers: list[tuple[Any, ...]] = []
    sums: dict[tuple[int, int, dt.date], float] = defaultdict(float)
    numbered: list[tuple[int, tuple[int, int, dt.date]]] = []
    for rid, run, matched_values in answer_specs:
        contact_id, org_unit_id = cache.contacts[run.contact_uuid]
        pollrun_id = pollrun_of[run.uuid]
        local_date = local_date_of[pollrun_id]
        active = flipped.get(rid, base_active[rid])
        day = to_date(local_date)
        for question, value in matched_values:
            number = to_number(value.value)
            if question.type == QuestionType.NUMERIC:
                category = (
                    categorize_number(number, question.rules) if number is not None else OTHER
                )
            else:
                category = localized_name(value.category)
                if category == ALL_RESPONSES:
                    category = ""
            if question.type == QuestionType.OPEN:
                word_pairs.add((question.id, pollrun_id))
            if number is not None:
                group = (question.id, contact_id, local_date)
                sums[group] += number
                numbered.append((len(answers), group))
                day_questions.add(question.id)
            answers.append(
                (
                    account_id,
                    rid,
                    question.id,
                    pollrun_id,
                    contact_id,
                    org_unit_id,
                    active,
                    day,
                    value.value[:MAX_VALUE],
                    number,
                    None,
                    category[:MAX_CATEGORY],
                    to_dt(value.time or run.modified_on),
                )
            )
    # the page's own same-day sums; the SQL pass below only fixes groups spanning pages
    for index, group in numbered:
        row = answers[index]
        answers[index] = (*row[:10], sums[group], *row[11:])
    sql.insert_answers(answers)
    stats["answers"] = len(answers)
    if day_questions:
        sql.recompute_day_sums(account_id, day_questions, contact_ids, days)
    if stale_words is not None:
        stale_words.update(word_pairs)
    elif word_pairs:
        sql.refresh_word_counts(account_id, word_pairs)


def fetch_runs(
    connection: Any,
    ctx: Any = None,
    *,
    after: dt.datetime | None = None,
    before: dt.datetime | None = None,
    backfill: bool = False,
) -> dict[str, Any]:
    """Fetch runs from RapidPro and ingest them page by page (see ``ingest_fetch``)."""
    from closedloop.polls.ingest_fetch import fetch_runs as run_fetch

    return run_fetch(connection, ctx, after=after, before=before, backfill=backfill)
