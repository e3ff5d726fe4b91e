"""Participation, home figures, map, one-run summary and indicators, hand-computed."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from closedloop.core.tenancy import account_scope
from closedloop.polls import selectors, stats
from closedloop.polls import testing as t
from closedloop.polls.models import Indicator, ResponseStatus, SampleAnswer
from closedloop.polls.tests.conftest import DAY1, DAY2

C, P, E = ResponseStatus.COMPLETE, ResponseStatus.PARTIAL, ResponseStatus.EMPTY


def _by_name(rows):
    return {r["name"]: r for r in rows}


def test_participation_by_panel(polls_world):
    pw = polls_world
    with account_scope(pw.w.account):
        rows = _by_name(stats.participation(pw.run1, None, by="panel"))
        sam_units = stats.parse_filters(pw.w.sam_membership, {}).unit_ids
        sam = _by_name(stats.participation(pw.run1, sam_units, by="panel"))
    assert rows["North panel"] == {
        "id": pw.w.region_north.pk,
        "name": "North panel",
        "empty": 0,
        "partial": 0,
        "complete": 1,
        "total": 1,
        "completion": 100.0,
    }
    assert rows["Northvale panel"]["partial"] == 1 and rows["Northvale panel"]["completion"] == 0
    south = rows["South panel"]
    assert (south["empty"], south["complete"], south["total"], south["completion"]) == (
        1,
        1,
        2,
        50.0,
    )
    assert set(sam) == {"North panel", "Northvale panel"}
    totals = stats.participation_totals(list(rows.values()))
    assert (totals["total"], totals["complete"], totals["completion"]) == (4, 2, 50.0)


def test_participation_by_cohort(polls_world):
    pw = polls_world
    with account_scope(pw.w.account):
        rows = _by_name(stats.participation(pw.run1, None, by="cohort"))
        sam_units = stats.parse_filters(pw.w.sam_membership, {}).unit_ids
        sam = _by_name(stats.participation(pw.run1, sam_units, by="cohort"))
    assert rows["Teachers"]["id"] == pw.teachers.pk
    assert (rows["Teachers"]["complete"], rows["Teachers"]["partial"]) == (1, 1)
    assert rows["Teachers"]["completion"] == 50.0
    assert (rows["Parents"]["complete"], rows["Parents"]["total"]) == (1, 1)
    assert set(rows) == {"Teachers", "Parents"}  # dan has no cohort
    assert set(sam) == {"Teachers"}


def test_participation_ignores_superseded_responses(polls_world):
    pw = polls_world
    with account_scope(pw.w.account):
        t.make_response(pw.run1, pw.dan, {pw.q_children: 1}, status=C, active=False)
        rows = _by_name(stats.participation(pw.run1, None))
    assert (rows["South panel"]["empty"], rows["South panel"]["complete"]) == (1, 1)


def test_participation_matrix(polls_world):
    pw = polls_world
    from closedloop.polls.models import Contact

    with account_scope(pw.w.account):
        matrix = stats.participation_matrix(
            pw.w.alice_membership, [pw.run1, pw.run2], Contact.objects.order_by("name")
        )
        sam = stats.participation_matrix(
            pw.w.sam_membership, [pw.run1, pw.run2], Contact.objects.all()
        )
    assert matrix[pw.ana.pk] == {pw.run1.pk: "C", pw.run2.pk: "C"}
    assert matrix[pw.ben.pk] == {pw.run1.pk: "P", pw.run2.pk: None}
    assert matrix[pw.dan.pk] == {pw.run1.pk: "E", pw.run2.pk: None}
    # Sam's matrix never reveals South responses even if given South contacts
    assert sam[pw.cara.pk] == {pw.run1.pk: None, pw.run2.pk: None}


def test_home_figures_distinct_contacts(polls_world):
    pw = polls_world
    with account_scope(pw.w.account):
        today = stats.account_today(pw.w.account)
        recent = t.make_pollrun(pw.poll, today)
        other = t.make_poll(pw.connection, "Second poll")
        q = t.make_question(other, "q")
        recent2 = t.make_pollrun(other, today - dt.timedelta(days=3))
        # ana answers twice (two polls), ben once, dan empty, cara partial
        t.make_response(recent, pw.ana, {pw.q_children: 1}, status=C)
        t.make_response(recent2, pw.ana, {q: 1}, status=C)
        t.make_response(recent, pw.ben, {pw.q_children: 1}, status=P)
        t.make_response(recent, pw.dan, {}, status=E)
        t.make_response(recent2, pw.cara, {q: 1}, status=P)
        old = t.make_pollrun(other, today - dt.timedelta(days=40))
        t.make_response(old, pw.cara, {q: 1}, status=C)
        t.make_response(old, pw.dan, {q: 1}, status=C)
        home = stats.home_figures(pw.w.alice_membership)
        sam = stats.home_figures(pw.w.sam_membership)
    first = home["recent_pollruns"][0]
    assert first["id"] == recent.pk
    assert (first["participants"], first["responses"], first["partial"]) == (3, 1, 1)
    assert len(home["recent_pollruns"]) == 5
    panels = {p["name"]: p["contacts"] for p in home["active_panels"]}
    assert panels == {"North panel": 1, "Northvale panel": 1, "South panel": 1}
    cohorts = {c["name"]: c["contacts"] for c in home["active_cohorts"]}
    assert cohorts == {"Teachers": 2, "Parents": 1}
    assert {p["name"] for p in sam["active_panels"]} == {"North panel", "Northvale panel"}
    assert {c["name"] for c in sam["active_cohorts"]} == {"Teachers"}
    sam_first = sam["recent_pollruns"][0]
    assert (sam_first["participants"], sam_first["responses"]) == (2, 1)


def test_map_numeric_and_categorical(polls_world):
    pw = polls_world
    from closedloop.registry.models import OrgUnit

    square = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}
    with account_scope(pw.w.account):
        OrgUnit.objects.filter(pk=pw.w.region_north.pk).update(simplified_geometry=square)
        OrgUnit.objects.filter(pk=pw.w.region_south.pk).update(latitude=-1.0, longitude=29.0)
        filters = stats.Filters(start=DAY1, end=DAY2)
        numeric = {u["name"]: u for u in stats.map_data(pw.q_children, filters)["units"]}
        color = {u["name"]: u for u in stats.map_data(pw.q_color, filters)["units"]}
        sam_units = stats.parse_filters(pw.w.sam_membership, {}).unit_ids
        sam = stats.map_data(pw.q_children, stats.Filters(start=DAY1, end=DAY2, unit_ids=sam_units))
    # North: ana 2, 3 → 2.5 ("Other": rules are 0-2 and 3-10 inclusive)
    assert numeric["North"]["value"] == 2.5 and numeric["North"]["category"] == "Other"
    assert numeric["North"]["geometry"] == square and numeric["North"]["panel"] == "North panel"
    assert numeric["Northvale"]["value"] == 4.0 and numeric["Northvale"]["category"] == "Many"
    assert numeric["South"]["value"] == 5.5 and numeric["South"]["count"] == 2
    assert numeric["South"]["geometry"] == {"type": "Point", "coordinates": [29.0, -1.0]}
    assert numeric["Northvale"]["geometry"] is None
    # colors: North Red 1 Blue 1 → tie, question order puts Red first; South Blue
    assert color["North"]["category"] == "Red" and color["South"]["category"] == "Blue"
    assert color["Northvale"]["count"] == 0 and color["Northvale"]["category"] is None
    assert {u["name"] for u in sam["units"]} == {"North", "Northvale"}


def test_pollrun_summary_histogram_matches_numpy(polls_world):
    pw = polls_world
    values = [1, 2, 2, 3, 5, 8, 13, 21, 34, 55]
    with account_scope(pw.w.account):
        small = stats.pollrun_summary(pw.run1, pw.q_children, None)
        run = t.make_pollrun(pw.poll, dt.date(2026, 11, 20))
        for i, value in enumerate(values):
            contact = t.make_contact(pw.connection, f"C{i}", pw.north)
            t.make_response(run, contact, {pw.q_children: value}, status=C)
        big = stats.pollrun_summary(run, pw.q_children, None)
        color = stats.pollrun_summary(pw.run1, pw.q_color, None)
        sam_units = stats.parse_filters(pw.w.sam_membership, {}).unit_ids
        sam = stats.pollrun_summary(pw.run1, pw.q_children, sam_units)
    assert [b["count"] for b in small["bins"]] == [1, 2]
    assert (small["bins"][0]["start"], small["bins"][-1]["end"]) == (2.0, 6.0)
    counts, edges = np.histogram(values, bins="sqrt")
    assert [b["count"] for b in big["bins"]] == counts.tolist()
    assert [b["start"] for b in big["bins"]] == pytest.approx(edges[:-1].tolist())
    assert big["count"] == 10 and big["mean"] == 14.4
    assert color["categories"] == [
        {"category": "Red", "count": 1, "share": 50.0},
        {"category": "Blue", "count": 1, "share": 50.0},
    ]
    assert sam["count"] == 2 and sam["mean"] == 3.0


def _indicator(pw, **kwargs):
    return Indicator.objects.create(
        account=pw.w.account,
        name="Children",
        start_date=DAY1,
        end_date=DAY2,
        baseline_question=pw.q_children,
        follow_up_question=pw.q_children,
        **kwargs,
    )


def test_indicator_real_answers(polls_world):
    pw = polls_world
    with account_scope(pw.w.account):
        indicator = _indicator(pw)
        # sample rows must never leak into real figures
        SampleAnswer.objects.create(
            account=pw.w.account,
            indicator=indicator,
            kind="baseline",
            contact=pw.ana,
            local_date=DAY1,
            value=1000,
        )
        data = stats.indicator_data(indicator, None)
        sam_units = stats.parse_filters(pw.w.sam_membership, {}).unit_ids
        sam = stats.indicator_data(indicator, sam_units)
    # first answers: ana 2 (day 1, not 3), ben 4, cara 6
    assert data["baseline"] == 12.0 and data["baseline_contacts"] == 3
    assert data["target"] == 12.0 and data["sample"] is False
    assert data["follow_up"] == [
        {"date": "2026-11-02", "pollrun": pw.run1.pk, "sum": 12.0, "response_rate": 75.0},
        {"date": "2026-11-09", "pollrun": pw.run2.pk, "sum": 8.0, "response_rate": 100.0},
    ]
    assert data["summary"] == {
        "dates": 2,
        "baseline": 12.0,
        "baseline_response_rate": 87.5,
        "follow_up_mean": 10.0,
        "follow_up_stdev": 2.0,
        "follow_up_response_rate": 87.5,
    }
    assert sam["baseline"] == 6.0
    assert [p["sum"] for p in sam["follow_up"]] == [6.0, 3.0]


def test_indicator_baseline_ties_and_first_answer_outside_the_units(polls_world):
    """Ties on submission time go to the lower answer id; a contact whose first answer
    lies outside the member's units does not count with a later answer inside them."""
    pw = polls_world
    at = pw.run2.conducted_on + dt.timedelta(hours=1)
    with account_scope(pw.w.account):
        mover = t.make_contact(pw.connection, "Mover", pw.south)
        t.make_response(pw.run1, mover, {pw.q_children: 10})  # first: in the South
        mover.org_unit_id = pw.north.org_unit_id
        mover.save()
        t.make_response(pw.run2, mover, {pw.q_children: 1})  # later: in the North
        twin = t.make_contact(pw.connection, "Twin", pw.north)
        t.make_response(pw.run2, twin, {pw.q_children: 100}, at=at)  # lower id wins the tie
        t.make_response(pw.run1, twin, {pw.q_children: 7}, at=at)
        indicator = _indicator(pw)
        data = stats.indicator_data(indicator, None)
        sam = stats.indicator_data(indicator, stats.parse_filters(pw.w.sam_membership, {}).unit_ids)
    # ana 2 + ben 4 + cara 6 + mover 10 + twin 100
    assert data["baseline"] == 122.0 and data["baseline_contacts"] == 5
    # ana 2 + ben 4 + twin 100; the mover's first answer is in the South
    assert sam["baseline"] == 106.0 and sam["baseline_contacts"] == 3


def test_indicator_goal_and_sum_rule(polls_world):
    pw = polls_world
    with account_scope(pw.w.account):
        from closedloop.polls.models import Answer

        Answer.objects.filter(pollrun=pw.run1, contact=pw.ana, question=pw.q_children).update(
            day_sum=9
        )
        settings_row = selectors.polls_settings(pw.w.account)
        settings_row.same_day_rule = "sum"
        settings_row.save()
        data = stats.indicator_data(_indicator(pw, goal=20), None)
    assert data["baseline"] == 19.0  # 9 + 4 + 6
    assert data["goal"] == 20 and data["target"] == 20


def test_indicator_sample_data_only(polls_world):
    pw = polls_world
    rows = [
        ("baseline", pw.ana, DAY1, 5),
        ("baseline", pw.ana, DAY2, 7),
        ("baseline", pw.ben, DAY2, 3),
        ("baseline", pw.cara, DAY1, 50),
        ("follow_up", pw.ana, DAY1, 2),
        ("follow_up", pw.ben, DAY1, 4),
        ("follow_up", pw.ana, DAY2, 6),
        ("follow_up", pw.ana, DAY2 + dt.timedelta(days=1), 99),  # after the range
    ]
    with account_scope(pw.w.account):
        indicator = _indicator(pw, use_sample_data=True)
        SampleAnswer.objects.bulk_create(
            [
                SampleAnswer(
                    account=pw.w.account,
                    indicator=indicator,
                    kind=kind,
                    contact=contact,
                    local_date=day,
                    value=value,
                )
                for kind, contact, day, value in rows
            ]
        )
        data = stats.indicator_data(indicator, None)
        sam_units = stats.parse_filters(pw.w.sam_membership, {}).unit_ids
        sam = stats.indicator_data(indicator, sam_units)
    assert data["sample"] is True
    assert data["baseline"] == 58.0  # ana 5 (first), ben 3, cara 50
    assert data["follow_up"] == [
        {"date": "2026-11-02", "pollrun": None, "sum": 6.0, "response_rate": 100.0},
        {"date": "2026-11-09", "pollrun": None, "sum": 6.0, "response_rate": 50.0},
    ]
    assert data["summary"]["follow_up_mean"] == 6.0 and data["summary"]["follow_up_stdev"] == 0
    assert sam["baseline"] == 8.0
