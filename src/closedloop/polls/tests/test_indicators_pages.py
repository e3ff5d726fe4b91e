"""Indicator pages: list, create/edit/delete, the indicator page and its numbers (scoped),
the sandbox sample data (isolated from real answers) and the XLSX export."""

from __future__ import annotations

import datetime as dt
import io
import json
import re

import pytest
from django.urls import reverse

from closedloop.core.tenancy import account_scope
from closedloop.polls import selectors, stats
from closedloop.polls.models import Answer, Indicator, Response, SampleAnswer

pytestmark = pytest.mark.django_db

START, END = dt.date(2026, 11, 1), dt.date(2026, 11, 30)


@pytest.fixture
def indicator(polls_world):
    w = polls_world
    with account_scope(w.w.account):
        return Indicator.objects.create(
            account=w.w.account,
            name="Children reached",
            start_date=START,
            end_date=END,
            baseline_question=w.q_children,
            follow_up_question=w.q_children,
            y_axis_title="Children",
        )


def _chart(response):
    body = response.content.decode()
    found = re.search(
        r'<script id="indicator-chart-data" type="application/json">(.*?)</script>', body
    )
    assert found, "no chart data on the page"
    return json.loads(found.group(1))


def _expected(w, indicator, membership):
    with account_scope(w.w.account):
        ind = Indicator.objects.get(pk=indicator.pk)
        return stats.indicator_data(ind, selectors.panel_unit_ids(membership))


# --- reading --------------------------------------------------------------------------------


def test_list_shows_recent_indicators_first(
    polls_world, indicator, client_for, django_assert_max_num_queries
):
    w = polls_world
    with account_scope(w.w.account):
        Indicator.objects.create(
            account=w.w.account,
            name="Older one",
            start_date=dt.date(2025, 1, 1),
            end_date=dt.date(2025, 2, 1),
            baseline_question=w.q_children,
            follow_up_question=w.q_children,
        )
    client = client_for(w.w.bob)
    client.get(reverse("polls:indicator_list"))
    with django_assert_max_num_queries(10):
        body = client.get(reverse("polls:indicator_list")).content.decode()
    assert body.index("Children reached") < body.index("Older one")
    assert 'data-testid="new-indicator"' not in body  # Bob only reads


def test_detail_numbers_match_the_stats(polls_world, indicator, client_for):
    w = polls_world
    response = client_for(w.w.alice).get(reverse("polls:indicator_detail", args=[indicator.pk]))
    assert response.status_code == 200
    expected = _expected(w, indicator, w.w.alice_membership)
    assert expected["baseline"] == 12  # ana 2 + ben 4 + cara 6 (first answers)
    assert [p["sum"] for p in expected["follow_up"]] == [12, 8]
    chart = _chart(response)
    assert chart["dates"] == ["2026-11-02", "2026-11-09"]
    assert chart["sums"] == [12, 8]
    assert chart["rates"] == [75, 100]
    assert chart["baseline"] == 12 and chart["goal"] is None and chart["sample"] is False
    summary = response.context["summary"]
    assert summary == expected["summary"]
    body = response.content.decode()
    assert 'data-testid="sum-mean">10.00<' in body
    assert 'data-testid="sum-stdev">2.00<' in body
    assert 'data-testid="sum-rate">87.5 %<' in body
    assert 'data-testid="sample-badge"' not in body and 'data-testid="sample-alert"' not in body


def test_supervisor_sees_only_his_panels_numbers(polls_world, indicator, client_for):
    w = polls_world
    response = client_for(w.w.sam).get(reverse("polls:indicator_detail", args=[indicator.pk]))
    assert response.status_code == 200
    expected = _expected(w, indicator, w.w.sam_membership)
    chart = _chart(response)
    assert chart["baseline"] == expected["baseline"] == 6  # ana 2 + ben 4
    assert chart["sums"] == [p["sum"] for p in expected["follow_up"]] == [6, 3]
    assert response.context["summary"] == expected["summary"]
    assert 12 not in chart["sums"]
    export = client_for(w.w.sam).get(reverse("polls:indicator_export", args=[indicator.pk]))
    rows = _xlsx_rows(export)
    assert [r[1] for r in rows if r and r[0] in ("2026-11-02", "2026-11-09")] == [6, 3]


def test_goal_replaces_the_baseline_line(polls_world, indicator, client_for):
    with account_scope(polls_world.w.account):
        Indicator.objects.filter(pk=indicator.pk).update(goal=20)
    response = client_for(polls_world.w.alice).get(
        reverse("polls:indicator_detail", args=[indicator.pk])
    )
    assert _chart(response)["goal"] == 20
    assert "against the goal" in response.content.decode()


def test_charlie_gets_404_everywhere(polls_world, indicator, client_for):
    client = client_for(polls_world.w.charlie)
    for name in ("indicator_detail", "indicator_edit", "indicator_delete", "indicator_export"):
        assert client.get(reverse(f"polls:{name}", args=[indicator.pk])).status_code == 404, name
    for name in ("indicator_sample", "indicator_sample_clear", "indicator_sample_toggle"):
        assert client.post(reverse(f"polls:{name}", args=[indicator.pk])).status_code == 404, name
    assert "Children reached" not in client.get(reverse("polls:indicator_list")).content.decode()


def test_bob_reads_but_may_not_change(polls_world, indicator, client_for):
    client = client_for(polls_world.w.bob)
    assert client.get(reverse("polls:indicator_detail", args=[indicator.pk])).status_code == 200
    assert client.get(reverse("polls:indicator_export", args=[indicator.pk])).status_code == 200
    assert client.get(reverse("polls:indicator_create")).status_code == 403
    assert client.get(reverse("polls:indicator_edit", args=[indicator.pk])).status_code == 403
    assert client.post(reverse("polls:indicator_delete", args=[indicator.pk])).status_code == 403
    data = {"minimum": 1, "maximum": 5, "contact_count": 3, "days": 2}
    assert (
        client.post(reverse("polls:indicator_sample", args=[indicator.pk]), data).status_code == 403
    )
    with account_scope(polls_world.w.account):
        assert Indicator.objects.filter(pk=indicator.pk).exists()
        assert not SampleAnswer.objects.exists()
    body = client.get(reverse("polls:indicator_detail", args=[indicator.pk])).content.decode()
    assert 'data-testid="sandbox"' not in body


# --- create / edit / delete -----------------------------------------------------------------


def _form(w, **overrides):
    return {
        "name": "Water use",
        "start_date": "2026-11-01",
        "end_date": "2026-11-30",
        "baseline_poll": w.poll.pk,
        "baseline_question": w.q_children.pk,
        "follow_up_poll": w.poll.pk,
        "follow_up_question": w.q_children.pk,
        "y_axis_title": "Litres",
        "goal": "15",
    } | overrides


def test_create_edit_delete(polls_world, client_for):
    w = polls_world
    client = client_for(w.w.sam)  # supervisors may act on indicators
    assert client.get(reverse("polls:indicator_create")).status_code == 200
    response = client.post(reverse("polls:indicator_create"), _form(w))
    assert response.status_code == 302
    with account_scope(w.w.account):
        ind = Indicator.objects.get(name="Water use")
    assert (ind.goal, ind.y_axis_title, ind.created_by) == (15, "Litres", w.w.sam)
    response = client.post(
        reverse("polls:indicator_edit", args=[ind.pk]), _form(w, name="Water use 2", goal="")
    )
    assert response.status_code == 302
    with account_scope(w.w.account):
        ind.refresh_from_db()
    assert (ind.name, ind.goal) == ("Water use 2", None)
    assert client.get(reverse("polls:indicator_delete", args=[ind.pk])).status_code == 200
    assert client.post(reverse("polls:indicator_delete", args=[ind.pk])).status_code == 302
    with account_scope(w.w.account):
        assert not Indicator.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"end_date": "2026-10-01"}, "end_date"),
        ({"baseline_question": "COLOR"}, "baseline_question"),  # categorical: not offered
        ({"follow_up_question": "OTHER"}, "follow_up_question"),  # another account's question
        ({"name": "children reached"}, "name"),  # duplicate (case-insensitive)
        ({"goal": "lots"}, "goal"),
        ({"baseline_poll": "999999"}, "baseline_poll"),
    ],
)
def test_bad_indicator_input_is_a_field_error(polls_world, indicator, client_for, overrides, field):
    w = polls_world
    if overrides.get("baseline_question") == "COLOR":
        overrides = {"baseline_question": w.q_color.pk}
    if overrides.get("follow_up_question") == "OTHER":
        with account_scope(w.w.other_account):
            overrides = {"follow_up_question": w.other_poll.questions.get().pk}
    response = client_for(w.w.alice).post(reverse("polls:indicator_create"), _form(w, **overrides))
    assert response.status_code == 200
    assert field in response.context["form"].errors, response.context["form"].errors
    with account_scope(w.w.account):
        assert Indicator.objects.count() == 1


def test_question_select_follows_the_poll(polls_world, client_for):
    w = polls_world
    client = client_for(w.w.alice)
    body = client.get(
        reverse("polls:indicator_questions"), {"baseline_poll": w.poll.pk}
    ).content.decode()
    assert "Children" in body and "Color" not in body  # numeric questions only
    body = client.get(
        reverse("polls:indicator_questions"), {"follow_up_poll": w.other_poll.pk}
    ).content.decode()
    assert "Score" not in body  # another account's poll
    form = client.get(reverse("polls:indicator_create")).content.decode()
    assert f'hx-get="{reverse("polls:indicator_questions")}"' in form


# --- sandbox --------------------------------------------------------------------------------


def _real_snapshot(w):
    with account_scope(w.w.account):
        return (
            sorted(
                Answer.objects.values_list("pk", "value", "value_number", "day_sum", "is_active")
            ),
            sorted(Response.objects.values_list("pk", "status", "is_active")),
        )


def test_sample_data_is_isolated_and_switches_the_chart(polls_world, indicator, client_for):
    w = polls_world
    client = client_for(w.w.alice)
    before = _real_snapshot(w)
    url = reverse("polls:indicator_detail", args=[indicator.pk])
    data = {"minimum": 3, "maximum": 3, "contacts": [w.ana.pk, w.cara.pk], "days": 4}
    response = client.post(reverse("polls:indicator_sample", args=[indicator.pk]), data)
    assert response.status_code == 302
    with account_scope(w.w.account):
        samples = list(SampleAnswer.objects.filter(indicator=indicator))
        indicator.refresh_from_db()
    assert len(samples) == 2 * (1 + 4)
    assert {s.value for s in samples} == {3.0}
    assert indicator.use_sample_data
    assert _real_snapshot(w) == before  # real answers untouched
    page = client.get(url)
    chart = _chart(page)
    assert chart["sample"] is True
    assert chart["dates"] == ["2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05"]
    assert chart["sums"] == [6, 6, 6, 6] and chart["baseline"] == 6
    body = page.content.decode()
    assert 'data-testid="sample-badge"' in body and 'data-testid="sample-alert"' in body
    assert body.count(">Sample data</span>") >= 2  # chart card and summary card
    # the list badges it too
    assert (
        'data-testid="sample-badge"' in client.get(reverse("polls:indicator_list")).content.decode()
    )
    # Sam sees only his panels' sample contacts (ana)
    sam_chart = _chart(client_for(w.w.sam).get(url))
    assert sam_chart["sums"] == [3, 3, 3, 3]
    client = client_for(w.w.alice)
    # toggle back to real answers
    client.post(
        reverse("polls:indicator_sample_toggle", args=[indicator.pk]), {"use_sample_data": "0"}
    )
    chart = _chart(client.get(url))
    assert chart["sample"] is False and chart["sums"] == [12, 8]
    # export says it is sample data when shown
    client.post(
        reverse("polls:indicator_sample_toggle", args=[indicator.pk]), {"use_sample_data": "1"}
    )
    rows = _xlsx_rows(client.get(reverse("polls:indicator_export", args=[indicator.pk])))
    assert "Sample data" in str(rows[0][0])
    # clear removes the samples and shows real answers again
    client.post(reverse("polls:indicator_sample_clear", args=[indicator.pk]))
    with account_scope(w.w.account):
        assert not SampleAnswer.objects.filter(indicator=indicator).exists()
        indicator.refresh_from_db()
    assert not indicator.use_sample_data
    assert _real_snapshot(w) == before


def test_sample_count_of_random_contacts(polls_world, indicator, client_for):
    w = polls_world
    data = {"minimum": 1, "maximum": 9, "contact_count": 6, "days": 2}
    client_for(w.w.alice).post(reverse("polls:indicator_sample", args=[indicator.pk]), data)
    with account_scope(w.w.account):
        samples = list(SampleAnswer.objects.filter(indicator=indicator))
    assert len(samples) == 6 * 3
    assert all(1 <= s.value <= 9 and s.value == int(s.value) for s in samples)
    assert (
        len({s.contact_id for s in samples if s.contact_id}) == 4
    )  # every real contact, 2 anonymous


@pytest.mark.parametrize(
    "data",
    [
        {"minimum": 5, "maximum": 1, "contact_count": 3, "days": 2},
        {"minimum": 1, "maximum": 5, "contact_count": 3, "days": 400},
        {"minimum": 1, "maximum": 5, "contact_count": "", "days": 2},
        {"minimum": 1, "maximum": 5, "contacts": ["999999"], "days": 2},
    ],
)
def test_bad_sample_input_generates_nothing(polls_world, indicator, client_for, data):
    w = polls_world
    response = client_for(w.w.alice).post(
        reverse("polls:indicator_sample", args=[indicator.pk]), data, follow=True
    )
    assert "No sample data was generated" in response.content.decode()
    with account_scope(w.w.account):
        assert not SampleAnswer.objects.exists()
        assert not Indicator.objects.get(pk=indicator.pk).use_sample_data


def test_sam_cannot_choose_south_contacts_for_samples(polls_world, indicator, client_for):
    w = polls_world
    data = {"minimum": 1, "maximum": 5, "contacts": [w.cara.pk], "days": 2}
    response = client_for(w.w.sam).post(
        reverse("polls:indicator_sample", args=[indicator.pk]), data, follow=True
    )
    assert "No sample data was generated" in response.content.decode()
    with account_scope(w.w.account):
        assert not SampleAnswer.objects.exists()


def test_showing_sample_data_needs_samples(polls_world, indicator, client_for):
    client = client_for(polls_world.w.alice)
    response = client.post(
        reverse("polls:indicator_sample_toggle", args=[indicator.pk]),
        {"use_sample_data": "1"},
        follow=True,
    )
    assert "Generate sample data first" in response.content.decode()


# --- export ---------------------------------------------------------------------------------


def _xlsx_rows(response):
    from openpyxl import load_workbook

    assert response["Content-Type"].startswith("application/vnd.openxmlformats")
    book = load_workbook(io.BytesIO(response.content), read_only=True)
    return [tuple(row) for row in book.active.iter_rows(values_only=True)]


def test_xlsx_export(polls_world, indicator, client_for):
    response = client_for(polls_world.w.alice).get(
        reverse("polls:indicator_export", args=[indicator.pk])
    )
    assert 'filename="children-reached.xlsx"' in response["Content-Disposition"]
    rows = _xlsx_rows(response)
    assert rows[0][:2] == ("Indicator", "Children reached")
    points = [r for r in rows if r and r[0] in ("2026-11-02", "2026-11-09")]
    assert [r[:4] for r in points] == [("2026-11-02", 12, 75, 12), ("2026-11-09", 8, 100, 12)]
    summary = {r[0]: r[1] for r in rows if len(r) > 1 and r[0]}
    assert summary["Follow-up mean"] == 10 and summary["Follow-up standard deviation"] == 2
