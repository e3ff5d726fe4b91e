"""Sync of flows → polls and questions, groups, fields, boundaries and messages (real client,
RapidPro double)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from closedloop.core.tenancy import account_scope
from closedloop.polls import sync
from closedloop.polls.models import (
    Boundary,
    ContactGroup,
    DataField,
    GroupRole,
    Message,
    Poll,
    Question,
    QuestionType,
)
from closedloop.polls.rapidpro_double import payloads
from closedloop.polls.tests.sync_helpers import SQUARE, activate, arrange, choose, connect
from closedloop.registry.models import OrgUnit

pytestmark = pytest.mark.django_db

#: the sample definitions payload shipped with the double: legacy (pre-spec-13) flow format
LEGACY_DEFINITIONS = Path(payloads.__file__).parent / "definitions.json"


@pytest.fixture
def setup(world: Any, fake_rapidpro: Any) -> Any:
    remote = arrange(fake_rapidpro)
    conn = connect(world, fake_rapidpro)
    return remote, conn


def _questions(conn: Any) -> dict[str, Question]:
    return {q.result_key: q for q in Question.objects.filter(poll__connection=conn)}


def test_flows_become_polls_and_single_message_flows_are_skipped(
    world: Any, fake_rapidpro: Any, setup: Any
) -> None:
    remote, conn = setup
    with account_scope(world.account):
        counts = sync.sync_flows(conn)
        polls = {p.rapidpro_name: p for p in Poll.objects.filter(connection=conn)}
    assert set(polls) == {"Health check", "Registration"}
    assert counts["flows"] == 2 and counts["polls_created"] == 2
    health = polls["Health check"]
    assert health.flow_uuid == remote.health["uuid"]
    assert health.is_active is False and health.is_present and health.flow_type == "message"
    # questions only for polls in use
    assert counts["questions"] == 0


def test_questions_come_from_results_with_numeric_rules_from_the_v13_router(
    world: Any, fake_rapidpro: Any, setup: Any
) -> None:
    remote, conn = setup
    with account_scope(world.account):
        sync.sync_flows(conn)
        activate(world, conn, remote.health["uuid"])
        counts = sync.sync_flows(conn)
        questions = _questions(conn)
    assert counts["questions"] == 3 and counts["questions_created"] == 3
    children, color, comment = questions["children"], questions["color"], questions["comment"]
    assert children.type == QuestionType.NUMERIC
    assert children.rules == [
        {"category": "Few", "test": "between", "arguments": [0.0, 2.0]},
        {"category": "Many", "test": "gte", "arguments": [3.0]},
    ]
    assert children.categories == ["Few", "Many", "Other"]
    assert children.rapidpro_name == "Children" and children.order == 0
    assert children.node_uuids == remote.health["results"][0]["node_uuids"]
    assert color.type == QuestionType.CATEGORICAL and color.rules == []
    assert color.categories == ["Red", "Blue", "Other"] and color.order == 1
    assert comment.type == QuestionType.OPEN and comment.order == 2
    definitions = [
        params
        for m, path, params in fake_rapidpro.state.requests
        if path.endswith("definitions.json")
    ]
    assert definitions == [{"flow": remote.health["uuid"]}]


def test_custom_names_type_overrides_and_hidden_flags_survive_resyncs(
    world: Any, fake_rapidpro: Any, setup: Any
) -> None:
    remote, conn = setup
    with account_scope(world.account):
        sync.sync_flows(conn)
        activate(world, conn, remote.health["uuid"])
        sync.sync_flows(conn)
        poll = Poll.objects.get(connection=conn, flow_uuid=remote.health["uuid"])
        poll.name = "Kids survey"
        poll.save()
        q = _questions(conn)
        q["children"].name, q["children"].is_hidden = "How many kids", True
        q["children"].save()
        q["color"].type, q["color"].type_overridden = QuestionType.OPEN, True
        q["color"].save()
        # RapidPro renames the flow and a result
        fake_rapidpro.state.flows[0]["name"] = "Health check v2"
        fake_rapidpro.state.flows[0]["results"][0]["name"] = "Number of children"
        fake_rapidpro.state.touch()
        sync.sync_flows(conn)
        poll.refresh_from_db()
        q = _questions(conn)
    assert poll.name == "Kids survey" and poll.rapidpro_name == "Health check v2"
    assert poll.display_name == "Kids survey"
    assert q["children"].name == "How many kids" and q["children"].is_hidden
    assert q["children"].rapidpro_name == "Number of children"
    assert q["color"].type == QuestionType.OPEN and q["color"].type_overridden


def test_vanished_flows_and_questions_are_kept_but_marked_absent(
    world: Any, fake_rapidpro: Any, setup: Any
) -> None:
    remote, conn = setup
    with account_scope(world.account):
        sync.sync_flows(conn)
        activate(world, conn, remote.health["uuid"])
        sync.sync_flows(conn)
        fake_rapidpro.state.flows[0]["results"].pop()  # "comment" removed from the flow
        fake_rapidpro.state.flows[0]["archived"] = True
        fake_rapidpro.state.flows.remove(remote.other_flow)
        fake_rapidpro.state.touch()
        counts = sync.sync_flows(conn)
        polls = {p.flow_uuid: p for p in Poll.objects.filter(connection=conn)}
        q = _questions(conn)
    assert counts["polls_vanished"] == 1 and counts["questions_vanished"] == 1
    assert polls[remote.other_flow["uuid"]].is_present is False
    health = polls[remote.health["uuid"]]
    assert health.is_present and health.archived and health.is_active
    assert q["comment"].is_present is False
    assert q["children"].is_present and q["color"].is_present
    with account_scope(world.account):
        # back in RapidPro: present again
        fake_rapidpro.state.flows.append(remote.other_flow)
        fake_rapidpro.state.touch()
        sync.sync_flows(conn)
        assert Poll.objects.get(flow_uuid=remote.other_flow["uuid"]).is_present


def test_a_legacy_definitions_export_gives_no_rules_and_does_not_fail(
    world: Any, fake_rapidpro: Any, setup: Any
) -> None:
    remote, conn = setup
    legacy = json.loads(LEGACY_DEFINITIONS.read_text())["flows"][0]
    fake_rapidpro.state.definitions[remote.health["uuid"]] = legacy
    with account_scope(world.account):
        sync.sync_flows(conn)
        activate(world, conn, remote.health["uuid"])
        sync.sync_flows(conn)
        q = _questions(conn)
    assert q["children"].rules == []
    # without router cases the type is guessed from the categories
    assert q["children"].type == QuestionType.CATEGORICAL
    assert q["comment"].type == QuestionType.OPEN


def test_groups_sync_keeps_roles_and_marks_vanished_groups(
    world: Any, fake_rapidpro: Any, setup: Any
) -> None:
    remote, conn = setup
    fake_rapidpro.add_contact("Ana", ["tel:+250788000001"], groups=[remote.north["uuid"]])
    with account_scope(world.account):
        counts = sync.sync_groups(conn)
        assert counts == {"groups": 6, "groups_created": 6, "groups_vanished": 0}
        choose(world, conn, remote)
        fake_rapidpro.state.groups.remove(remote.customers)
        fake_rapidpro.state.groups[0]["name"] = "North region panel"
        fake_rapidpro.state.touch()
        counts = sync.sync_groups(conn)
        groups = {g.uuid: g for g in ContactGroup.objects.filter(connection=conn)}
    assert counts["groups_vanished"] == 1
    north = groups[remote.north["uuid"]]
    assert north.name == "North region panel" and north.count == 1
    assert north.role == GroupRole.PANEL and north.org_unit_id == world.region_north.pk
    assert groups[remote.customers["uuid"]].is_present is False


def test_fields_sync_upserts_and_removes(world: Any, fake_rapidpro: Any, setup: Any) -> None:
    _remote, conn = setup
    with account_scope(world.account):
        sync.sync_fields(conn)
        assert {
            f.key: (f.label, f.value_type) for f in DataField.objects.filter(connection=conn)
        } == {
            "district": ("District", "text"),
            "age": ("Age", "number"),
            "birth": ("Birth date", "datetime"),
        }
        fake_rapidpro.state.fields = [f for f in fake_rapidpro.state.fields if f["key"] != "birth"]
        fake_rapidpro.state.fields[0]["name"] = "Home district"
        fake_rapidpro.state.touch()
        counts = sync.sync_fields(conn)
        labels = dict(DataField.objects.filter(connection=conn).values_list("key", "label"))
    assert counts["fields_removed"] == 1
    assert labels == {"district": "Home district", "age": "Age"}


def test_boundaries_fill_the_geometry_of_panel_units_without_one(
    world: Any, fake_rapidpro: Any, setup: Any
) -> None:
    remote, conn = setup
    drawn = {
        "type": "Polygon",
        "coordinates": [[[10.0, 1.0], [11.0, 1.0], [11.0, 2.0], [10.0, 1.0]]],
    }
    with account_scope(world.account):
        sync.sync_groups(conn)
        choose(world, conn, remote)
        OrgUnit.objects.filter(pk=world.region_south.pk).update(geometry=drawn)
        fake_rapidpro.state.boundaries[2]["geometry"] = SQUARE  # "South" now has one too
        counts = sync.sync_boundaries(conn)
        north = OrgUnit.objects.get(pk=world.region_north.pk)
        south = OrgUnit.objects.get(pk=world.region_south.pk)
        boundaries = {b.osm_id: b for b in Boundary.objects.filter(connection=conn)}
    assert counts == {"boundaries": 3, "boundary_units": 1}
    assert boundaries["R2"].parent_osm_id == "R1" and boundaries["R2"].level == 1
    assert boundaries["R2"].geometry["type"] == "Polygon"
    assert north.geometry["type"] == "Polygon"
    assert north.simplified_geometry is not None
    assert (north.bbox_min_lon, north.bbox_min_lat, north.bbox_max_lon, north.bbox_max_lat) == (
        30.0,
        -2.0,
        30.5,
        -1.5,
    )
    assert south.geometry == drawn  # drawn in the registry: never overwritten
    # a geometry that came from RapidPro follows RapidPro's changes
    moved = {
        "type": "Polygon",
        "coordinates": [[[31.0, -2.0], [31.5, -2.0], [31.5, -1.5], [31.0, -2.0]]],
    }
    fake_rapidpro.state.boundaries[1]["geometry"] = moved
    with account_scope(world.account):
        sync.sync_boundaries(conn)
        north.refresh_from_db()
    assert north.bbox_min_lon == 31.0


def test_boundaries_match_the_panel_group_name_too(
    world: Any, fake_rapidpro: Any, setup: Any
) -> None:
    remote, conn = setup
    fake_rapidpro.add_boundary("R9", "northvale PANEL", 2, geometry=SQUARE)
    with account_scope(world.account):
        sync.sync_groups(conn)
        choose(world, conn, remote)
        sync.sync_boundaries(conn)
        assert OrgUnit.objects.get(pk=world.district_n1.pk).geometry is not None
        assert OrgUnit.objects.get(pk=world.region_south.pk).geometry is None


def test_messages_sync_within_the_inbox_window_and_incrementally(
    world: Any, fake_rapidpro: Any, setup: Any
) -> None:
    remote, conn = setup
    now = dt.datetime.now(dt.UTC)
    ana = fake_rapidpro.add_contact("Ana", ["tel:+250788000001"], groups=[remote.north["uuid"]])
    stranger = fake_rapidpro.add_contact("Stranger", ["tel:+250788000009"])
    fake_rapidpro.add_message(ana["uuid"], "old", created_on=now - dt.timedelta(days=40))
    fake_rapidpro.add_message(ana["uuid"], "hello", created_on=now - dt.timedelta(days=2))
    fake_rapidpro.add_message(
        ana["uuid"],
        "How many?",
        direction="out",
        flow=remote.health,
        created_on=now - dt.timedelta(days=1),
    )
    fake_rapidpro.add_message(stranger["uuid"], "who?", created_on=now - dt.timedelta(hours=1))
    with account_scope(world.account):
        sync.sync_groups(conn)
        choose(world, conn, remote)
        sync.sync_contacts(conn)
        counts = sync.sync_messages(conn)
        messages = {m.text: m for m in Message.objects.filter(connection=conn)}
        conn.refresh_from_db()
    assert counts["messages"] == 3 and counts["messages_created"] == 3
    assert set(messages) == {"hello", "How many?", "who?"}
    assert messages["hello"].direction == "in" and messages["hello"].contact.uuid == ana["uuid"]
    assert messages["How many?"].flow_uuid == remote.health["uuid"]
    assert messages["How many?"].direction == "out" and messages["How many?"].sent_on
    assert messages["who?"].contact is None  # not a contact we sync
    assert conn.messages_after == messages["who?"].created_on
    # the next sync asks only for newer messages
    fake_rapidpro.add_message(ana["uuid"], "again", created_on=now)
    with account_scope(world.account):
        counts = sync.sync_messages(conn)
    assert counts["messages_created"] == 1
    params = [p for m, path, p in fake_rapidpro.state.requests if path.endswith("messages.json")]
    assert params[-1]["after"].startswith(messages["who?"].created_on.strftime("%Y-%m-%dT%H:%M:%S"))


def test_message_window_follows_the_account_setting(
    world: Any, fake_rapidpro: Any, setup: Any
) -> None:
    from closedloop.polls.selectors import polls_settings

    remote, conn = setup
    ana = fake_rapidpro.add_contact("Ana", ["tel:+250788000001"])
    now = dt.datetime.now(dt.UTC)
    fake_rapidpro.add_message(ana["uuid"], "ten days", created_on=now - dt.timedelta(days=10))
    fake_rapidpro.add_message(ana["uuid"], "one day", created_on=now - dt.timedelta(days=1))
    with account_scope(world.account):
        settings_row = polls_settings(world.account)
        settings_row.inbox_days = 7
        settings_row.save()
        sync.sync_messages(conn)
        assert list(Message.objects.values_list("text", flat=True)) == ["one day"]
