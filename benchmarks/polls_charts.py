"""Poll-detail charts and participation at scale (suite ``polls``).

Builds one poll of 10 questions (4 numeric, 3 categorical, 3 open) answered weekly for a
year: full size 5,000 contacts in 200 panels, 50 universal poll runs of ~2,175 responses
each → ~108,750 responses and ~1,000,000 answers (8 % of responses empty), plus the
WordCount rollup of the open answers. Rows are written with COPY on PostgreSQL and
``executemany`` on SQLite, then the tables are analysed.

Then measures, as the median of N calls through the real API (token auth, JSON), each
poll-detail chart endpoint over the whole year (``window=12m``, every answer in play):
numeric (+ split by panel, + a supervisor scoped to one region, + cohort and field
filters), categorical, open (word cloud), map; and participation of one poll run by panel
and by cohort. Targets: ≤ 150 ms per chart endpoint, ≤ 100 ms per participation call.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from benchmarks.harness import Context, Measurement, median_of

SIZES = {
    # contacts, panels (regions of 20 panels each), poll runs, responses per run
    "ci": {"contacts": 500, "panels": 20, "runs": 10, "per_run": 220},
    "full": {"contacts": 5_000, "panels": 200, "runs": 50, "per_run": 2_175},
}
RUNS_MEDIAN = {"ci": 5, "full": 15}
CHART_LIMIT = 0.150
PARTICIPATION_LIMIT = 0.100
NUMERIC, CATEGORICAL, OPEN = 4, 3, 3
CATEGORIES = ["Yes", "No", "Maybe", "Other"]
VOCABULARY = [f"word{i}" for i in range(300)] + ["water", "school", "clinic", "road", "food"]
DISTRICTS = ["Gasabo", "Kicukiro", "Nyarugenge", "Huye", "Musanze", "Rubavu"]
EMPTY_SHARE, PARTIAL_SHARE = 0.08, 0.2
CHUNK = 20_000


# --- bulk writes -------------------------------------------------------------------


def bulk_insert(table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> int:
    """Insert rows (ids included): COPY on PostgreSQL, executemany on SQLite."""
    from django.db import connection

    names = ", ".join(f'"{c}"' for c in columns)
    written = 0
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
                for row in rows:
                    copy.write_row(row)
                    written += 1
            return written
        ops = connection.ops
        sql = f'INSERT INTO "{table}" ({names}) VALUES ({", ".join(["%s"] * len(columns))})'  # noqa: S608
        chunk: list[tuple[Any, ...]] = []

        def adapt(value: Any) -> Any:
            if isinstance(value, dt.datetime):
                return ops.adapt_datetimefield_value(value)
            if isinstance(value, dt.date):
                return value.isoformat()
            return value

        for row in rows:
            chunk.append(tuple(adapt(v) for v in row))
            if len(chunk) >= CHUNK:
                cursor.executemany(sql, chunk)
                written += len(chunk)
                chunk = []
        if chunk:
            cursor.executemany(sql, chunk)
            written += len(chunk)
    return written


def reset_sequences(tables: Sequence[str]) -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "  # noqa: S608
                f'(SELECT COALESCE(MAX(id), 1) FROM "{table}"))'
            )


def analyze() -> None:
    """Planner statistics (and, on PostgreSQL, the visibility map that index-only scans
    need — what autovacuum does after a large load)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")


# --- the data ----------------------------------------------------------------------


def _square(lon: float, lat: float, size: float = 0.2) -> dict[str, Any]:
    ring = [[lon, lat], [lon + size, lat], [lon + size, lat + size], [lon, lat + size]]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


def build(ctx: Context) -> dict[str, Any]:
    """The poll world; returns ids and counts the measurements need."""
    from django.db import transaction

    from closedloop.core.tenancy import account_scope

    with account_scope(ctx.account), transaction.atomic():
        info = _build(ctx)
    analyze()
    return info


def _build(ctx: Context) -> dict[str, Any]:  # noqa: PLR0915 - one linear script
    from django.utils import timezone

    from closedloop.people.models import Cohort, Person
    from closedloop.polls import testing as t
    from closedloop.polls.ingest_sql import ANSWER_COLUMNS, RESPONSE_COLUMNS
    from closedloop.polls.models import (
        Answer,
        Contact,
        ContactGroup,
        GroupRole,
        PollRun,
        Question,
        QuestionType,
        Response,
        WordCount,
    )
    from closedloop.polls.stats_filters import account_today
    from closedloop.registry.services import orgunit_create

    size = SIZES[ctx.size]
    rng = random.Random(11)
    account = ctx.account
    conn = t.make_connection(account)
    country = orgunit_create(account=account, actor=None, name="Country")
    region_count = max(1, size["panels"] // 20)
    regions = [
        orgunit_create(account=account, actor=None, name=f"Region {i}", parent=country)
        for i in range(region_count)
    ]
    units = [
        orgunit_create(
            account=account,
            actor=None,
            name=f"District {i}",
            parent=regions[i % region_count],
            geometry=_square(29 + (i % 20) * 0.2, -2 + (i // 20) * 0.2),
        )
        for i in range(size["panels"])
    ]
    panels = ContactGroup.objects.bulk_create(
        [
            ContactGroup(
                account=account,
                connection=conn,
                uuid=t.new_uuid(),
                name=f"Panel {i}",
                role=GroupRole.PANEL,
                org_unit=unit,
            )
            for i, unit in enumerate(units)
        ]
    )
    cohorts = [Cohort.objects.create(account=account, name=f"Cohort {i}") for i in range(5)]
    ContactGroup.objects.bulk_create(
        [
            ContactGroup(
                account=account,
                connection=conn,
                uuid=t.new_uuid(),
                name=cohort.name,
                role=GroupRole.COHORT,
                cohort=cohort,
            )
            for cohort in cohorts
        ]
    )
    n_contacts = size["contacts"]
    contact_units = [units[i % len(units)].pk for i in range(n_contacts)]
    people = Person.objects.bulk_create(
        [
            Person(account=account, name=f"Person {i}", org_unit_id=contact_units[i])
            for i in range(n_contacts)
        ],
        batch_size=1000,
    )
    Person.cohorts.through.objects.bulk_create(
        [
            Person.cohorts.through(person_id=p.pk, cohort_id=cohorts[i % len(cohorts)].pk)
            for i, p in enumerate(people)
        ],
        batch_size=2000,
    )
    contacts = Contact.objects.bulk_create(
        [
            Contact(
                account=account,
                connection=conn,
                person=p,
                uuid=t.new_uuid(),
                name=p.name,
                language="eng",
                panel=panels[i % len(panels)],
                org_unit_id=contact_units[i],
                fields={"district": DISTRICTS[i % len(DISTRICTS)]},
            )
            for i, p in enumerate(people)
        ],
        batch_size=1000,
    )
    poll = t.make_poll(conn, "Weekly check")
    questions: list[Question] = []
    for i in range(NUMERIC + CATEGORICAL + OPEN):
        kind = (
            QuestionType.NUMERIC
            if i < NUMERIC
            else QuestionType.CATEGORICAL
            if i < NUMERIC + CATEGORICAL
            else QuestionType.OPEN
        )
        questions.append(
            t.make_question(
                poll,
                f"q{i}",
                kind,
                categories=CATEGORIES if kind == QuestionType.CATEGORICAL else ["Low", "High"],
                rules=[
                    {"category": "Low", "test": "between", "arguments": [0, 5]},
                    {"category": "High", "test": "gt", "arguments": [5]},
                ]
                if kind == QuestionType.NUMERIC
                else [],
                order=i,
            )
        )
    today = account_today(account)
    runs = PollRun.objects.bulk_create(
        [
            PollRun(
                account=account,
                poll=poll,
                type="universal",
                local_date=today - dt.timedelta(days=7 * (size["runs"] - 1 - k)),
                conducted_on=timezone.make_aware(
                    dt.datetime.combine(
                        today - dt.timedelta(days=7 * (size["runs"] - 1 - k)), dt.time(9)
                    ),
                    dt.UTC,
                ),
            )
            for k in range(size["runs"])
        ]
    )
    started = time.perf_counter()
    response_rows: list[tuple[Any, ...]] = []
    answer_rows: list[tuple[Any, ...]] = []
    words: Counter[tuple[int, int, int, str]] = Counter()
    response_id = answer_id = 0
    weights = [1.0 / (rank + 1) for rank in range(len(VOCABULARY))]
    for run in runs:
        chosen = rng.sample(range(n_contacts), min(size["per_run"], n_contacts))
        at = run.conducted_on + dt.timedelta(minutes=30)
        for index in chosen:
            contact = contacts[index]
            unit = contact_units[index]
            response_id += 1
            draw = rng.random()
            status = (
                "E" if draw < EMPTY_SHARE else "P" if draw < EMPTY_SHARE + PARTIAL_SHARE else "C"
            )
            response_rows.append(
                (
                    response_id,
                    account.pk,
                    run.pk,
                    poll.pk,
                    contact.pk,
                    t.new_uuid(),
                    status,
                    True,
                    at,
                    at,
                    at,
                    at if status == "C" else None,
                    "completed" if status == "C" else "",
                    run.local_date,
                    unit,
                )
            )
            if status == "E":
                continue
            for question in questions:
                answer_id += 1
                category = ""
                number: float | None = None
                if question.type == QuestionType.NUMERIC:
                    number = float(rng.randint(0, 12))
                    value = str(int(number))
                    category = "Low" if number <= 5 else "High"
                elif question.type == QuestionType.CATEGORICAL:
                    value = category = rng.choice(CATEGORIES)
                else:
                    tokens = rng.choices(VOCABULARY, weights=weights, k=rng.randint(2, 6))
                    value = " ".join(tokens)
                    for token in tokens:
                        words[(question.pk, run.pk, unit, token)] += 1
                answer_rows.append(
                    (
                        answer_id,
                        account.pk,
                        response_id,
                        question.pk,
                        run.pk,
                        contact.pk,
                        unit,
                        True,
                        run.local_date,
                        value,
                        number,
                        number,
                        category,
                        at,
                    )
                )
    generated = time.perf_counter() - started
    started = time.perf_counter()
    bulk_insert(Response._meta.db_table, list(RESPONSE_COLUMNS), response_rows)
    bulk_insert(Answer._meta.db_table, ["id", *ANSWER_COLUMNS], answer_rows)
    bulk_insert(
        WordCount._meta.db_table,
        ["id", "account_id", "question_id", "pollrun_id", "org_unit_id", "word", "count"],
        ((i + 1, account.pk, q, r, u, w, n) for i, ((q, r, u, w), n) in enumerate(words.items())),
    )
    reset_sequences([Response._meta.db_table, Answer._meta.db_table, WordCount._meta.db_table])
    return {
        "poll": poll.pk,
        "questions": {
            "numeric": questions[0].pk,
            "categorical": questions[NUMERIC].pk,
            "open": questions[NUMERIC + CATEGORICAL].pk,
        },
        "pollrun": runs[-1].pk,
        "region": regions[0].pk,
        "cohort_group": ContactGroup.objects.get(role=GroupRole.COHORT, name="Cohort 0").pk,
        "panel": panels[0].pk,
        "answers": len(answer_rows),
        "responses": len(response_rows),
        "word_rows": len(words),
        "contacts": n_contacts,
        "panels": len(panels),
        "generate_seconds": round(generated, 2),
        "load_seconds": round(time.perf_counter() - started, 2),
    }


def _client(ctx: Context, role: str = "admin", scope: int | None = None) -> Any:
    from django.test import Client

    from closedloop.accounts.models import ApiToken, Membership, User, hash_token

    user = User.objects.create_user(f"{role}-{scope}@example.org", "bench-password")
    membership = Membership.objects.create(account=ctx.account, user=user, role=role)
    if scope is not None:
        from closedloop.core.tenancy import account_scope

        with account_scope(ctx.account):
            membership.scope.set([scope])
    raw = ApiToken.generate()
    ApiToken.objects.create(user=user, name="bench", key_hash=hash_token(raw), hint=raw[:8])
    return Client(headers={"authorization": f"Bearer {raw}", "x-account": ctx.account.slug})


def bench_charts(ctx: Context) -> list[Measurement]:
    info = build(ctx)
    admin = _client(ctx)
    supervisor = _client(ctx, "supervisor", info["region"])
    runs = RUNS_MEDIAN[ctx.size]
    q = info["questions"]
    year = "window=12m"
    cases: list[tuple[str, Any, str, float, str]] = [
        ("numeric", admin, f"/questions/{q['numeric']}/chart?{year}", CHART_LIMIT, "chart"),
        (
            "numeric_split_by_panel",
            admin,
            f"/questions/{q['numeric']}/chart?{year}&split=1",
            CHART_LIMIT,
            "chart",
        ),
        (
            "numeric_supervisor_scope",
            supervisor,
            f"/questions/{q['numeric']}/chart?{year}",
            CHART_LIMIT,
            "chart",
        ),
        (
            "numeric_cohort_and_field",
            admin,
            f"/questions/{q['numeric']}/chart?{year}&cohort={info['cohort_group']}"
            "&field.district=gasabo",
            CHART_LIMIT,
            "chart",
        ),
        ("numeric_this_month", admin, f"/questions/{q['numeric']}/chart", CHART_LIMIT, "chart"),
        ("categorical", admin, f"/questions/{q['categorical']}/chart?{year}", CHART_LIMIT, "chart"),
        ("open_word_cloud", admin, f"/questions/{q['open']}/chart?{year}", CHART_LIMIT, "chart"),
        ("map_numeric", admin, f"/questions/{q['numeric']}/map?{year}", CHART_LIMIT, "chart"),
        (
            "map_categorical",
            admin,
            f"/questions/{q['categorical']}/map?{year}",
            CHART_LIMIT,
            "chart",
        ),
        (
            "participation_by_panel",
            admin,
            f"/pollruns/{info['pollrun']}/participation?by=panel",
            PARTICIPATION_LIMIT,
            "participation",
        ),
        (
            "participation_by_cohort",
            admin,
            f"/pollruns/{info['pollrun']}/participation?by=cohort",
            PARTICIPATION_LIMIT,
            "participation",
        ),
    ]
    extra = {
        "answers": info["answers"],
        "responses": info["responses"],
        "contacts": info["contacts"],
        "panels": info["panels"],
    }
    results = [
        ctx.measure(
            "polls.build_chart_data",
            info["load_seconds"],
            float("inf"),
            "information only",
            word_rows=info["word_rows"],
            generate_seconds=info["generate_seconds"],
            **extra,
        )
    ]
    for name, client, path, limit, kind in cases:
        url = f"/api/v1/polls{path}"
        full_name = f"polls.{kind}_{name}" if kind == "chart" else f"polls.{name}"
        target = f"≤ {int(limit * 1000)} ms median of {runs} at {info['answers']:,} answers"
        first = client.get(url)
        if first.status_code != 200:
            results.append(
                ctx.failed(
                    full_name, target, f"GET {url} → {first.status_code}: {first.content[:300]!r}"
                )
            )
            continue
        seconds = median_of(runs, lambda client=client, url=url: client.get(url))
        results.append(ctx.measure(full_name, seconds, limit, target, url=url, **extra))
    return results


BENCHMARKS = {"charts": bench_charts}
