"""Poll dashboards: home, poll list, poll detail (filters, summaries, map), start a poll.

Figures are the hand-computed ones of ``polls_world`` (see conftest): children averages
4.0 on both days for Alice (rates 75 % and 100 %), 3.0 for Sam (North only, 100 %).
"""

from __future__ import annotations

import datetime as dt
import io
import re
from typing import Any

import pytest
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from closedloop.core.tenancy import account_scope
from closedloop.jobs.models import Job
from closedloop.polls import testing as t
from closedloop.polls.models import PollRun, PollRunType

pytestmark = pytest.mark.django_db

NOVEMBER = "window=custom&start=2026-11-01&end=2026-11-30"
SOUTH_WORDS = ("Cara", "Dan", "South panel", "dirty")


def _html(response: Any) -> str:
    return response.content.decode()


def _summary(client: Any, html: str, question_pk: int) -> dict[str, Any]:
    """The summary a card shows: the page's chart URL (with its filters) fetched the way
    charts.js does, with the same session."""
    card = html.split(f'data-question="{question_pk}"', 1)[1].split("</section>", 1)[0]
    assert 'data-stat="response_rate"' in card
    src = re.search(r'data-src="([^"]+)"', card).group(1).replace("&amp;", "&")
    response = client.get(src, HTTP_ACCEPT="application/json")
    assert response.status_code == 200, response.content
    return response.json()["summary"]


def dashboard_urls(pw: Any) -> list[str]:
    return [
        reverse("polls:home"),
        reverse("polls:poll_list"),
        reverse("polls:poll_detail", args=[pw.poll.pk]),
        reverse("polls:poll_detail", args=[pw.poll.pk]) + f"?{NOVEMBER}",
        reverse("polls:poll_detail", args=[pw.poll.pk]) + f"?tab=map&{NOVEMBER}",
        reverse("polls:poll_detail", args=[pw.poll.pk]) + f"?tab=map&q={pw.q_color.pk}&{NOVEMBER}",
        reverse("polls:poll_export", args=[pw.poll.pk]) + f"?{NOVEMBER}",
    ]


# --- access ----------------------------------------------------------------------------


def test_every_page_renders_for_alice(polls_world, client_for):
    client = client_for(polls_world.w.alice)
    for url in [*dashboard_urls(polls_world), reverse("polls:poll_start")]:
        response = client.get(url)
        assert response.status_code == 200, url


def test_charlie_gets_404_on_every_account_a_url(polls_world, client_for):
    pw = polls_world
    client = client_for(pw.w.charlie)
    with account_scope(pw.w.account):
        job = Job.objects.create(account=pw.w.account, kind="polls.start_poll", title="x")
    urls = [
        reverse("polls:poll_detail", args=[pw.poll.pk]),
        reverse("polls:poll_export", args=[pw.poll.pk]),
        reverse("polls:job", args=[job.pk]),
        reverse("polls:poll_start") + f"?poll={pw.poll.pk}",
    ]
    for url in urls:
        assert client.get(url).status_code == 404, url
    response = client.post(reverse("polls:poll_start"), {"poll": pw.poll.pk, "panel": pw.north.pk})
    assert response.status_code == 400  # account A's poll and panel are not choices for him
    with account_scope(pw.w.account):
        assert PollRun.objects.count() == 2
    # his own pages show only his account
    html = _html(client.get(reverse("polls:poll_list")))
    assert "Other poll" in html and "Health check" not in html


def test_bob_reads_dashboards_but_cannot_start(polls_world, client_for):
    pw = polls_world
    client = client_for(pw.w.bob)
    for url in dashboard_urls(pw):
        assert client.get(url).status_code == 200, url
    html = _html(client.get(reverse("polls:poll_detail", args=[pw.poll.pk])))
    assert 'data-testid="start-poll"' not in html
    assert client.get(reverse("polls:poll_start")).status_code == 403
    response = client.post(reverse("polls:poll_start"), {"poll": pw.poll.pk, "panel": pw.north.pk})
    assert response.status_code == 403
    with account_scope(pw.w.account):
        assert PollRun.objects.count() == 2
        assert not Job.objects.exists()


def test_anonymous_is_sent_to_login(polls_world, client):
    response = client.get(reverse("polls:home"))
    assert response.status_code == 302 and "login" in response["Location"]


# --- home ------------------------------------------------------------------------------


def test_home_lists_recent_pollruns_with_counts(polls_world, client_for):
    pw = polls_world
    html = _html(client_for(pw.w.alice).get(reverse("polls:home")))
    rows = re.findall(r'data-testid="recent-row">(.*?)</tr>', html, re.S)
    assert len(rows) == 2
    cells = [re.findall(r'<td class="text-end">(\d+)</td>', row) for row in rows]
    # newest first: day 2 (ana C, cara P), day 1 (ana C, ben P, cara C, dan E)
    assert cells == [["2", "1", "1"], ["4", "2", "1"]]
    assert reverse("polls:pollrun_detail", args=[pw.run2.pk]) in rows[0]


def test_home_for_sam_counts_only_north(polls_world, client_for):
    pw = polls_world
    html = _html(client_for(pw.w.sam).get(reverse("polls:home")))
    rows = re.findall(r'data-testid="recent-row">(.*?)</tr>', html, re.S)
    cells = [re.findall(r'<td class="text-end">(\d+)</td>', row) for row in rows]
    assert cells == [["1", "1", "0"], ["2", "1", "1"]]
    for word in SOUTH_WORDS:
        assert word not in html


def test_home_empty_states(world, client_for):
    admin = _html(client_for(world.alice).get(reverse("polls:home")))
    assert 'data-testid="polls-empty"' in admin
    assert "Connect" in admin
    viewer = _html(client_for(world.bob).get(reverse("polls:home")))
    assert "Nothing here yet" in viewer
    assert 'data-testid="connect-rapidpro"' not in viewer


def test_home_queries_do_not_grow_with_pollruns(
    polls_world, client_for, django_assert_max_num_queries
):
    pw = polls_world
    client = client_for(pw.w.alice)
    url = reverse("polls:home")
    client.get(url)
    with CaptureQueriesContext(db_connection) as before:
        client.get(url)
    with account_scope(pw.w.account):
        for day in range(10, 20):
            run = t.make_pollrun(pw.poll, pw.run1.local_date.replace(day=day))
            t.make_response(run, pw.ana, {pw.q_children: day})
    with django_assert_max_num_queries(len(before) + 2):
        assert client.get(url).status_code == 200


# --- poll list -------------------------------------------------------------------------


def test_poll_list_figures(polls_world, client_for):
    pw = polls_world
    html = _html(client_for(pw.w.alice).get(reverse("polls:poll_list")))
    row = re.search(r'data-testid="poll-row">(.*?)</tr>', html, re.S).group(1)
    assert "Health check" in row
    assert re.findall(r'<td class="text-end">(\d+)</td>', row) == ["3", "2"]  # questions, dates
    assert f"?poll={pw.poll.pk}" in row  # last date links to its runs
    assert "Other poll" not in html


def test_poll_list_hides_hidden_questions_and_sam_dates(polls_world, client_for):
    pw = polls_world
    with account_scope(pw.w.account):
        pw.q_comment.is_hidden = True
        pw.q_comment.save()
        t.make_pollrun(pw.poll, pw.run2.local_date.replace(day=20), PollRunType.REGIONAL, pw.south)
    alice = _html(client_for(pw.w.alice).get(reverse("polls:poll_list")))
    row = re.search(r'data-testid="poll-row">(.*?)</tr>', alice, re.S).group(1)
    assert re.findall(r'<td class="text-end">(\d+)</td>', row) == ["2", "3"]
    sam = _html(client_for(pw.w.sam).get(reverse("polls:poll_list")))
    row = re.search(r'data-testid="poll-row">(.*?)</tr>', sam, re.S).group(1)
    assert re.findall(r'<td class="text-end">(\d+)</td>', row) == ["2", "2"]  # not South's run


def test_poll_list_query_count_is_flat(polls_world, client_for, django_assert_max_num_queries):
    pw = polls_world
    client = client_for(pw.w.alice)
    with account_scope(pw.w.account):
        for i in range(8):
            poll = t.make_poll(pw.connection, f"Poll {i}")
            t.make_question(poll, "q", order=0)
            t.make_pollrun(poll, pw.run1.local_date)
    client.get(reverse("polls:poll_list"))
    with django_assert_max_num_queries(12):
        response = client.get(reverse("polls:poll_list"))
    assert _html(response).count('data-testid="poll-row"') == 9


# --- poll detail -----------------------------------------------------------------------


def test_poll_detail_cards_and_summaries_for_alice(polls_world, client_for):
    pw = polls_world
    url = reverse("polls:poll_detail", args=[pw.poll.pk]) + f"?{NOVEMBER}"
    html = _html(client_for(pw.w.alice).get(url))
    assert html.count('data-testid="question-card"') == 3
    assert 'data-poll-chart="numeric"' in html
    assert 'data-poll-chart="categorical"' in html
    assert 'data-poll-chart="open"' in html
    q = pw.q_children.pk
    summary = _summary(client_for(pw.w.alice), html, q)
    assert (summary["mean"], summary["stdev"], summary["response_rate"]) == (4.0, 0.0, 87.5)
    assert (summary["answers"], summary["responses"], summary["dates"]) == (5, 6, 2)
    # the charts fetch the API with the same filters
    assert f'data-src="/api/v1/polls/questions/{q}/chart?window=custom&amp;start=2026-11-01' in html
    # clicking a point opens the poll run
    assert 'data-pollrun-url="/polls/pollruns/0/"' in html


def test_poll_detail_for_sam_shows_only_north(polls_world, client_for):
    pw = polls_world
    url = reverse("polls:poll_detail", args=[pw.poll.pk]) + f"?{NOVEMBER}"
    html = _html(client_for(pw.w.sam).get(url))
    summary = _summary(client_for(pw.w.sam), html, pw.q_children.pk)
    assert (summary["mean"], summary["response_rate"], summary["answers"]) == (3.0, 100.0, 3)
    for word in SOUTH_WORDS:
        assert word not in html
    assert "North panel" in html and "Northvale panel" in html  # his panel filter


def test_poll_detail_filters_panel_without_sub_panels(polls_world, client_for):
    pw = polls_world
    base = reverse("polls:poll_detail", args=[pw.poll.pk]) + f"?{NOVEMBER}&panel={pw.north.pk}"
    client = client_for(pw.w.alice)
    with_sub = _html(client.get(base + "&sub=1"))
    assert _summary(client, with_sub, pw.q_children.pk)["answers"] == 3  # ana ×2, ben
    without = _html(client.get(base + "&sub=0"))
    summary = _summary(client, without, pw.q_children.pk)
    assert (summary["answers"], summary["mean"]) == (2, 2.5)  # ana ×2
    # the filters are kept in the query string of the chart sources and the export
    assert f"panel={pw.north.pk}&amp;sub=0" in without
    assert 'id="f-sub" name="sub" value="1">' in without  # checkbox unchecked


def test_poll_detail_cohort_and_field_filters(polls_world, client_for):
    pw = polls_world
    with account_scope(pw.w.account):
        from closedloop.polls.models import Contact, DataField

        DataField.objects.create(
            account=pw.w.account,
            connection=pw.connection,
            key="school",
            label="School",
            is_visible=True,
        )
        Contact.objects.filter(pk=pw.ana.pk).update(fields={"school": "Hilltop Primary"})
    client = client_for(pw.w.alice)
    url = reverse("polls:poll_detail", args=[pw.poll.pk]) + f"?{NOVEMBER}"
    html = _html(client.get(url))
    assert 'name="field.school"' in html and ">School</label>" in html
    cohort = _html(client.get(url + f"&cohort={pw.parents.pk}"))
    assert _summary(client, cohort, pw.q_children.pk)["answers"] == 2  # cara ×2
    field = _html(client.get(url + "&field.school=hilltop"))
    assert _summary(client, field, pw.q_children.pk)["answers"] == 2  # ana ×2
    assert 'value="hilltop"' in field


def test_poll_detail_bad_filters(polls_world, client_for):
    pw = polls_world
    url = reverse("polls:poll_detail", args=[pw.poll.pk])
    alice = client_for(pw.w.alice)
    response = alice.get(url + "?window=custom&start=2026-11-30&end=2026-11-01")
    assert response.status_code == 200
    assert 'data-testid="filter-error"' in _html(response)
    assert "end date is before the start date" in _html(response)
    assert alice.get(url + "?cohort=999999").status_code == 404
    assert alice.get(url + "?panel=abc").status_code == 404
    sam = client_for(pw.w.sam)
    assert sam.get(url + f"?panel={pw.south.pk}").status_code == 404
    assert sam.get(url + f"?tab=map&panel={pw.south.pk}").status_code == 404


def test_poll_detail_map_tab(polls_world, client_for):
    pw = polls_world
    url = reverse("polls:poll_detail", args=[pw.poll.pk]) + f"?tab=map&{NOVEMBER}"
    html = _html(client_for(pw.w.alice).get(url))
    assert 'id="map-data"' in html and 'data-testid="map-table"' in html
    table = html.split('data-testid="map-table"', 1)[1].split("</table>", 1)[0]
    # North: ana 2, 3 → 2.5 ; Northvale: ben 4 ; South: cara 6, 5 → 5.5
    assert re.search(r"<td>North</td><td>North panel</td><td class=\"text-end\">2.5</td>", table)
    assert re.search(r"<td>South</td><td>South panel</td><td class=\"text-end\">5.5</td>", table)
    sam = _html(client_for(pw.w.sam).get(url))
    assert "South" not in sam.split('data-testid="map-table"', 1)[1]
    categorical = _html(client_for(pw.w.alice).get(url + f"&q={pw.q_color.pk}"))
    assert "Coloured by the most common category" in categorical


def test_poll_detail_404s(polls_world, client_for):
    pw = polls_world
    client = client_for(pw.w.alice)
    assert client.get(reverse("polls:poll_detail", args=[pw.other_poll.pk])).status_code == 404
    with account_scope(pw.w.account):
        pw.poll.is_active = False
        pw.poll.save()
    assert client.get(reverse("polls:poll_detail", args=[pw.poll.pk])).status_code == 404


def test_poll_export_xlsx(polls_world, client_for):
    from openpyxl import load_workbook

    pw = polls_world
    url = reverse("polls:poll_export", args=[pw.poll.pk]) + f"?{NOVEMBER}"
    response = client_for(pw.w.alice).get(url)
    assert response["Content-Disposition"].endswith('health-check-figures.xlsx"')
    book = load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    assert book.sheetnames == ["Children", "Color", "Comment"]
    children = [list(r) for r in book["Children"].iter_rows(values_only=True)]
    assert children[0] == ["date", "sum", "average", "response rate (%)"]
    assert [r[1:] for r in children[1:]] == [[12, 4, 75], [8, 4, 100]]
    assert [r[0].date().isoformat() for r in children[1:]] == ["2026-11-02", "2026-11-09"]
    color = [list(r) for r in book["Color"].iter_rows(values_only=True)]
    assert color[0] == ["date", "Red", "Blue", "Red (%)", "Blue (%)"]
    assert [r[1:] for r in color[1:]] == [[1, 1, 50, 50], [0, 1, 0, 100]]
    sam = client_for(pw.w.sam).get(url)
    book = load_workbook(io.BytesIO(b"".join(sam.streaming_content)))
    rows = [list(r) for r in book["Children"].iter_rows(values_only=True)]
    assert [r[1:] for r in rows[1:]] == [[6, 3, 100], [3, 3, 100]]


# --- start a poll ----------------------------------------------------------------------


def _start(client: Any, pw: Any, **data: Any) -> Any:
    payload = {"poll": pw.poll.pk, "panel": pw.north.pk, **data}
    return client.post(reverse("polls:poll_start"), payload)


def test_start_poll_creates_the_pollrun_and_job(polls_world, client_for):
    pw = polls_world
    client = client_for(pw.w.alice)
    form = _html(client.get(reverse("polls:poll_start") + f"?poll={pw.poll.pk}"))
    assert f'<option value="{pw.poll.pk}" selected>' in form
    response = _start(client, pw, propagate="on")
    with account_scope(pw.w.account):
        job = Job.objects.get()
        run = PollRun.objects.exclude(type=PollRunType.UNIVERSAL).get()
    assert response.status_code == 302
    assert response["Location"] == reverse("polls:job", args=[job.pk])
    assert job.kind == "polls.start_poll" and job.params == {"pollrun_id": run.pk}
    assert job.created_by == pw.w.alice
    assert run.type == PollRunType.PROPAGATED and run.panel == pw.north
    page = _html(client.get(reverse("polls:job", args=[job.pk])))
    assert 'data-testid="job-live"' in page and 'hx-trigger="every 1s"' in page
    assert reverse("polls:pollrun_detail", args=[run.pk]) in page
    live = client.get(reverse("polls:job", args=[job.pk]), HTTP_HX_REQUEST="true")
    assert _html(live).lstrip().startswith('<div id="job-live"')


def test_start_poll_without_propagate_is_regional(polls_world, client_for):
    pw = polls_world
    _start(client_for(pw.w.sam), pw, panel=pw.northvale.pk)
    with account_scope(pw.w.account):
        run = PollRun.objects.exclude(type=PollRunType.UNIVERSAL).get()
    assert run.type == PollRunType.REGIONAL and run.panel == pw.northvale
    assert run.created_by == pw.w.sam


def test_start_poll_bad_input_changes_nothing(polls_world, client_for):
    pw = polls_world
    sam = client_for(pw.w.sam)
    page = _html(sam.get(reverse("polls:poll_start")))
    assert "South panel" not in page
    response = _start(sam, pw, panel=pw.south.pk)  # outside his scope
    assert response.status_code == 400
    assert 'data-testid="error-panel"' in _html(response)
    alice = client_for(pw.w.alice)
    for data, field in (
        ({"panel": ""}, "panel"),
        ({"panel": "nope"}, "panel"),
        ({"poll": pw.other_poll.pk}, "poll"),
        ({"poll": ""}, "poll"),
    ):
        response = _start(alice, pw, **data)
        assert response.status_code == 400, data
        assert f'data-testid="error-{field}"' in _html(response), data
    with account_scope(pw.w.account):
        assert PollRun.objects.count() == 2
        assert not Job.objects.exists()


def test_start_poll_runs_against_rapidpro(polls_world, client_for, fake_rapidpro):
    from closedloop.polls.tests.outbound_helpers import run, wire

    pw = polls_world
    wire(pw, fake_rapidpro)
    _start(client_for(pw.w.alice), pw, propagate="on")
    with account_scope(pw.w.account):
        job = run(Job.objects.get())
        pollrun = PollRun.objects.exclude(type=PollRunType.UNIVERSAL).get()
        starts = list(pollrun.starts.all())
    assert job.status == "succeeded", job.error
    assert len(starts) == 1 and starts[0].contact_count == 2
    started = fake_rapidpro.state.flow_starts[-1]
    assert {c["uuid"] for c in started["contacts"]} == {pw.ana.uuid, pw.ben.uuid}


def test_home_features_the_newest_indicator_with_data(polls_world, client_for):
    from closedloop.polls.models import Indicator

    pw = polls_world
    with account_scope(pw.w.account):
        kwargs = {
            "account": pw.w.account,
            "baseline_question": pw.q_children,
            "follow_up_question": pw.q_children,
        }
        Indicator.objects.create(
            name="Empty indicator",
            start_date=dt.date(2027, 1, 1),
            end_date=dt.date(2027, 2, 1),
            **kwargs,
        )
        featured = Indicator.objects.create(
            name="Children indicator",
            start_date=dt.date(2026, 11, 1),
            end_date=dt.date(2026, 11, 30),
            goal=20,
            **kwargs,
        )
    html = _html(client_for(pw.w.alice).get(reverse("polls:home")))
    assert "Children indicator" in html and 'id="indicator-chart"' in html
    assert '"values": [12.0, 8.0]' in html  # follow-up sums per date
    with account_scope(pw.w.account):
        from closedloop.polls.selectors import polls_settings

        row = polls_settings(pw.w.account)
        row.featured_indicator = Indicator.objects.get(name="Empty indicator")
        row.save()
    html = _html(client_for(pw.w.alice).get(reverse("polls:home")))
    assert "Empty indicator" in html and featured.name not in html
    with account_scope(pw.w.account):
        row.featured_indicator = None
        row.save()
    sam = _html(client_for(pw.w.sam).get(reverse("polls:home")))
    assert featured.name in sam and '"values": [6.0, 3.0]' in sam  # North only
