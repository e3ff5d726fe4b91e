"""The double's generated data (deterministic, realistic, API-shaped) and its CLI command."""

from __future__ import annotations

import datetime as dt
import io
import json
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from django.core.management import call_command
from temba_client.v2 import TembaClient

from closedloop.polls.rapidpro_double import FakeRapidPro
from closedloop.polls.rapidpro_double.flows import categorizers

END = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
PAYLOADS = Path(__file__).resolve().parents[1] / "rapidpro_double" / "payloads"


@pytest.fixture(scope="module")
def generated():
    server = FakeRapidPro(seed=5)
    server.generate(contacts=120, polls=3, end=END)
    return server


def test_generation_is_deterministic(generated):
    again = FakeRapidPro(seed=5)
    again.generate(contacts=120, polls=3, end=END)
    for name in ("contacts", "groups", "flows", "runs", "messages", "boundaries"):
        assert getattr(again.state, name) == getattr(generated.state, name), name
    assert again.state.definitions == generated.state.definitions
    other = FakeRapidPro(seed=6)
    other.generate(contacts=120, polls=3, end=END)
    assert other.state.runs != generated.state.runs


def test_generated_objects_have_at_least_the_real_payload_fields():
    server = FakeRapidPro(seed=5)
    server.generate(contacts=10, polls=1, end=END)
    state = server.state
    contact = state.contacts[0]
    headers = {"Authorization": "Token fake-token", "Host": "127.0.0.1"}
    for endpoint, body in (
        ("flow_starts", {"flow": state.flows[0]["uuid"], "contacts": [contact["uuid"]]}),
        ("broadcasts", {"text": "Hi", "contacts": [contact["uuid"]]}),
    ):
        status, _, _ = server.handle(
            "POST", f"/api/v2/{endpoint}.json", "", headers, json.dumps(body).encode()
        )
        assert status == 201
    for name in (
        "contacts", "runs", "flows", "groups", "fields", "messages", "boundaries",
        "flow_starts", "broadcasts",
    ):  # fmt: skip
        sample = json.loads((PAYLOADS / f"{name}.json").read_text())["results"][0]
        mine = getattr(state, name)[0]
        assert set(sample) <= set(mine), (name, set(sample) - set(mine))
    assert set(json.loads((PAYLOADS / "org.json").read_text())) <= set(state.org)
    run = next(r for r in state.runs if r["values"])
    sample_run = json.loads((PAYLOADS / "runs.json").read_text())["results"][0]
    sample_value = next(iter(sample_run["values"].values()))
    assert set(sample_value) <= set(next(iter(run["values"].values())))


def test_polls_have_all_question_kinds_and_consistent_categories(generated):
    state = generated.state
    assert len(state.flows) == 3
    kinds = Counter()
    for flow in state.flows:
        definition = state.definitions[flow["uuid"]]
        assert 3 <= len(definition["nodes"]) <= 10
        cats = categorizers(definition)
        for result in flow["results"]:
            router = next(n for n in definition["nodes"] if n["uuid"] == result["node_uuids"][0])[
                "router"
            ]
            types = {c["type"] for c in router["cases"]}
            kinds[
                "open" if not types else "numeric" if "has_number_between" in types else "cat"
            ] += 1
        for run in (r for r in state.runs if r["flow"]["uuid"] == flow["uuid"]):
            for key, value in run["values"].items():
                assert cats[key](value["input"]) == (value["value"], value["category"])
                assert value["node"] == cats[key].node_uuid
    assert kinds["open"] and kinds["numeric"] and kinds["cat"]


def test_runs_are_weekly_with_partial_empty_and_repeats(generated):
    state = generated.state
    flow = state.flows[0]
    runs = [r for r in state.runs if r["flow"]["uuid"] == flow["uuid"]]
    days = {r["created_on"][:10] for r in runs}
    assert 7 <= len(days) <= 9  # one universal poll run per week over 8 weeks
    weekdays = {dt.date.fromisoformat(d).weekday() for d in days}
    assert len(weekdays) == 1
    nq = len(flow["results"])
    sizes = Counter(len(r["values"]) for r in runs)
    assert sizes[nq] and sizes[0] and any(0 < k < nq for k in sizes)
    per_day = Counter((r["contact"]["uuid"], r["created_on"][:10]) for r in runs)
    assert max(per_day.values()) >= 2  # some same-day repeats
    assert all(r["responded"] == bool(r["values"]) for r in runs)
    assert {r["exit_type"] for r in runs if len(r["values"]) == nq} == {"completed"}
    assert state.messages and {m["direction"] for m in state.messages} == {"in", "out"}
    statuses = Counter(c["status"] for c in state.contacts)
    assert statuses["active"] > 100
    assert {g["name"] for g in state.groups} >= {"Kibali", "Huye", "Teachers", "Parents"}
    assert {b["level"] for b in state.boundaries} == {0, 1, 2}


def test_big_generation_and_paging_are_fast():
    server = FakeRapidPro(seed=9)
    started = time.perf_counter()
    counts = server.generate(
        contacts=500, polls=1, questions=10, runs_per_poll=20_000, messages=False, end=END
    )
    assert counts["runs"] == 20_000
    assert all(len(r["values"]) in range(11) for r in server.state.runs)
    elapsed = time.perf_counter() - started
    assert elapsed < 20, elapsed  # ~0.5 s normally; generous for a loaded machine
    headers = {"Authorization": "Token fake-token", "Host": "127.0.0.1"}
    status, _, body = server.handle("GET", "/api/v2/runs.json", "reverse=1", headers, b"")
    page = json.loads(body)
    assert status == 200 and len(page["results"]) == 250
    stamps = [r["modified_on"] for r in page["results"]]
    assert stamps == sorted(stamps)


def test_cli_command_serves_until_its_lifetime_ends():
    out = io.StringIO()
    thread = threading.Thread(
        target=call_command,
        args=("fake_rapidpro",),
        kwargs={
            "port": 0,
            "contacts": 15,
            "polls": 1,
            "seed": 4,
            "serve_seconds": 4,
            "stdout": out,
        },
        daemon=True,
    )
    thread.start()
    deadline = time.monotonic() + 15
    while "Token:" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = dict(
        line.split(":", 1)
        for line in out.getvalue().splitlines()
        if line.startswith(("URL", "Token"))
    )
    url, token = lines["URL"].strip(), lines["Token"].strip()
    client = TembaClient(url, token)
    assert client.get_org().name
    assert len(client.get_contacts().all()) == 15
    assert len(client.get_flows().all()) == 1
    assert client.get_runs().first() is not None
    thread.join(timeout=15)
    assert not thread.is_alive()
