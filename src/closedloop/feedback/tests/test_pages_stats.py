"""Statistics pages (overview, one column, one row against the rest) and the log page."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import statistics

import pytest
from django.urls import reverse

from closedloop.core.tenancy import account_scope
from closedloop.feedback.logs import log_event
from closedloop.feedback.models import Column, WorkflowLog
from closedloop.feedback.tests.conftest import login
from closedloop.feedback.views_stats import column_statistics, overview

pytestmark = pytest.mark.django_db

SCORES = [91.5, 48.0, 75.25, 62.0, 30.5]  # the fixture's scores without its NULL


@pytest.fixture
def course(shared_course):
    return shared_course


def col(world, workflow, name):
    with account_scope(world.account):
        return Column.objects.get(workflow=workflow, name=name)


def test_numeric_column_figures_are_right(world, course):
    with account_scope(world.account):
        stats = column_statistics(course, col(world, course, "score"))
    assert (stats["rows"], stats["count"], stats["nulls"], stats["distinct"]) == (6, 5, 1, 5)
    five = stats["raw"]["five"]
    assert five == [30.5, 48.0, 62.0, 75.25, 91.5]
    assert stats["raw"]["mean"] == pytest.approx(statistics.mean(SCORES))
    assert stats["raw"]["std"] == pytest.approx(statistics.stdev(SCORES))
    kinds = [c["name"] for c in stats["charts"]]
    assert kinds == ["histogram", "box"]
    histogram = stats["charts"][0]["data"]
    assert sum(histogram["values"]) == 5


def test_small_integer_ranges_get_one_bar_per_value(world, course):
    with account_scope(world.account):
        stats = column_statistics(course, col(world, course, "attempts"))
    histogram = stats["charts"][0]["data"]
    assert histogram["labels"] == ["0", "1", "2", "3", "4"]
    assert histogram["values"] == [1, 1, 2, 1, 1]
    assert stats["mode"] == "2"


def test_boolean_and_text_columns_get_value_counts_and_a_bar_chart(world, course):
    with account_scope(world.account):
        passed = column_statistics(course, col(world, course, "passed"))
        names = column_statistics(course, col(world, course, "name"))
    assert passed["value_counts"][0][:2] == ("true", 3)
    assert passed["nulls"] == 1 and passed["mode"] == "true"
    assert [c["name"] for c in passed["charts"]] == ["bar"]
    assert names["distinct"] == 6 and names["figures"] == []


def test_datetime_columns_show_dates_and_a_spread_in_days(world, course):
    with account_scope(world.account):
        stats = column_statistics(course, col(world, course, "submitted"))
    figures = dict(stats["figures"])
    assert figures["minimum"].startswith("2024-03-01")
    assert figures["maximum"].startswith("2024-03-06") or figures["maximum"].startswith(
        "2024-03-07"
    )
    assert figures["standard deviation"].endswith("days")


def test_the_overview_is_one_query_for_every_column(world, course, django_assert_num_queries):
    with account_scope(world.account):
        columns = list(Column.objects.filter(workflow=course).order_by("position"))
        with django_assert_num_queries(2):  # the introspection + the aggregate
            cards = overview(course, columns)
    by_name = {c["column"].name: c for c in cards}
    assert (by_name["score"]["count"], by_name["score"]["nulls"]) == (5, 1)
    assert dict(by_name["score"]["figures"])["mean"] == "61.45"
    assert dict(by_name["attempts"]["figures"])["max"] == "4"


def test_the_column_page_shows_the_figures_and_chart_data(world, course):
    html = (
        login(world.bob)
        .get(reverse("feedback:stats_column", args=[course.pk, col(world, course, "score").pk]))
        .content.decode()
    )
    assert 'data-stat="count">5<' in html and 'data-stat="nulls">1<' in html
    assert "61.45" in html  # the mean
    data = json.loads(re.search(r'id="chart-box" type="application/json">(.*?)</script>', html)[1])
    assert data["box"] == [30.5, 48.0, 62.0, 75.25, 91.5]
    assert "echarts.min.js" in html and "<script>" not in html


def test_the_row_page_compares_one_learner_with_the_rest(world, course):
    html = (
        login(world.sam)
        .get(
            reverse("feedback:stats_row", args=[course.pk]),
            {"key": "email", "value": "chloe@example.org"},
        )
        .content.decode()
    )
    # Chloé's score 75.25: 3 of the 5 scores are lower -> percentile 70 (3 + ½ tie) / 5
    score = re.search(r'data-column="score">(.*?)</div>\s*</div>\s*</div>', html, re.S)[1]
    assert "75.25" in score and "percentile 70" in score
    assert re.search(r'data-column="passed">.*?50 % of rows \(3 rows\)', html, re.S)


def test_stats_pages_follow_the_access_rules(world, course, make_workflow):
    private = make_workflow(name="Private")
    score = col(world, private, "score")
    urls = [
        reverse("feedback:stats", args=[private.pk]),
        reverse("feedback:stats_column", args=[private.pk, score.pk]),
        reverse("feedback:stats_row", args=[private.pk]) + "?key=email&value=ana@example.org",
    ]
    for url in urls:
        assert login(world.alice).get(url).status_code == 200
        assert login(world.bob).get(url).status_code == 404
        assert login(world.charlie).get(url).status_code == 404
    overview_html = (
        login(world.bob).get(reverse("feedback:stats", args=[course.pk])).content.decode()
    )
    assert overview_html.count('data-testid="stats-card"') == 6
    other = reverse(
        "feedback:stats_column", args=[course.pk, score.pk]
    )  # column of another workflow
    assert login(world.alice).get(other).status_code == 404


# --- logs ------------------------------------------------------------------------------


def test_the_log_page_filters_pages_and_shows_details(world, course):
    with account_scope(world.account):
        for n in range(55):
            log_event(course, world.sam, "action_email_sent", {"to": f"l{n}@example.org"})
    client = login(world.bob)
    url = reverse("feedback:log_list", args=[course.pk])
    html = client.get(url).content.decode()
    assert html.count('data-testid="log-row"') == 50 and "Page 1 of 2" in html
    html = client.get(url, {"event": "workflow_share"}).content.decode()
    assert html.count('data-testid="log-row"') == 2 and "bob@example.org" in html
    html = client.get(url, {"user": world.sam.pk, "event": "action_email_sent"}).content.decode()
    assert "55 events" in html and "<details>" in html
    tomorrow = (dt.date.today() + dt.timedelta(days=2)).isoformat()
    html = client.get(url, {"date_from": tomorrow}).content.decode()
    assert "No events match" in html


def test_the_log_exports_as_csv_with_the_filters(world, course):
    response = login(world.sam).get(
        reverse("feedback:log_export", args=[course.pk]), {"event": "workflow_share"}
    )
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {r["event"] for r in rows} == {"workflow_share"} and len(rows) == 2
    assert json.loads(rows[0]["payload"])["role"] in ("editor", "viewer")
    assert rows[0]["user"] == "alice@example.org"


def test_logs_follow_the_access_rules(world, course, make_workflow, django_assert_max_num_queries):
    private = make_workflow(name="Private")
    for name in ("log_list", "log_export"):
        assert (
            login(world.bob).get(reverse(f"feedback:{name}", args=[private.pk])).status_code == 404
        )
        assert (
            login(world.charlie).get(reverse(f"feedback:{name}", args=[course.pk])).status_code
            == 404
        )
    client = login(world.alice)
    with django_assert_max_num_queries(14):
        assert client.get(reverse("feedback:log_list", args=[course.pk])).status_code == 200
    with account_scope(world.account):
        assert WorkflowLog.objects.filter(workflow=private).exists()
