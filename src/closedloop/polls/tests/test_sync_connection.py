"""A whole sync of a connection against the double: every step, idempotency, 429s, API
drift and tenancy."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.forms.models import model_to_dict

from closedloop.core.tenancy import account_scope, scopes_disabled
from closedloop.people.models import Cohort, CustomField, Identifier, Person
from closedloop.polls import client as rp
from closedloop.polls import sync
from closedloop.polls.models import (
    Boundary,
    Connection,
    Contact,
    ContactGroup,
    DataField,
    Message,
    Poll,
    Question,
)
from closedloop.polls.tests.sync_helpers import activate, arrange, choose, connect
from closedloop.registry.models import OrgUnit

pytestmark = pytest.mark.django_db

SNAPSHOT_MODELS = [
    Poll,
    Question,
    ContactGroup,
    DataField,
    Boundary,
    Contact,
    Message,
    Person,
    Identifier,
    CustomField,
    Cohort,
    OrgUnit,
]


def snapshot(account: Any) -> dict[str, Any]:
    """Every row (all columns) of the tables the metadata and contact sync write."""
    out: dict[str, Any] = {}
    with scopes_disabled():
        for model in SNAPSHOT_MODELS:
            rows = model.objects.filter(account=account).order_by("pk")
            out[model.__name__] = [
                {**model_to_dict(row), "updated_at": getattr(row, "updated_at", None)}
                for row in rows
            ]
        links = Person.cohorts.through.objects.filter(person__account=account)
        out["cohort_links"] = sorted(links.values_list("person_id", "cohort_id"))
    return out


def _populate(fake: Any, r: Any) -> dict[str, dict[str, Any]]:
    now = dt.datetime.now(dt.UTC)
    people = {
        "ana": fake.add_contact(
            "Ana",
            ["tel:+250788000001"],
            groups=[r.north["uuid"], r.teachers["uuid"]],
            fields={"district": "Gasabo", "age": 30},
        ),
        "ben": fake.add_contact(
            "Ben", ["tel:+250788000002", "whatsapp:250788000002"], groups=[r.northvale["uuid"]]
        ),
        "cara": fake.add_contact("Cara", [], groups=[r.south["uuid"], r.parents["uuid"]]),
    }
    for who, value in (("ana", 2), ("ben", 7)):
        fake.add_run(
            r.health["uuid"], people[who]["uuid"], values={"children": value}, exit_type="completed"
        )
    fake.add_message(people["ana"]["uuid"], "hello", created_on=now - dt.timedelta(hours=3))
    fake.add_message(
        people["ben"]["uuid"], "How many?", direction="out", created_on=now - dt.timedelta(hours=2)
    )
    return people


@pytest.fixture
def synced(world: Any, fake_rapidpro: Any) -> Any:
    r = arrange(fake_rapidpro)
    people = _populate(fake_rapidpro, r)
    conn = connect(world, fake_rapidpro)
    with account_scope(world.account):
        sync.sync_connection(conn, steps=["flows", "groups", "fields"])
    choose(world, conn, r)
    activate(world, conn, r.health["uuid"])
    return r, people, conn


def test_a_full_sync_runs_every_step_and_stores_the_counts(
    world: Any, fake_rapidpro: Any, synced: Any
) -> None:
    r, people, conn = synced
    with account_scope(world.account):
        counts = sync.sync_connection(conn)
        conn = Connection.objects.get(pk=conn.pk)
        questions = dict(
            Question.objects.filter(poll__flow_uuid=r.health["uuid"]).values_list(
                "result_key", "type"
            )
        )
        contacts = Contact.objects.count()
        north = OrgUnit.objects.get(pk=world.region_north.pk)
    assert questions == {"children": "numeric", "color": "categorical", "comment": "open"}
    assert counts["flows"] == 2 and counts["questions"] == 3
    assert counts["groups"] == 6 and counts["fields"] == 3
    assert counts["boundaries"] == 3 and counts["boundary_units"] == 1
    assert counts["contacts_created"] == 3 and contacts == 3
    assert counts["messages"] == 2
    assert conn.last_counts == counts
    assert conn.workspace_name == "Fake RapidPro workspace"
    assert conn.workspace_timezone == "Africa/Kigali"
    assert conn.contacts_after is not None and conn.messages_after is not None
    assert north.geometry is not None
    # the runs step is the ingest's: it ran on the same connection
    assert "runs" in counts and "runs_created" in counts  # the ingest's counts, prefixed


def test_a_second_sync_changes_nothing(world: Any, fake_rapidpro: Any, synced: Any) -> None:
    _r, _people, conn = synced
    steps = ["flows", "groups", "fields", "boundaries", "contacts", "messages"]
    with account_scope(world.account):
        sync.sync_connection(conn, steps=steps)
        before = snapshot(world.account)
        again = sync.sync_connection(Connection.objects.get(pk=conn.pk), steps=steps)
        after = snapshot(world.account)
    assert before == after
    assert again["polls_created"] == 0 and again["polls_updated"] == 0
    assert again["contacts_created"] == 0 and again["contacts_updated"] == 0
    assert again["messages_created"] == 0 and again["messages_updated"] == 0
    # and a full re-read of every contact changes nothing either
    with account_scope(world.account):
        sync.sync_contacts(Connection.objects.get(pk=conn.pk), full=True)
    assert snapshot(world.account) == after


def test_rate_limits_are_honoured_and_the_sync_completes(
    world: Any, fake_rapidpro: Any, synced: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _r, _people, conn = synced
    waits: list[float] = []
    monkeypatch.setattr(rp, "sleep", waits.append)
    seen = {"n": 0}
    original = fake_rapidpro.handle

    def throttling(method: str, path: str, *args: Any) -> Any:
        seen["n"] += 1
        if seen["n"] % 3 == 0:  # every third request first answers 429
            fake_rapidpro.throttle(times=1, retry_after=2 + seen["n"] % 2)
        return original(method, path, *args)

    monkeypatch.setattr(fake_rapidpro, "handle", throttling)
    with account_scope(world.account):
        counts = sync.sync_connection(
            conn, steps=["flows", "groups", "fields", "boundaries", "contacts", "messages"]
        )
        assert Contact.objects.count() == 3
    throttled = [r for r in fake_rapidpro.state.requests]
    assert waits and set(waits) <= {2, 3}
    assert counts["contacts_created"] == 3 and counts["messages"] == 2
    assert len(throttled) > len(waits)


def test_api_drift_is_tolerated(world: Any, fake_rapidpro: Any, synced: Any) -> None:
    _r, people, conn = synced
    fake_rapidpro.drift = True  # unknown fields added, optional ones missing
    with account_scope(world.account):
        counts = sync.sync_connection(
            conn, steps=["flows", "groups", "fields", "boundaries", "contacts", "messages"]
        )
        ana = Contact.objects.get(uuid=people["ana"]["uuid"])
    assert counts["contacts_created"] == 3 and counts["messages"] == 2
    assert ana.last_seen_on is None and ana.name == "Ana"


def test_unknown_steps_are_refused(world: Any, fake_rapidpro: Any, synced: Any) -> None:
    _r, _people, conn = synced
    with account_scope(world.account), pytest.raises(ValueError, match="nonsense"):
        sync.sync_connection(conn, steps=["flows", "nonsense"])


def test_a_sync_of_account_a_never_touches_account_b(
    world: Any, fake_rapidpro: Any, synced: Any
) -> None:
    _r, _people, conn = synced
    with account_scope(world.other_account):
        from closedloop.polls import testing as t

        other = t.make_connection(
            world.other_account, host_url=fake_rapidpro.url, token=fake_rapidpro.token
        )
        sync.sync_connection(
            other, steps=["flows", "groups", "fields", "boundaries", "contacts", "messages"]
        )
    before = snapshot(world.other_account)
    with account_scope(world.account):
        sync.sync_connection(conn, steps=["flows", "groups", "fields", "boundaries", "contacts"])
        assert Contact.objects.count() == 3
        assert all(p.connection_id == conn.pk for p in Poll.objects.all())
    assert snapshot(world.other_account) == before
    with scopes_disabled():
        assert Contact.objects.filter(account=world.other_account).count() == 0  # no roles there
        assert Poll.objects.filter(account=world.other_account).count() == 2


def test_fetch_contacts_reads_unknown_contacts_whatever_their_groups(
    world: Any, fake_rapidpro: Any, synced: Any
) -> None:
    _r, _people, conn = synced
    stranger = fake_rapidpro.add_contact("Stranger", ["tel:+250788000077"])
    with account_scope(world.account):
        found = sync.fetch_contacts(conn, [stranger["uuid"], "no-such-uuid"])
        conn.refresh_from_db()
    assert set(found) == {stranger["uuid"]}
    row = found[stranger["uuid"]]
    assert row.name == "Stranger" and row.org_unit_id is None and not row.is_active
    assert conn.contacts_after is None  # the watermark did not move
