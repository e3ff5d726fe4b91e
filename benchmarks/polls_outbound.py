"""Contacts, participation, inbox, table source and broadcast audiences at scale (suite ``polls``).

Reuses the poll world of :mod:`benchmarks.polls_charts` (full size: 5,000 contacts in 200
panels, 50 poll runs, ~1,000,000 answers) and adds 20 messages per contact (100,000 at full
size). Measures, as medians through the real stack (session-authenticated pages, token API):
the contacts list with participation icons, the participation matrix, the inbox page and
API, the polls table source with two questions over a year (every visible contact), and the
non-respondents audience of one poll run.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from typing import Any

from benchmarks.harness import Context, Measurement, median_of, timed
from benchmarks.polls_charts import RUNS_MEDIAN, _client, analyze, build, bulk_insert

PAGE_LIMIT = 0.150
TABLE_LIMIT = 1.0
AUDIENCE_LIMIT = 0.100
MESSAGES_PER_CONTACT = 20
PLAIN_STATIC = "django.contrib.staticfiles.storage.StaticFilesStorage"


def _messages(ctx: Context) -> int:
    from django.db import transaction

    from closedloop.core.tenancy import account_scope
    from closedloop.polls.models import Connection, Contact, Message

    rng = random.Random(5)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with account_scope(ctx.account), transaction.atomic():
        connection = Connection.objects.get()
        contacts = list(Contact.objects.values_list("pk", flat=True))
        rows = (
            (
                ctx.account.pk,
                connection.pk,
                str(uuid.UUID(int=rng.getrandbits(128))),
                contact,
                "tel:+250788000000",
                "in" if i % 2 == 0 else "out",
                "text",
                "handled",
                f"message {i} of {contact}",
                "",
                False,
                start + dt.timedelta(minutes=rng.randrange(0, 500_000)),
            )
            for contact in contacts
            for i in range(MESSAGES_PER_CONTACT)
        )
        written = bulk_insert(
            Message._meta.db_table,
            [
                "account_id",
                "connection_id",
                "uuid",
                "contact_id",
                "urn",
                "direction",
                "type",
                "status",
                "text",
                "flow_uuid",
                "is_archived",
                "created_on",
            ],
            rows,
        )
    analyze()
    return written


def _session(ctx: Context, role: str = "admin", scope: int | None = None) -> Any:
    from django.test import Client

    from closedloop.accounts.models import Membership, User
    from closedloop.core.tenancy import account_scope

    user = User.objects.create_user(f"page-{role}-{scope}@example.org", "bench-password")
    membership = Membership.objects.create(account=ctx.account, user=user, role=role)
    if scope is not None:
        with account_scope(ctx.account):
            membership.scope.set([scope])
    client = Client()
    client.force_login(user)
    return client, membership


def _get(client: Any, url: str) -> None:
    response = client.get(url)
    if response.status_code != 200:
        raise RuntimeError(f"{url} answered {response.status_code}")


def bench_contacts(ctx: Context) -> list[Measurement]:
    from django.conf import settings
    from django.test import override_settings
    from django.urls import reverse

    from closedloop.core.tablesource import table_sources
    from closedloop.core.tenancy import account_scope
    from closedloop.polls import outbound
    from closedloop.polls.models import Audience, PollRun

    info = build(ctx)
    messages = _messages(ctx)
    runs = RUNS_MEDIAN[ctx.size]
    admin, admin_membership = _session(ctx)
    supervisor, _sm = _session(ctx, "supervisor", info["region"])
    api = _client(ctx)
    q = info["questions"]
    results: list[Measurement] = []
    pages = [
        ("contact_list", admin, reverse("polls:contact_list")),
        ("contact_list_supervisor", supervisor, reverse("polls:contact_list")),
        ("contact_list_search", admin, reverse("polls:contact_list") + "?q=Person%2012"),
        ("contact_list_panel", admin, reverse("polls:contact_list") + f"?panel={info['panel']}"),
        ("participation_matrix", admin, reverse("polls:participation")),
        ("inbox_page", admin, reverse("polls:inbox")),
        ("inbox_page_supervisor", supervisor, reverse("polls:inbox")),
        ("inbox_api", api, "/api/v1/polls/inbox"),
        ("message_log", admin, reverse("polls:message_log")),
    ]
    # pages render {% static %}; the benchmark process has no collected manifest
    plain = {**settings.STORAGES, "staticfiles": {"BACKEND": PLAIN_STATIC}}
    with override_settings(STORAGES=plain):
        for name, client, url in pages:
            _get(client, url)  # warm up
            seconds = median_of(runs, lambda c=client, u=url: _get(c, u))
            results.append(ctx.measure(name, seconds, PAGE_LIMIT, "≤ 150 ms", messages=messages))
    source = table_sources.get("polls")
    params = {
        "questions": [q["numeric"], q["categorical"]],
        "start": dt.date(2025, 1, 1),
        "end": dt.date(2027, 12, 31),
    }
    with account_scope(ctx.account):

        def rows() -> int:
            return sum(
                1
                for _ in source.rows(
                    account=ctx.account, membership=admin_membership, params=params
                )
            )

        seconds, count = timed(rows)
        seconds = min(seconds, median_of(max(3, runs // 3), rows))
        results.append(
            ctx.measure(
                "table_source_2_questions",
                seconds,
                TABLE_LIMIT,
                "≤ 1 s",
                rows=count,
                answers=info["answers"],
            )
        )
        pollrun = PollRun.objects.get(pk=info["pollrun"])

        def audience() -> int:
            return len(list(outbound.audience_contacts(pollrun, Audience.NON_RESPONDENTS, None)))

        seconds = median_of(runs, audience)
        results.append(
            ctx.measure(
                "broadcast_audience_non_respondents",
                seconds,
                AUDIENCE_LIMIT,
                "≤ 100 ms",
                recipients=audience(),
            )
        )
    return results


BENCHMARKS = {"contacts": bench_contacts}
