"""The run ingest (``ingest.ingest_runs``) on hand-made API-v2 runs, hand-computed results.

World: ``polls_world`` (poll "Health check": ``children`` numeric with rules 0–2 "Few",
3–10 "Many"; ``color`` categorical; ``comment`` open; contacts ana (North), ben
(Northvale), cara (South, French), dan (South)). Account A's time zone is set to
Africa/Kigali (UTC+2, no daylight saving). New runs use days after the fixture's.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from closedloop.core.tenancy import account_scope
from closedloop.polls import ingest
from closedloop.polls import testing as t
from closedloop.polls.models import (
    Answer,
    FlowStart,
    PollRun,
    PollRunType,
    QuestionType,
    Response,
    WordCount,
)
from closedloop.polls.tests.test_ingest_support import WriteCounter, run, snapshot

UTC = dt.UTC


@pytest.fixture
def pw(polls_world: Any) -> Any:
    account = polls_world.w.account
    account.time_zone = "Africa/Kigali"
    account.save(update_fields=["time_zone"])
    polls_world.connection.refresh_from_db()
    return polls_world


def _ingest(pw: Any, runs: list[dict[str, Any]]) -> dict[str, Any]:
    return ingest.ingest_runs(pw.connection, runs)


def _response(pw: Any, uuid: str) -> Response:
    with account_scope(pw.w.account):
        return Response.objects.get(run_uuid=uuid)


def _answers(pw: Any, uuid: str) -> dict[str, Answer]:
    with account_scope(pw.w.account):
        return {
            a.question.result_key: a
            for a in Answer.objects.filter(response__run_uuid=uuid).select_related("question")
        }


def test_universal_pollrun_is_the_account_local_day(pw: Any) -> None:
    flow = pw.poll.flow_uuid
    late = run(flow, pw.ana, {"children": 4}, created="2026-11-15T23:30:00+00:00")
    early = run(flow, pw.ben, {"children": 1}, created="2026-11-15T21:30:00+00:00")
    same_local_day = run(flow, pw.cara, {"children": 2}, created="2026-11-16T06:00:00+00:00")
    stats = _ingest(pw, [late, early, same_local_day])
    assert stats["created"] == 3
    assert stats["pollruns_created"] == 2
    # 23:30 UTC is 01:30 on the 16th in Kigali; 21:30 UTC is 23:30 on the 15th
    late_resp = _response(pw, late["uuid"])
    assert late_resp.local_date == dt.date(2026, 11, 16)
    assert late_resp.pollrun.local_date == dt.date(2026, 11, 16)
    assert late_resp.pollrun.type == PollRunType.UNIVERSAL
    assert _response(pw, early["uuid"]).pollrun.local_date == dt.date(2026, 11, 15)
    assert _response(pw, same_local_day["uuid"]).pollrun_id == late_resp.pollrun_id
    # the poll run is conducted at its earliest run
    assert late_resp.pollrun.conducted_on == dt.datetime(2026, 11, 15, 23, 30, tzinfo=UTC)
    # answers carry the poll run's local date
    assert _answers(pw, late["uuid"])["children"].local_date == dt.date(2026, 11, 16)
    # a later page of the same day reuses the poll run
    more = run(flow, pw.dan, {"children": 5}, created="2026-11-16T10:00:00+00:00")
    assert _ingest(pw, [more])["pollruns_created"] == 0
    assert _response(pw, more["uuid"]).pollrun_id == late_resp.pollrun_id
    with account_scope(pw.w.account):
        assert PollRun.objects.filter(poll=pw.poll, type=PollRunType.UNIVERSAL).count() == 4


def test_existing_universal_pollrun_of_the_day_is_used(pw: Any) -> None:
    # the fixture's poll run of 2026-11-09; 10:00 UTC is 12:00 in Kigali, the same day
    r = run(pw.poll.flow_uuid, pw.dan, {"children": 7}, created="2026-11-09T10:00:00+00:00")
    assert _ingest(pw, [r])["pollruns_created"] == 0
    assert _response(pw, r["uuid"]).pollrun_id == pw.run2.id


def test_start_uuid_assigns_the_regional_pollrun(pw: Any) -> None:
    with account_scope(pw.w.account):
        regional = t.make_pollrun(
            pw.poll, dt.date(2026, 11, 20), type=PollRunType.REGIONAL, panel=pw.north
        )
        FlowStart.objects.create(account=pw.w.account, pollrun=regional, uuid="start-north")
    flow = pw.poll.flow_uuid
    started = run(
        flow, pw.ana, {"children": 3}, created="2026-11-21T09:00:00+00:00", start="start-north"
    )
    unknown = run(
        flow, pw.ben, {"children": 3}, created="2026-11-21T09:00:00+00:00", start="start-elsewhere"
    )
    _ingest(pw, [started, unknown])
    resp = _response(pw, started["uuid"])
    assert resp.pollrun_id == regional.id
    # the regional poll run's day, not the run's
    assert resp.local_date == dt.date(2026, 11, 20)
    assert _answers(pw, started["uuid"])["children"].pollrun_id == regional.id
    other = _response(pw, unknown["uuid"])
    assert other.pollrun.type == PollRunType.UNIVERSAL
    assert other.pollrun.local_date == dt.date(2026, 11, 21)


def test_status_complete_partial_empty(pw: Any) -> None:
    flow = pw.poll.flow_uuid
    day = "2026-11-16T08:00:00+00:00"
    complete = run(flow, pw.ana, {"children": 2}, created=day)
    complete_no_values = run(flow, pw.ben, {}, created=day)
    partial = run(flow, pw.cara, {"children": 5}, created=day, exit_type=None)
    interrupted = run(flow, pw.dan, {}, created=day, exit_type="interrupted")
    only_unknown = run(
        flow, t.new_uuid(), {"unknown_key": "x"}, created=day, exit_type="expired", name="Eve"
    )
    _ingest(pw, [complete, complete_no_values, partial, interrupted, only_unknown])
    assert _response(pw, complete["uuid"]).status == "C"
    assert _response(pw, complete_no_values["uuid"]).status == "C"
    assert _response(pw, partial["uuid"]).status == "P"
    assert _response(pw, interrupted["uuid"]).status == "E"
    # values the poll does not track are ignored: nothing answered
    assert _response(pw, only_unknown["uuid"]).status == "E"
    assert _answers(pw, only_unknown["uuid"]) == {}
    resp = _response(pw, partial["uuid"])
    # updated_on: time of the latest value (created + 1 min), exited_on empty
    assert resp.updated_on == dt.datetime(2026, 11, 16, 8, 1, tzinfo=UTC)
    assert resp.exited_on is None
    assert resp.org_unit_id == pw.south.org_unit_id
    # no values: updated_on falls back to modified_on
    assert _response(pw, interrupted["uuid"]).updated_on == dt.datetime(
        2026, 11, 16, 8, 1, tzinfo=UTC
    )


def test_only_the_newest_response_per_contact_per_pollrun_is_active(pw: Any) -> None:
    flow = pw.poll.flow_uuid
    first = run(
        flow,
        pw.ana,
        {"children": 1, "comment": "first answer"},
        created="2026-11-16T08:00:00+00:00",
    )
    second = run(
        flow,
        pw.ana,
        {"children": 2, "comment": "second answer"},
        created="2026-11-16T09:00:00+00:00",
    )
    _ingest(pw, [second, first])  # order in the page does not matter
    assert _response(pw, second["uuid"]).is_active is True
    assert _response(pw, first["uuid"]).is_active is False
    assert all(a.is_active for a in _answers(pw, second["uuid"]).values())
    assert not any(a.is_active for a in _answers(pw, first["uuid"]).values())
    # an older run arriving later stays inactive
    older = run(flow, pw.ana, {"children": 9}, created="2026-11-16T07:00:00+00:00")
    _ingest(pw, [older])
    assert _response(pw, older["uuid"]).is_active is False
    assert _response(pw, second["uuid"]).is_active is True
    # a newer run in a later page supersedes the active one, answers included
    newest = run(flow, pw.ana, {"children": 3}, created="2026-11-16T10:00:00+00:00")
    _ingest(pw, [newest])
    assert _response(pw, newest["uuid"]).is_active is True
    assert _response(pw, second["uuid"]).is_active is False
    assert not any(a.is_active for a in _answers(pw, second["uuid"]).values())
    # the superseded open answer left the word counts
    with account_scope(pw.w.account):
        words = set(WordCount.objects.filter(question=pw.q_comment).values_list("word", flat=True))
    assert "second" not in words
    # other contacts and other days are untouched
    ben_run = run(flow, pw.ben, {"children": 2}, created="2026-11-16T11:00:00+00:00")
    _ingest(pw, [ben_run])
    assert _response(pw, newest["uuid"]).is_active is True
    assert _response(pw, ben_run["uuid"]).is_active is True


def test_same_day_run_joins_the_fixtures_pollrun_and_supersedes(pw: Any) -> None:
    # ana answered on 2026-11-09 (children 3); a new run that day replaces it as active
    with account_scope(pw.w.account):
        old = Response.objects.get(pollrun=pw.run2, contact=pw.ana)
    r = run(pw.poll.flow_uuid, pw.ana, {"children": 4}, created="2026-11-09T15:00:00+00:00")
    _ingest(pw, [r])
    old.refresh_from_db()
    assert old.is_active is False
    with account_scope(pw.w.account):
        assert not Answer.objects.filter(response=old, is_active=True).exists()
        # same-day sum: 3 (old, inactive) + 4 (new) = 7 on both answers
        sums = sorted(
            Answer.objects.filter(
                question=pw.q_children, contact=pw.ana, local_date=pw.run2.local_date
            ).values_list("value_number", "day_sum")
        )
    assert sums == [(3.0, 7.0), (4.0, 7.0)]


def test_numeric_categories_from_the_rules(pw: Any) -> None:
    flow = pw.poll.flow_uuid
    cases = {
        "0": "Few",
        "2": "Few",
        "3": "Many",
        "10": "Many",
        "2.5": "Other",
        "11": "Other",
        "-1": "Other",
        "lots": "Other",
    }
    runs = []
    for i, value in enumerate(cases):
        contact = t.new_uuid()
        runs.append(
            run(
                flow,
                contact,
                {"children": (value, "Ignored")},
                created=f"2026-11-16T0{i}:10:00+00:00",
                name=f"C{i}",
            )
        )
    _ingest(pw, runs)
    for r, (value, category) in zip(runs, cases.items(), strict=True):
        answer = _answers(pw, r["uuid"])["children"]
        assert answer.category == category, value
        assert answer.value == value
    assert _answers(pw, runs[4]["uuid"])["children"].value_number == 2.5
    assert _answers(pw, runs[7]["uuid"])["children"].value_number is None
    assert _answers(pw, runs[7]["uuid"])["children"].day_sum is None


def test_strict_and_inclusive_bounds(pw: Any) -> None:
    with account_scope(pw.w.account):
        q = t.make_question(
            pw.poll,
            "temperature",
            QuestionType.NUMERIC,
            rules=[
                {"category": "Cold", "test": "lt", "arguments": [10]},
                {"category": "Exactly 20", "test": "eq", "arguments": [20]},
                {"category": "Hot", "test": "gt", "arguments": [30]},
                {"category": "Mild", "test": "between", "arguments": [10, 30]},
            ],
        )
    expected = {"9.9": "Cold", "10": "Mild", "20": "Exactly 20", "30": "Mild", "30.1": "Hot"}
    runs = [
        run(
            pw.poll.flow_uuid,
            t.new_uuid(),
            {"temperature": v},
            created=f"2026-11-17T0{i}:00:00+00:00",
            name="X",
        )
        for i, v in enumerate(expected)
    ]
    _ingest(pw, runs)
    with account_scope(pw.w.account):
        got = dict(Answer.objects.filter(question=q).values_list("value", "category"))
    assert got == expected


def test_categorical_and_open_categories(pw: Any) -> None:
    flow = pw.poll.flow_uuid
    r1 = run(
        flow,
        pw.ana,
        {
            "color": ("red", {"base": "Red", "fra": "Rouge"}),
            "comment": ("Clean water is good", "All Responses"),
        },
        created="2026-11-16T08:00:00+00:00",
    )
    r2 = run(
        flow,
        pw.cara,
        {"color": ("bleu", "Blue"), "comment": ("L'eau est très sale", "All Responses")},
        created="2026-11-16T09:00:00+00:00",
    )
    _ingest(pw, [r1, r2])
    a1, a2 = _answers(pw, r1["uuid"]), _answers(pw, r2["uuid"])
    assert (a1["color"].category, a1["color"].value) == ("Red", "red")
    assert a2["color"].category == "Blue"
    assert a1["comment"].category == "" and a2["comment"].category == ""
    assert a1["comment"].value_number is None
    with account_scope(pw.w.account):
        words = sorted(
            WordCount.objects.filter(
                question=pw.q_comment, pollrun=a1["comment"].pollrun
            ).values_list("org_unit_id", "word", "count")
        )
    # English stop words drop "is", "good"; French ones drop "l'", "est", "très"
    assert words == sorted(
        [
            (pw.north.org_unit_id, "clean", 1),
            (pw.north.org_unit_id, "water", 1),
            (pw.south.org_unit_id, "eau", 1),
            (pw.south.org_unit_id, "sale", 1),
        ]
    )


def test_value_longer_than_the_column_is_cut(pw: Any) -> None:
    r = run(
        pw.poll.flow_uuid, pw.ana, {"comment": "word " * 200}, created="2026-11-16T08:00:00+00:00"
    )
    _ingest(pw, [r])
    assert len(_answers(pw, r["uuid"])["comment"].value) == 640


def test_same_day_sum_across_pages(pw: Any) -> None:
    flow = pw.poll.flow_uuid
    a = run(flow, pw.ben, {"children": 2}, created="2026-11-16T08:00:00+00:00")
    b = run(flow, pw.ben, {"children": 3}, created="2026-11-16T09:00:00+00:00")
    _ingest(pw, [a, b])
    assert _answers(pw, a["uuid"])["children"].day_sum == 5.0
    assert _answers(pw, b["uuid"])["children"].day_sum == 5.0
    c = run(flow, pw.ben, {"children": 4}, created="2026-11-16T12:00:00+00:00")
    other_day = run(flow, pw.ben, {"children": 6}, created="2026-11-17T12:00:00+00:00")
    _ingest(pw, [c, other_day])
    # 2 + 3 + 4 = 9 for every answer of that day, active or not; the next day alone
    for r in (a, b, c):
        assert _answers(pw, r["uuid"])["children"].day_sum == 9.0
    assert _answers(pw, other_day["uuid"])["children"].day_sum == 6.0


def test_changed_run_is_rewritten_and_unchanged_one_skipped(pw: Any) -> None:
    flow = pw.poll.flow_uuid
    r = run(flow, pw.ana, {"children": 2}, created="2026-11-16T08:00:00+00:00", exit_type=None)
    _ingest(pw, [r])
    assert _response(pw, r["uuid"]).status == "P"
    r2 = run(
        flow,
        pw.ana,
        {"children": 5, "comment": "more water"},
        uuid=r["uuid"],
        created="2026-11-16T08:00:00+00:00",
        modified="2026-11-16T08:30:00+00:00",
    )
    stats = _ingest(pw, [r2])
    assert (stats["created"], stats["updated"]) == (0, 1)
    resp = _response(pw, r["uuid"])
    assert resp.status == "C"
    answers = _answers(pw, r["uuid"])
    assert answers["children"].value_number == 5.0
    assert answers["children"].category == "Many"
    assert answers["children"].day_sum == 5.0
    assert set(answers) == {"children", "comment"}


def test_ingesting_twice_writes_nothing(pw: Any) -> None:
    flow = pw.poll.flow_uuid
    runs = [
        run(
            flow,
            pw.ana,
            {"children": 2, "color": ("red", "Red"), "comment": "clean water"},
            created="2026-11-16T08:00:00+00:00",
        ),
        run(flow, pw.ana, {"children": 3}, created="2026-11-16T09:00:00+00:00"),
        run(flow, pw.cara, {"children": 5}, created="2026-11-16T23:30:00+00:00", exit_type=None),
        run(
            flow,
            t.new_uuid(),
            {"children": 1},
            created="2026-11-17T08:00:00+00:00",
            name="Newcomer",
        ),
    ]
    first = _ingest(pw, runs)
    assert first["created"] == 4
    before = snapshot(pw.w.account)
    with WriteCounter() as counter:
        second = _ingest(pw, runs)
    assert counter.writes == []
    assert (second["created"], second["updated"], second["unchanged"]) == (0, 0, 4)
    assert snapshot(pw.w.account) == before


def test_api_drift_and_bad_runs_are_tolerated(pw: Any) -> None:
    flow = pw.poll.flow_uuid
    drifted = run(flow, pw.ana, {"children": 2}, created="2026-11-16T08:00:00+00:00")
    for key in ("path", "exited_on", "start", "responded"):
        drifted.pop(key)
    drifted["new_field"] = {"added_in": "a newer RapidPro"}
    drifted["values"]["children"]["new_field"] = True
    drifted["values"]["children"].pop("time")
    no_values = run(flow, pw.ben, None, created="2026-11-16T08:00:00+00:00")
    no_values["values"] = None
    broken = run(flow, pw.cara, {"children": 1})
    broken["contact"] = None
    no_dates = run(flow, pw.dan, {"children": 1})
    no_dates["created_on"] = no_dates["modified_on"] = None
    stats = _ingest(pw, [drifted, no_values, broken, no_dates])
    assert (stats["created"], stats["invalid"]) == (2, 2)
    answer = _answers(pw, drifted["uuid"])["children"]
    # no value time: the run's modified_on stands in
    assert answer.submitted_on == dt.datetime.fromisoformat(drifted["modified_on"])
    assert _response(pw, no_values["uuid"]).status == "C"


def test_value_matched_by_node_when_the_key_changed(pw: Any) -> None:
    with account_scope(pw.w.account):
        pw.q_children.node_uuids = ["node-kids"]
        pw.q_children.save(update_fields=["node_uuids"])
    r = run(pw.poll.flow_uuid, pw.ana, {"kids": "4"}, created="2026-11-16T08:00:00+00:00")
    _ingest(pw, [r])
    assert _answers(pw, r["uuid"])["children"].value_number == 4.0


def test_unknown_contacts_become_placeholders(pw: Any) -> None:
    from closedloop.people.models import Identifier
    from closedloop.polls.models import Contact

    uuid = t.new_uuid()
    runs = [
        run(
            pw.poll.flow_uuid,
            uuid,
            {"children": 1},
            created="2026-11-16T08:00:00+00:00",
            name="Eve Newcomer",
        ),
        run(
            pw.poll.flow_uuid,
            uuid,
            {"children": 2},
            created="2026-11-16T09:00:00+00:00",
            name="Eve Newcomer",
        ),
    ]
    stats = _ingest(pw, runs)
    assert stats["contacts_created"] == 1
    with account_scope(pw.w.account):
        contact = Contact.objects.select_related("person").get(uuid=uuid)
        assert contact.name == "Eve Newcomer"
        assert contact.person.name == "Eve Newcomer"
        assert contact.modified_on is None  # the next contact sync completes it
        assert contact.org_unit_id is None
        assert Identifier.objects.filter(
            person=contact.person, system="rapidpro", value=uuid
        ).exists()
        assert Response.objects.filter(contact=contact).count() == 2


def test_runs_of_other_flows_and_inactive_polls_are_ignored(pw: Any) -> None:
    with account_scope(pw.w.account):
        inactive = t.make_poll(pw.connection, "Not a poll")
        inactive.is_active = False
        inactive.save(update_fields=["is_active"])
    runs = [
        run(t.new_uuid(), pw.ana, {"children": 1}, created="2026-11-16T08:00:00+00:00"),
        run(inactive.flow_uuid, pw.ana, {"children": 1}, created="2026-11-16T08:00:00+00:00"),
    ]
    before = snapshot(pw.w.account)
    stats = _ingest(pw, runs)
    assert (stats["skipped"], stats["created"]) == (2, 0)
    # the watermark still advances past them
    assert stats["last_modified_on"] == dt.datetime(2026, 11, 16, 8, 2, tzinfo=UTC)
    assert snapshot(pw.w.account) == before


def test_never_touches_another_account(pw: Any) -> None:
    other_before = snapshot(pw.w.other_account)
    # account B's poll has its own flow; a run of it sent to A's connection is ignored
    foreign = run(
        pw.other_poll.flow_uuid, pw.ana, {"score": 9}, created="2026-11-16T08:00:00+00:00"
    )
    mine = run(pw.poll.flow_uuid, pw.ana, {"children": 9}, created="2026-11-16T08:00:00+00:00")
    stats = _ingest(pw, [foreign, mine])
    assert (stats["skipped"], stats["created"]) == (1, 1)
    assert snapshot(pw.w.other_account) == other_before
    # the same run uuid may exist in both accounts: B's ingest keeps its own copy
    with account_scope(pw.w.other_account):
        from closedloop.polls.models import Contact

        zed = Contact.objects.get(name="Zed")
    twin = run(
        pw.other_poll.flow_uuid,
        zed,
        {"score": 4},
        uuid=mine["uuid"],
        created="2026-11-16T08:00:00+00:00",
    )
    ingest.ingest_runs(pw.other_connection, [twin])
    assert _answers(pw, mine["uuid"])["children"].value == "9"
    with account_scope(pw.w.other_account):
        assert Response.objects.get(run_uuid=mine["uuid"]).contact_id == zed.id


def test_temba_run_objects_are_accepted(pw: Any) -> None:
    from temba_client.v2.types import Run

    flow = pw.poll.flow_uuid
    as_dict = run(
        flow,
        pw.ana,
        {"children": ("4", "Many"), "comment": "clean water"},
        created="2026-11-16T08:00:00+00:00",
    )
    as_object = Run.deserialize(as_dict)
    assert _ingest(pw, [as_object])["created"] == 1
    answers = _answers(pw, as_dict["uuid"])
    assert (answers["children"].value_number, answers["children"].category) == (4.0, "Many")
    assert answers["comment"].submitted_on == dt.datetime(2026, 11, 16, 8, 2, tzinfo=UTC)
    # the same run as a dict afterwards is recognised as unchanged
    assert _ingest(pw, [as_dict])["unchanged"] == 1
