"""The RapidPro double, write side (contacts, flow starts, broadcasts) via ``TembaClient``."""

from __future__ import annotations

import pytest
from temba_client.exceptions import TembaBadRequestError, TembaNoSuchObjectError
from temba_client.v2 import TembaClient

from closedloop.polls.rapidpro_double import FakeRapidPro

TOO_MANY = "Ensure this field has no more than 100 elements."


@pytest.fixture
def double():
    server = FakeRapidPro(seed=11)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(double):
    return TembaClient(double.url, double.token)


def test_contact_create_update_delete(double, client):
    north = double.add_group("North panel")
    double.add_group("Teachers")
    double.add_field("age", type="number")
    created = client.create_contact(
        name="Ana", language="fra", urns=["tel:+250788000001"], groups=[north["uuid"]],
        fields={"age": 31},
    )  # fmt: skip
    assert created.uuid and created.status == "active" and created.language == "fra"
    assert [g.name for g in created.groups] == ["North panel"]
    assert created.fields == {"age": 31}
    before = created.modified_on

    updated = client.update_contact(created.uuid, name="Ana B", groups=["Teachers"])
    assert updated.name == "Ana B" and [g.name for g in updated.groups] == ["Teachers"]
    assert updated.fields == {"age": 31} and updated.modified_on > before
    by_urn = client.update_contact("tel:+250788000001", fields={"age": 32})
    assert by_urn.uuid == created.uuid and by_urn.fields == {"age": 32}

    client.delete_contact(created.uuid)
    assert client.get_contacts().all() == []
    assert [c.uuid for c in client.get_contacts(deleted=True).all()] == [created.uuid]
    with pytest.raises(TembaNoSuchObjectError):
        client.delete_contact(created.uuid)
    with pytest.raises(TembaNoSuchObjectError):
        client.update_contact("tel:+250788999999", name="Nobody")


def test_contact_validation_errors_change_nothing(double, client):
    double.add_contact("Ben", ["tel:+250788000002"])
    double.add_group("Smart", query="age > 30")
    with pytest.raises(TembaBadRequestError) as bad_urn:
        client.create_contact(name="X", urns=["tel:12ab"])
    assert "urns" in bad_urn.value.errors and "tel:12ab" in bad_urn.value.errors["urns"][0]
    with pytest.raises(TembaBadRequestError) as taken:
        client.create_contact(name="X", urns=["tel:+250788000002"])
    assert "another contact" in taken.value.errors["urns"][0]
    with pytest.raises(TembaBadRequestError) as bad:
        client.create_contact(name="X", groups=["Nope", "Smart"], fields={"shoe": 1}, language="x")
    errors = bad.value.errors
    assert errors["groups"] == [
        "No such object: Nope",
        "Contact group must not be query based: Smart",
    ]
    assert errors["fields"] == ["Invalid contact field key: shoe"]
    assert errors["language"] == ["Not a valid ISO639-3 language code."]
    assert [c.name for c in client.get_contacts().all()] == ["Ben"]


def test_flow_start_returns_one_object_and_runs_follow(double, client):
    flow = double.add_flow("Poll", [{"name": "Children", "type": "numeric"}])
    panel = double.add_group("South panel")
    ana = double.add_contact("Ana", ["tel:+250788000001"])
    ben = double.add_contact("Ben", ["tel:+250788000002"], groups=[panel])
    double.add_contact("Stopped", ["tel:+250788000003"], groups=[panel], status="stopped")
    start = client.create_flow_start(
        flow["uuid"], contacts=[ana["uuid"]], groups=[panel["uuid"]], restart_participants=True,
        params={"week": 3},
    )  # fmt: skip
    assert start.uuid and start.status == "pending"
    assert [c.uuid for c in start.contacts] == [ana["uuid"]]
    assert [g.name for g in start.groups] == ["South panel"]
    assert start.params == {"week": 3}
    assert double.state.runs == []  # nothing yet: runs are created asynchronously

    runs = client.get_runs(flow=flow["uuid"]).all()  # processed on the next GET runs
    assert {r.contact.uuid for r in runs} == {ana["uuid"], ben["uuid"]}
    assert {r.start.uuid for r in runs} == {start.uuid}
    assert all(r.exit_type is None and not r.responded for r in runs)
    (listed,) = client.get_flow_starts(uuid=start.uuid).all()
    assert listed.status == "complete"


def test_process_starts_with_a_responder(double, client):
    flow = double.add_flow(
        "Poll", [{"name": "Color", "type": "categorical", "categories": ["Red"]}]
    )
    ana = double.add_contact("Ana", ["tel:+250788000001"])
    start = client.create_flow_start(flow["uuid"], urns=["tel:+250788000001", "tel:+250788000009"])

    def respond(start_obj, contact, flow_obj):
        if contact["uuid"] == ana["uuid"]:
            return {"values": {"color": "red please"}}
        return None

    assert double.process_starts(respond) == 2  # the unknown URN became a new contact
    runs = {r["contact"]["uuid"]: r for r in double.state.runs}
    assert runs[ana["uuid"]]["values"]["color"]["category"] == "Red"
    assert runs[ana["uuid"]]["exit_type"] == "completed"
    assert all(r["start"] == {"uuid": start.uuid} for r in runs.values())
    assert double.process_starts() == 0


def test_write_limits_are_100_items(double, client):
    flow = double.add_flow("Poll", [{"name": "Children", "type": "numeric"}])
    contacts = [double.add_contact(f"c{i}", [f"tel:+2507880{i:05d}"]) for i in range(101)]
    uuids = [c["uuid"] for c in contacts]
    with pytest.raises(TembaBadRequestError) as starting:
        client.create_flow_start(flow["uuid"], contacts=uuids)
    assert starting.value.errors == {"contacts": [TOO_MANY]}
    with pytest.raises(TembaBadRequestError) as sending:
        client.create_broadcast("Hi", urns=[f"tel:+2507881{i:05d}" for i in range(101)])
    assert sending.value.errors == {"urns": [TOO_MANY]}
    assert double.state.flow_starts == [] and double.state.broadcasts == []
    ok = client.create_flow_start(flow["uuid"], contacts=uuids[:100])
    assert len(ok.contacts) == 100
    with pytest.raises(TembaBadRequestError) as nobody:
        client.create_flow_start(flow["uuid"])
    assert nobody.value.errors == {
        "non_field_errors": ["Must specify at least one group, contact or URN"]
    }
    with pytest.raises(TembaBadRequestError) as unknown:
        client.create_flow_start("no-such-flow", contacts=uuids[:1])
    assert unknown.value.errors == {"flow": ["No such object: no-such-flow"]}


def test_broadcast_text_map_and_outgoing_messages(double, client):
    ana = double.add_contact("Ana", ["tel:+250788000001"], language="fra")
    ben = double.add_contact("Ben", ["tel:+250788000002"])
    double.add_contact("Blocked", ["tel:+250788000003"], status="blocked")
    blocked = double.state.contacts[-1]
    sent = client.create_broadcast(
        {"eng": "Thanks", "fra": "Merci"}, contacts=[ana["uuid"], ben["uuid"], blocked["uuid"]]
    )
    assert sent.text == {"eng": "Thanks", "fra": "Merci"}
    assert {c.uuid for c in sent.contacts} == {ana["uuid"], ben["uuid"], blocked["uuid"]}
    plain = client.create_broadcast("Hello", contacts=[ben["uuid"]])
    assert plain.text == {"eng": "Hello"}
    outgoing = client.get_messages(folder="sent").all()
    texts = sorted((m.contact.uuid, m.text) for m in outgoing)
    assert texts == sorted(
        [(ana["uuid"], "Merci"), (ben["uuid"], "Thanks"), (ben["uuid"], "Hello")]
    )
    assert all(m.direction == "out" for m in outgoing)
    assert [b.uuid for b in client.get_broadcasts().all()] == [plain.uuid, sent.uuid]
    with pytest.raises(TembaBadRequestError) as empty:
        client.create_broadcast("", contacts=[ben["uuid"]])
    assert empty.value.errors == {"text": ["This field is required."]}
