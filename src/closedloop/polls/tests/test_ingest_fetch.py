"""``ingest.fetch_runs`` against the RapidPro double: paging, watermark, resume, 429.

Arrangement: one flow "Health check" (``children`` numeric with between cases 0–2 "Few"
and 3–10 "Many"; ``comment`` open) in the double; account A's connection points at the
double; the poll and its questions are built from the double's flow (rules read from
the spec-13 definition with ``rules.rules_from_router``). Ten runs, one per contact, at
two-minute steps; the double serves 3 runs per page (pages of 3, 3, 3, 1).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.utils import timezone

from closedloop.core.tenancy import account_scope
from closedloop.polls import ingest, rules
from closedloop.polls import testing as t
from closedloop.polls.client import RapidProError
from closedloop.polls.models import Answer, Connection, Contact, Response
from closedloop.polls.tests.test_ingest_support import snapshot

UTC = dt.UTC


@dataclass
class Ctx:
    """A stand-in job context recording progress; ``on_progress(done)`` hooks each page."""

    on_progress: Any = None
    done: list[int] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)

    def progress(
        self, done: int, total: int | None = None, message: str | None = None, force: bool = False
    ) -> None:
        self.done.append(done)
        if self.on_progress:
            self.on_progress(done)

    def log(self, text: str, level: str = "info") -> None:
        self.logs.append(text)

    def check_cancelled(self) -> None:
        pass


@dataclass
class Setup:
    server: Any
    connection: Connection
    poll: Any
    flow: dict[str, Any]
    contacts: list[dict[str, Any]]
    base: dt.datetime
    account: Any
    other_account: Any


QUESTIONS = [
    {
        "key": "children",
        "name": "Children",
        "type": "numeric",
        "categories": ["Few", "Many", "Other"],
        "cases": [
            {"type": "has_number_between", "arguments": ["0", "2"], "category": "Few"},
            {"type": "has_number_between", "arguments": ["3", "10"], "category": "Many"},
        ],
    },
    {"key": "comment", "name": "Comment", "type": "open"},
]


def _router(definition: dict[str, Any], key: str) -> dict[str, Any]:
    flows = definition.get("flows") or [definition]
    for flow in flows:
        for node in flow.get("nodes", []):
            router = node.get("router") or {}
            if router.get("result_name", "").lower() == key:
                return router
    raise AssertionError(f"no router for {key}")


@pytest.fixture
def setup(world: Any, fake_rapidpro: Any) -> Setup:
    server = fake_rapidpro
    server.page_size = 3
    flow = server.add_flow("Health check", questions=QUESTIONS)
    definition = server.state.definitions[flow["uuid"]]
    base = (timezone.now() - dt.timedelta(days=3)).replace(microsecond=0)
    with account_scope(world.account):
        connection = t.make_connection(world.account, host_url=server.url, token=server.token)
        poll = t.make_poll(connection, "Health check", flow_uuid=flow["uuid"])
        router = _router(definition, "children")
        t.make_question(
            poll,
            "children",
            rules.guess_type(
                [c["name"] for c in router["categories"]],
                rules.rules_from_router(router),
                router["cases"],
            ),
            rules=rules.rules_from_router(router),
        )
        t.make_question(poll, "comment", "open")
        panel = t.make_panel(connection, "North panel", world.region_north)
        contacts = []
        for i in range(10):
            remote = server.add_contact(f"Person {i}", [f"tel:+25078800{i:04d}"])
            local = t.make_contact(connection, f"Person {i}", panel)
            Contact.objects.filter(pk=local.pk).update(uuid=remote["uuid"])
            contacts.append(remote)
    for i, contact in enumerate(contacts):
        at = base + dt.timedelta(minutes=2 * i)
        server.add_run(
            flow["uuid"],
            contact["uuid"],
            {"children": str(i), "comment": f"water number {i}"},
            created_on=at,
            modified_on=at + dt.timedelta(minutes=1),
        )
    return Setup(server, connection, poll, flow, contacts, base, world.account, world.other_account)


def _responses(s: Setup) -> list[str]:
    with account_scope(s.account):
        return sorted(Response.objects.values_list("run_uuid", flat=True))


def _run_requests(s: Setup) -> list[dict[str, Any]]:
    return [
        params for method, path, params in s.server.state.requests if path.endswith("/runs.json")
    ]


def test_rules_read_from_the_doubles_definition(setup: Setup) -> None:
    with account_scope(setup.account):
        question = setup.poll.questions.get(result_key="children")
    assert question.type == "numeric"
    assert question.rules == [
        {"category": "Few", "test": "between", "arguments": [0.0, 2.0]},
        {"category": "Many", "test": "between", "arguments": [3.0, 10.0]},
    ]


def test_fetch_pages_and_watermark(setup: Setup) -> None:
    ctx = Ctx()
    result = ingest.fetch_runs(setup.connection, ctx)
    assert result["pages"] == 4
    assert (result["runs"], result["created"], result["answers"]) == (10, 10, 20)
    assert ctx.done == [3, 6, 9, 10]
    assert len(_responses(setup)) == 10
    setup.connection.refresh_from_db()
    last = setup.base + dt.timedelta(minutes=19)
    assert setup.connection.runs_after == last
    assert (setup.connection.runs_cursor, setup.connection.runs_before) == ("", None)
    first = _run_requests(setup)[0]
    assert first["reverse"] in ("1", "true", "True")
    assert "after" not in first  # nothing fetched before: everything
    with account_scope(setup.account):
        categories = dict(
            Answer.objects.filter(question__result_key="children").values_list("value", "category")
        )
    assert categories == {
        "0": "Few",
        "1": "Few",
        "2": "Few",
        "3": "Many",
        "4": "Many",
        "5": "Many",
        "6": "Many",
        "7": "Many",
        "8": "Many",
        "9": "Many",
    }

    # the next fetch asks from the watermark (inclusive: the newest run again, unchanged)
    setup.server.state.requests.clear()
    at = setup.base + dt.timedelta(hours=1)
    setup.server.add_run(
        setup.flow["uuid"],
        setup.contacts[0]["uuid"],
        {"children": "1"},
        created_on=at,
        modified_on=at,
    )
    again = ingest.fetch_runs(setup.connection)
    assert (again["created"], again["unchanged"]) == (1, 1)
    params = _run_requests(setup)[0]
    assert dt.datetime.fromisoformat(params["after"].replace("Z", "+00:00")) == last
    setup.connection.refresh_from_db()
    assert setup.connection.runs_after == at


def test_interrupted_fetch_resumes_from_the_cursor(setup: Setup) -> None:
    def fail_third_page(done: int) -> None:
        if done == 6:
            setup.server.fail_next(status=500)

    with pytest.raises(RapidProError):
        ingest.fetch_runs(setup.connection, Ctx(on_progress=fail_third_page))
    assert len(_responses(setup)) == 6
    setup.connection.refresh_from_db()
    state = json.loads(setup.connection.runs_cursor)
    assert state["cursor"] and state["backfill"] is False and state["after"] is None
    saved_before = setup.connection.runs_before
    assert saved_before is not None
    assert setup.connection.runs_after == setup.base + dt.timedelta(minutes=11)

    setup.server.state.requests.clear()
    result = ingest.fetch_runs(setup.connection, Ctx())
    assert result["resumed"] is True
    resumed = _run_requests(setup)[0]
    assert resumed["cursor"] == state["cursor"]
    assert dt.datetime.fromisoformat(resumed["before"].replace("Z", "+00:00")) == saved_before
    # nothing lost, nothing doubled
    all_uuids = sorted(r["uuid"] for r in setup.server.state.runs)
    assert _responses(setup) == all_uuids
    with account_scope(setup.account):
        assert Answer.objects.count() == 20
    setup.connection.refresh_from_db()
    assert (setup.connection.runs_cursor, setup.connection.runs_before) == ("", None)
    assert setup.connection.runs_after == setup.base + dt.timedelta(minutes=19)


def test_rate_limited_requests_are_retried(setup: Setup, monkeypatch: Any) -> None:
    waits: list[float] = []
    monkeypatch.setattr("closedloop.polls.client.sleep", waits.append)
    setup.server.throttle(times=2, retry_after=1)
    result = ingest.fetch_runs(setup.connection)
    assert result["created"] == 10
    assert waits == [1, 1]


def test_runs_of_other_flows_skipped_and_other_account_untouched(setup: Setup) -> None:
    other_flow = setup.server.add_flow(
        "Registration", questions=[{"key": "age", "type": "numeric"}]
    )
    at = setup.base + dt.timedelta(hours=2)
    setup.server.add_run(
        other_flow["uuid"], setup.contacts[1]["uuid"], {"age": "30"}, created_on=at, modified_on=at
    )
    before = snapshot(setup.other_account)
    result = ingest.fetch_runs(setup.connection)
    assert (result["created"], result["skipped"]) == (10, 1)
    assert snapshot(setup.other_account) == before
    setup.connection.refresh_from_db()
    assert setup.connection.runs_after == at  # the watermark passes skipped runs too


def test_unknown_contact_is_created(setup: Setup) -> None:
    newcomer = setup.server.add_contact("Newcomer", ["tel:+250788999999"])
    at = setup.base + dt.timedelta(hours=1)
    setup.server.add_run(
        setup.flow["uuid"], newcomer["uuid"], {"children": "2"}, created_on=at, modified_on=at
    )
    result = ingest.fetch_runs(setup.connection)
    assert result["contacts_created"] == 1
    with account_scope(setup.account):
        contact = Contact.objects.get(uuid=newcomer["uuid"])
        assert contact.name == "Newcomer"
        assert Response.objects.filter(contact=contact).count() == 1


def test_backfill_never_moves_the_watermark_back(setup: Setup) -> None:
    # the poll was not active at the first fetch: its runs were skipped, watermark moved on
    with account_scope(setup.account):
        setup.poll.is_active = False
        setup.poll.save(update_fields=["is_active"])
    first = ingest.fetch_runs(setup.connection)
    assert (first["created"], first["skipped"]) == (0, 10)
    setup.connection.refresh_from_db()
    watermark = setup.connection.runs_after
    assert watermark == setup.base + dt.timedelta(minutes=19)
    with account_scope(setup.account):
        setup.poll.is_active = True
        setup.poll.save(update_fields=["is_active"])
    # an incremental fetch sees only the run at the (inclusive) watermark again...
    assert ingest.fetch_runs(setup.connection)["created"] == 1
    # ...a 7-day back-fill brings the other nine
    setup.server.state.requests.clear()
    result = ingest.fetch_runs(
        setup.connection, after=timezone.now() - dt.timedelta(days=7), backfill=True
    )
    assert (result["created"], result["unchanged"]) == (9, 1)
    assert "after" in _run_requests(setup)[0]
    setup.connection.refresh_from_db()
    assert setup.connection.runs_after == watermark


def test_interrupted_backfill_resumes_as_a_backfill(setup: Setup) -> None:
    start = timezone.now() - dt.timedelta(days=7)

    def fail_second_page(done: int) -> None:
        if done == 3:
            setup.server.fail_next(status=500)

    with pytest.raises(RapidProError):
        ingest.fetch_runs(
            setup.connection, Ctx(on_progress=fail_second_page), after=start, backfill=True
        )
    setup.connection.refresh_from_db()
    state = json.loads(setup.connection.runs_cursor)
    assert state["backfill"] is True
    assert dt.datetime.fromisoformat(state["after"]) == start
    # never fetched incrementally before: the back-fill leaves the watermark alone
    assert setup.connection.runs_after is None
    setup.server.state.requests.clear()
    result = ingest.fetch_runs(setup.connection)  # the scheduled sync's incremental call
    assert result["resumed"] is True
    params = _run_requests(setup)[0]
    assert params["cursor"] == state["cursor"]
    assert dt.datetime.fromisoformat(params["after"].replace("Z", "+00:00")) == start
    assert len(_responses(setup)) == 10
