"""The polls part of the demo: a RapidPro workspace synced through the real client.

The build starts an in-process :class:`~closedloop.polls.rapidpro_double.FakeRapidPro`
seeded from the constants below, with one panel group per district of the demo registry
(named like the district, so each panel links to its org unit) and three cohorts. It adds
a connection to it as the demo admin, picks every flow as a poll, the districts as panels
and the cohorts as people cohorts, shows two contact fields, runs a real
:func:`~closedloop.polls.sync.sync_connection` (client, ingest, word counts: the same path
as production) and adds an indicator. The double then stops and the connection is pointed
at ``http://127.0.0.1:<DEMO_RAPIDPRO_PORT>``, where ``closedloop demo`` serves the same
seeded workspace again (``closedloop fake-rapidpro --demo``), so "Sync now", starting a
poll and sending a message work in the demo.

The double's data depends only on the constants, the registry's region/district names and
the day the demo was built (the connection's creation day): the served double and the
synced data always match.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

DEMO_RAPIDPRO_SEED = 2026
DEMO_RAPIDPRO_CONTACTS = 600
DEMO_RAPIDPRO_POLLS = 3
DEMO_RAPIDPRO_DAYS = 56  # eight weeks of weekly poll runs
DEMO_RAPIDPRO_TOKEN = "demo-rapidpro-token"  # noqa: S105 - a local test double's token
CONNECTION_NAME = "Demo RapidPro"
ADMIN_EMAIL = "admin@demo.closedloop.org"
VISIBLE_FIELDS = ("gender", "age")
UTC = dt.UTC


def demo_regions(account: Any) -> dict[str, list[str]]:
    """The registry's regions → their districts' names (ordered by code)."""
    from closedloop.core.tenancy import scopes_disabled
    from closedloop.registry.models import OrgUnit

    regions: dict[str, list[str]] = {}
    with scopes_disabled():
        units = OrgUnit.objects.filter(account=account, type__name__in=("Region", "District"))
        rows = list(units.order_by("code").values_list("pk", "name", "type__name", "parent_id"))
    names = {pk: name for pk, name, kind, _parent in rows if kind == "Region"}
    for name in names.values():
        regions[name] = []
    for _pk, name, kind, parent in rows:
        if kind == "District" and parent in names:
            regions[names[parent]].append(name)
    return {region: districts for region, districts in regions.items() if districts}


def end_of_data(day: dt.date) -> dt.datetime:
    """The generated runs end at midnight (UTC) starting ``day``."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=UTC)


def make_demo_double(
    regions: dict[str, list[str]], end: dt.datetime, *, host: str = "127.0.0.1", port: int = 0
) -> Any:
    """The seeded demo workspace (not started)."""
    from closedloop.polls.rapidpro_double import FakeRapidPro

    server = FakeRapidPro(seed=DEMO_RAPIDPRO_SEED, token=DEMO_RAPIDPRO_TOKEN, host=host, port=port)
    server.state.org["name"] = "Demo Ministry (RapidPro)"
    server.generate(
        contacts=DEMO_RAPIDPRO_CONTACTS,
        polls=DEMO_RAPIDPRO_POLLS,
        days=DEMO_RAPIDPRO_DAYS,
        end=end,
        regions=regions,
    )
    return server


def served_demo_double(*, host: str = "127.0.0.1", port: int = 0) -> Any:
    """The workspace the demo's connection was synced from (needs the demo loaded)."""
    from closedloop.accounts.models import Account
    from closedloop.core.demo import DEMO_SLUG
    from closedloop.core.tenancy import scopes_disabled
    from closedloop.polls.models import Connection

    account = Account.objects.filter(slug=DEMO_SLUG).first()
    with scopes_disabled():
        connection = (
            Connection.objects.filter(account=account, name=CONNECTION_NAME).first()
            if account is not None
            else None
        )
    if connection is None:
        raise LookupError("The demo data is not loaded (run `closedloop demo-data`).")
    return make_demo_double(
        demo_regions(account), end_of_data(connection.created_at.astimezone(UTC).date()),
        host=host, port=port,
    )  # fmt: skip


def demo_host_url() -> str:
    from django.conf import settings

    return f"http://127.0.0.1:{settings.DEMO_RAPIDPRO_PORT}"


def build_polls_demo(account: Any, users: dict[str, Any], result: Any) -> None:
    from django.utils import timezone

    from closedloop.polls import services
    from closedloop.polls.models import Connection, ContactGroup, DataField, Poll
    from closedloop.polls.sync import sync_connection
    from closedloop.registry.models import OrgUnit

    admin = users.get(ADMIN_EMAIL)
    regions = demo_regions(account)
    if admin is None or not regions:
        return
    today = timezone.now().astimezone(UTC).date()
    server = make_demo_double(regions, end_of_data(today))
    server.start()
    try:
        connection = services.connection_create(
            account=account,
            name=CONNECTION_NAME,
            host_url=server.url,
            token=DEMO_RAPIDPRO_TOKEN,
            user=admin,
        )
        sync_connection(connection, steps=("flows", "groups", "fields"))
        services.set_poll_selection(
            connection=connection,
            flow_uuids=Poll.objects.filter(connection=connection).values_list(
                "flow_uuid", flat=True
            ),
            user=admin,
        )
        units = dict(
            OrgUnit.objects.filter(account=account, type__name="District").values_list("name", "pk")
        )
        roles: dict[int, tuple[str, int | None]] = {}
        for group in ContactGroup.objects.filter(connection=connection):
            if group.name in units:
                roles[group.pk] = ("panel", units[group.name])
            else:
                roles[group.pk] = ("cohort", None)
        services.set_group_roles(connection=connection, roles=roles, user=admin)
        keys = DataField.objects.filter(connection=connection, key__in=VISIBLE_FIELDS)
        services.set_visible_fields(
            connection=connection, keys=keys.values_list("key", flat=True), user=admin
        )
        counts = sync_connection(connection)
    finally:
        server.stop()
    now = timezone.now()
    Connection.objects.filter(pk=connection.pk).update(
        host_url=demo_host_url(),
        last_success_at=now,
        next_sync_at=now + dt.timedelta(minutes=connection.sync_interval_minutes),
        consecutive_failures=0,
    )
    indicator = _demo_indicator(account, admin, today)
    summary = result.counts.setdefault("polls", {})
    summary["rapidpro_contacts"] = (
        counts.get("contacts", 0) or Connection.objects.get(pk=connection.pk).contacts.count()
    )
    summary["polls"] = Poll.objects.filter(connection=connection, is_active=True).count()
    summary["poll_responses"] = sum(
        v for k, v in counts.items() if k in ("runs_created", "runs_responses")
    )
    summary["indicators"] = 1 if indicator is not None else 0


def _demo_indicator(account: Any, admin: Any, today: dt.date) -> Any:
    """ "Children seen at the clinic": the first numeric question, baseline vs follow-up."""
    from closedloop.polls import services
    from closedloop.polls.models import Question, QuestionType

    question = (
        Question.objects.filter(
            poll__connection__account=account, poll__is_active=True, type=QuestionType.NUMERIC
        )
        .order_by("poll__name", "order")
        .first()
    )
    if question is None:
        return None
    start = today - dt.timedelta(days=DEMO_RAPIDPRO_DAYS)
    return services.indicator_create(
        account=account,
        user=admin,
        name=question.display_name.rstrip("?")[:80],
        start_date=start,
        end_date=today,
        baseline_question=question,
        follow_up_question=question,
        y_axis_title=question.display_name[:80],
    )


def purge_polls_demo(account: Any) -> None:
    """Delete the account's polls rows children first (the registry purge does the rest)."""
    from closedloop.core.tenancy import scopes_disabled
    from closedloop.polls import models as m

    ordered = (
        m.SampleAnswer, m.WordCount, m.Answer, m.Response, m.FlowStart, m.Broadcast,
        m.Message, m.PollRun, m.Question, m.Indicator, m.PollsSettings, m.Poll, m.Contact,
        m.DataField, m.Boundary, m.ContactGroup, m.Connection,
    )  # fmt: skip
    with scopes_disabled():
        recipients = m.Broadcast.recipients.through
        recipients.objects.filter(broadcast__account=account)._raw_delete("default")
        for model in ordered:
            model._base_manager.filter(account=account)._raw_delete("default")
