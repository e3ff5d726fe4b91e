"""The RapidPro double, read side, driven only through the real ``TembaClient``."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from temba_client.exceptions import (
    TembaNoSuchObjectError,
    TembaRateExceededError,
    TembaTokenError,
)
from temba_client.v2 import TembaClient

from closedloop.polls.rapidpro_double import FakeRapidPro

UTC = dt.UTC
T0 = dt.datetime(2026, 11, 2, 8, 0, tzinfo=UTC)

QUESTIONS = [
    {
        "name": "Children",
        "type": "numeric",
        "cases": [
            {"type": "has_number_between", "arguments": ["0", "2"], "category": "Few"},
            {"type": "has_number_between", "arguments": ["3", "10"], "category": "Many"},
        ],
    },
    {"name": "Color", "type": "categorical", "categories": ["Red", "Blue"]},
    {"name": "Comment", "type": "open"},
]


@pytest.fixture
def double():
    server = FakeRapidPro(seed=7, page_size=5)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(double):
    return TembaClient(double.url, double.token)


def arrange_runs(double: FakeRapidPro, count: int = 12):
    """``count`` runs one minute apart (run i modified at T0 + i minutes)."""
    flow = double.add_flow("Health check", QUESTIONS)
    contacts = [double.add_contact(f"c{i}", [f"tel:+2507880{i:05d}"]) for i in range(count)]
    runs = []
    for i, contact in enumerate(contacts):
        created = T0 + dt.timedelta(minutes=i)
        runs.append(
            double.add_run(
                flow["uuid"],
                contact["uuid"],
                {"children": str(i % 5)},
                created_on=created,
                modified_on=created,
            )
        )
    return flow, runs


def test_runs_page_across_pages_newest_first(double, client):
    _, runs = arrange_runs(double, 12)
    fetches = list(client.get_runs().iterfetches())
    assert [len(f) for f in fetches] == [5, 5, 2]
    uuids = [run.uuid for fetch in fetches for run in fetch]
    assert uuids == [r["uuid"] for r in reversed(runs)]
    stamps = [run.modified_on for fetch in fetches for run in fetch]
    assert stamps == sorted(stamps, reverse=True)


def test_reverse_gives_oldest_first(double, client):
    _, runs = arrange_runs(double, 7)
    got = client.get_runs(reverse=True).all()
    assert [r.uuid for r in got] == [r["uuid"] for r in runs]


def test_resume_from_cursor(double, client):
    _, runs = arrange_runs(double, 12)
    iterator = client.get_runs(reverse=True).iterfetches()
    first = next(iterator)
    cursor = iterator.get_cursor()
    assert cursor
    # a new client resumes where the first stopped, even after new runs arrived
    late = double.add_run(
        runs[0]["flow"]["uuid"],
        runs[0]["contact"]["uuid"],
        {"children": "1"},
        created_on=T0 + dt.timedelta(hours=5),
        modified_on=T0 + dt.timedelta(hours=5),
    )
    again = TembaClient(double.url, double.token)
    rest = [
        r for fetch in again.get_runs(reverse=True).iterfetches(resume_cursor=cursor) for r in fetch
    ]
    assert [r.uuid for r in first + rest] == [r["uuid"] for r in runs] + [late["uuid"]]


def test_next_link_keeps_filters_and_previous_link(double, client):
    flow, _ = arrange_runs(double, 12)
    other = double.add_flow("Other", QUESTIONS)
    contact = double.add_contact("x", ["tel:+250780099999"])
    double.add_run(other["uuid"], contact["uuid"], {"children": "1"})
    import requests

    headers = {"Authorization": f"Token {double.token}"}
    page1 = requests.get(
        f"{double.url}/api/v2/runs.json", params={"flow": flow["uuid"]}, headers=headers
    ).json()
    assert page1["previous"] is None
    assert "cursor=" in page1["next"] and flow["uuid"] in page1["next"]
    page2 = requests.get(page1["next"], headers=headers).json()
    assert page2["previous"] and "cursor=" in page2["previous"]
    back = requests.get(page2["previous"], headers=headers).json()
    assert [r["uuid"] for r in back["results"]] == [r["uuid"] for r in page1["results"]]
    assert all(r["flow"]["uuid"] == flow["uuid"] for r in page2["results"])


def test_before_and_after_are_inclusive(double, client):
    _, runs = arrange_runs(double, 10)
    after = T0 + dt.timedelta(minutes=3)
    before = T0 + dt.timedelta(minutes=6)
    got = client.get_runs(after=after, before=before).all()
    assert [r.uuid for r in got] == [r["uuid"] for r in reversed(runs[3:7])]
    only = client.get_runs(after=after, before=after).all()
    assert [r.uuid for r in only] == [runs[3]["uuid"]]


def test_run_filters_and_value_shape(double, client):
    flow, runs = arrange_runs(double, 3)
    contact = double.add_contact("silent", ["tel:+250780077777"])
    empty = double.add_run(flow["uuid"], contact["uuid"], {}, exit_type=None)
    assert [r.uuid for r in client.get_runs(responded=False).all()] == [empty["uuid"]]
    assert len(client.get_runs(flow=flow["uuid"], responded=True).all()) == 3
    assert [r.uuid for r in client.get_runs(uuid=runs[1]["uuid"]).all()] == [runs[1]["uuid"]]
    raw = double.add_run(
        flow["uuid"],
        contact["uuid"],
        {"children": "we have 4 kids", "color": "RED I think", "comment": "dirty water"},
    )
    run = client.get_runs(uuid=raw["uuid"]).first()
    assert run.values["children"].value == "4" and run.values["children"].category == "Many"
    assert run.values["color"].category == "Red"
    assert run.values["comment"].category == "All Responses"
    node_uuids = {r["key"]: r["node_uuids"] for r in flow["results"]}
    assert run.values["children"].node in node_uuids["children"]
    assert raw["values"]["children"]["input"] == "we have 4 kids"
    assert raw["created_on"].endswith("+00:00") and len(raw["created_on"]) == 32
    other = double.add_run(flow["uuid"], contact["uuid"], {"children": "20", "color": "green"})
    assert other["values"]["children"]["category"] == "Other"
    assert other["values"]["color"] == {**other["values"]["color"], "category": "Other"}


def test_contacts_filters_status_and_deleted(double, client):
    north = double.add_group("North panel")
    ana = double.add_contact("Ana", ["tel:+250780000001"], groups=[north])
    double.add_contact("Ben", ["tel:+250780000002"], status="blocked")
    gone = double.add_contact("Gone", ["tel:+250780000003"], groups=[north])
    double.delete_contact(gone["uuid"])
    listed = client.get_contacts().all()
    assert {c.name: c.status for c in listed} == {"Ana": "active", "Ben": "blocked"}
    assert [c.uuid for c in client.get_contacts(group="north panel").all()] == [ana["uuid"]]
    assert [c.uuid for c in client.get_contacts(group=north["uuid"]).all()] == [ana["uuid"]]
    assert [c.uuid for c in client.get_contacts(urn="tel:+250780000001").all()] == [ana["uuid"]]
    deleted = client.get_contacts(deleted=True).all()
    assert [c.uuid for c in deleted] == [gone["uuid"]]
    assert client.get_contacts(group="Nope").all() == []
    groups = {g.name: g.count for g in client.get_groups().all()}
    assert groups == {"North panel": 1}


def test_messages_folders(double, client):
    ana = double.add_contact("Ana", ["tel:+250780000001"])
    inbound = double.add_message(ana["uuid"], "hello there", created_on=T0)
    double.add_message(ana["uuid"], "archived", visibility="archived", created_on=T0)
    sent = double.add_message(ana["uuid"], "reply", direction="out", created_on=T0)
    assert [m.uuid for m in client.get_messages(folder="inbox").all()] == [inbound["uuid"]]
    assert [m.uuid for m in client.get_messages(folder="sent").all()] == [sent["uuid"]]
    assert len(client.get_messages(folder="incoming").all()) == 2
    assert len(client.get_messages().all()) == 3
    assert client.get_messages(after=T0 + dt.timedelta(seconds=1)).all() == []


def test_rate_limit_429_then_retry(double, client):
    double.add_group("A")
    double.throttle(times=1, retry_after=1)
    with pytest.raises(TembaRateExceededError) as caught:
        client.get_groups().all()
    assert caught.value.retry_after == 1
    double.throttle(times=2, retry_after=1)
    started = time.monotonic()
    assert [g.name for g in client.get_groups().all(retry_on_rate_exceed=True)] == ["A"]
    assert time.monotonic() - started >= 2


def test_automatic_rate_limit():
    server = FakeRapidPro(seed=1, rate_limit=3, rate_window=60)
    with server:
        client = TembaClient(server.url, server.token)
        for _ in range(3):
            client.get_org()
        with pytest.raises(TembaRateExceededError) as caught:
            client.get_org()
        assert 1 <= caught.value.retry_after <= 60


def test_bad_token_is_403_and_failures_are_forced(double):
    with pytest.raises(TembaTokenError):
        TembaClient(double.url, "wrong").get_org()
    client = TembaClient(double.url, double.token)
    double.fail_next(status=503)
    from temba_client.exceptions import TembaHttpError

    with pytest.raises(TembaHttpError):
        client.get_org()
    assert client.get_org().name
    with pytest.raises(TembaNoSuchObjectError):
        client.get_runs(reverse=True).iterfetches(resume_cursor="not-a-cursor").__next__()
    assert ("GET", "/api/v2/org.json", {}) in double.state.requests


def test_definitions_spec13_match_results(double, client):
    flow = double.add_flow("Health check", QUESTIONS)
    export = client.get_definitions(flows=[flow["uuid"]])
    assert export.version == "13"
    (definition,) = export.flows
    assert definition["spec_version"].startswith("13.")
    routed = {n["uuid"]: n["router"] for n in definition["nodes"] if n.get("router")}
    for result in flow["results"]:
        (node,) = result["node_uuids"]
        router = routed[node]
        assert router["result_name"] == result["name"]
        names = [c["name"] for c in router["categories"]]
        assert names == result["categories"]
        by_uuid = {c["uuid"] for c in router["categories"]}
        assert all(case["category_uuid"] in by_uuid for case in router["cases"])
    children = routed[flow["results"][0]["node_uuids"][0]]
    assert children["operand"] == "@input.text"
    assert children["cases"][0]["type"] == "has_number_between"
    assert children["cases"][0]["arguments"] == ["0", "2"]
    comment = routed[flow["results"][2]["node_uuids"][0]]
    assert comment["cases"] == [] and [c["name"] for c in comment["categories"]] == [
        "All Responses"
    ]
    assert client.get_definitions(flows=["unknown"]).flows == []
    assert [f.name for f in client.get_flows().all()] == ["Health check"]


def test_drift_fields_are_ignored_by_the_client():
    server = FakeRapidPro(seed=2, drift=True)
    with server:
        flow, runs = arrange_runs(server, 2)
        client = TembaClient(server.url, server.token)
        got = client.get_runs().all()
        assert {r.uuid for r in got} == {r["uuid"] for r in runs}
        assert all(r.exited_on is None for r in got)  # optional "exited_on" missing
        assert got[0].values["children"].category
        assert client.get_contacts().all()[0].name
        assert client.get_org().name
        assert client.get_flows().first().results[0].key == "children"
        import requests

        raw = requests.get(
            f"{server.url}/api/v2/runs.json", headers={"Authorization": f"Token {server.token}"}
        ).json()
        assert "new_field" in raw["results"][0] and "exited_on" not in raw["results"][0]


def test_fixture_payloads_preloaded_and_boundary_geometry():
    server = FakeRapidPro(seed=3, fixtures=True)
    with server:
        client = TembaClient(server.url, server.token)
        assert client.get_org().name == "Nyaruka"
        assert {c.status for c in client.get_contacts().all()} == {"active", "blocked"}
        broadcasts = client.get_broadcasts().all()
        assert all(isinstance(b.text, dict) for b in broadcasts)
        without = client.get_boundaries().all()
        assert without and all(b.geometry is None for b in without)
        withgeo = client.get_boundaries(geometry=True).all()
        assert withgeo[0].geometry.type == "MultiPolygon"
        assert len(client.get_definitions().flows) == 2
