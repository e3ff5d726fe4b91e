"""Poll run pages: list + "fetch older runs", detail tabs, exports, message, restart."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from typing import Any

import pytest
from django.urls import reverse

from closedloop.core.tenancy import account_scope
from closedloop.jobs.models import Job
from closedloop.polls import testing as t
from closedloop.polls.models import Broadcast, PollRun, PollRunType, ResponseStatus

pytestmark = pytest.mark.django_db

SOUTH_WORDS = ("Cara", "Dan", "South panel", "dirty")


def _html(response: Any) -> str:
    return response.content.decode()


def _rows(html: str, testid: str) -> list[str]:
    return re.findall(rf'data-testid="{testid}"[^>]*>(.*?)</tr>', html, re.S)


def _numbers(row: str) -> list[str]:
    return re.findall(r'<td class="text-end">(\d+)</td>', row)


def detail_urls(pw: Any, run: Any) -> list[str]:
    base = reverse("polls:pollrun_detail", args=[run.pk])
    return [
        base,
        base + "?tab=summary",
        base + "?tab=participation",
        base + "?tab=participation&by=cohort",
        base + "?tab=responses",
        base + "?tab=responses&superseded=1&page=1",
        reverse("polls:pollrun_export", args=[run.pk, "csv"]),
        reverse("polls:pollrun_export", args=[run.pk, "xlsx"]),
    ]


@pytest.fixture
def south_run(polls_world):
    """A regional poll run started for the South panel (cara answered)."""
    pw = polls_world
    with account_scope(pw.w.account):
        run = t.make_pollrun(pw.poll, dt.date(2026, 11, 12), PollRunType.REGIONAL, pw.south)
        t.make_response(run, pw.cara, {pw.q_children: 7}, status=ResponseStatus.PARTIAL)
    return run


@pytest.fixture
def north_runs(polls_world):
    """Two regional poll runs of the North panel: an older and the newest."""
    pw = polls_world
    with account_scope(pw.w.account):
        old = t.make_pollrun(pw.poll, dt.date(2026, 11, 10), PollRunType.REGIONAL, pw.north)
        new = t.make_pollrun(pw.poll, dt.date(2026, 11, 11), PollRunType.PROPAGATED, pw.north)
        t.make_response(new, pw.ana, {pw.q_children: 1}, status=ResponseStatus.PARTIAL)
    return old, new


# --- access ----------------------------------------------------------------------------


def test_every_pollrun_page_renders_for_alice(polls_world, client_for, south_run):
    pw = polls_world
    client = client_for(pw.w.alice)
    urls = [
        reverse("polls:pollrun_list"),
        reverse("polls:pollrun_list") + f"?poll={pw.poll.pk}&page=2",
        reverse("polls:pollrun_message", args=[pw.run1.pk]),
        *detail_urls(pw, pw.run1),
        *detail_urls(pw, south_run),
    ]
    for url in urls:
        assert client.get(url).status_code == 200, url


def test_charlie_gets_404_on_every_pollrun_url(polls_world, client_for, north_runs):
    pw = polls_world
    client = client_for(pw.w.charlie)
    for run in (pw.run1, north_runs[1]):
        for url in [*detail_urls(pw, run), reverse("polls:pollrun_message", args=[run.pk])]:
            assert client.get(url).status_code == 404, url
        response = client.post(
            reverse("polls:pollrun_message", args=[run.pk]), {"audience": "all", "text": "Hi"}
        )
        assert response.status_code == 404
        assert client.post(reverse("polls:pollrun_restart", args=[run.pk])).status_code == 404
    assert client.get(reverse("polls:pollrun_list") + f"?poll={pw.poll.pk}").status_code == 404
    with account_scope(pw.w.account):
        assert not Broadcast.objects.exists() and not Job.objects.exists()


def test_bob_reads_but_cannot_message_restart_or_fetch(polls_world, client_for, north_runs):
    pw = polls_world
    client = client_for(pw.w.bob)
    for url in detail_urls(pw, north_runs[1]):
        assert client.get(url).status_code == 200, url
    html = _html(client.get(reverse("polls:pollrun_detail", args=[north_runs[1].pk])))
    assert 'data-testid="send-message"' not in html and 'data-testid="restart"' not in html
    assert 'data-testid="fetch-runs"' not in _html(client.get(reverse("polls:pollrun_list")))
    message = reverse("polls:pollrun_message", args=[pw.run1.pk])
    assert client.get(message).status_code == 403
    assert client.post(message, {"audience": "all", "text": "Hi"}).status_code == 403
    restart = reverse("polls:pollrun_restart", args=[north_runs[1].pk])
    assert client.post(restart).status_code == 403
    fetch = client.post(reverse("polls:pollrun_list"), {"connection": pw.connection.pk, "days": 5})
    assert fetch.status_code == 403
    with account_scope(pw.w.account):
        assert not Broadcast.objects.exists() and not Job.objects.exists()


def test_sam_gets_404_for_south_regional_pollrun(polls_world, client_for, south_run):
    pw = polls_world
    client = client_for(pw.w.sam)
    for url in detail_urls(pw, south_run):
        assert client.get(url).status_code == 404, url
    assert client.get(reverse("polls:pollrun_message", args=[south_run.pk])).status_code == 404
    assert client.post(reverse("polls:pollrun_restart", args=[south_run.pk])).status_code == 404
    html = _html(client.get(reverse("polls:pollrun_list")))
    assert reverse("polls:pollrun_detail", args=[south_run.pk]) not in html
    for word in SOUTH_WORDS:
        assert word not in html


# --- list ------------------------------------------------------------------------------


def test_pollrun_list_counts(polls_world, client_for):
    pw = polls_world
    rows = _rows(_html(client_for(pw.w.alice).get(reverse("polls:pollrun_list"))), "pollrun-row")
    # participants, complete, partial; newest first
    assert [_numbers(r) for r in rows] == [["2", "1", "1"], ["4", "2", "1"]]
    sam = _rows(_html(client_for(pw.w.sam).get(reverse("polls:pollrun_list"))), "pollrun-row")
    assert [_numbers(r) for r in sam] == [["1", "1", "0"], ["2", "1", "1"]]


def test_pollrun_list_filters_by_poll_and_paginates(polls_world, client_for):
    pw = polls_world
    with account_scope(pw.w.account):
        other = t.make_poll(pw.connection, "Second poll")
        for day in range(1, 31):
            t.make_pollrun(other, dt.date(2026, 10, day))
    client = client_for(pw.w.alice)
    html = _html(client.get(reverse("polls:pollrun_list") + f"?poll={pw.poll.pk}"))
    assert len(_rows(html, "pollrun-row")) == 2
    page1 = _html(client.get(reverse("polls:pollrun_list")))
    assert len(_rows(page1, "pollrun-row")) == 32
    assert "Page 1 of 1" not in page1


def test_pollrun_list_query_count_is_flat(polls_world, client_for, django_assert_max_num_queries):
    pw = polls_world
    with account_scope(pw.w.account):
        for day in range(12, 30):
            run = t.make_pollrun(pw.poll, dt.date(2026, 11, day), PollRunType.REGIONAL, pw.north)
            t.make_response(run, pw.ana, {pw.q_children: 1})
    client = client_for(pw.w.sam)
    client.get(reverse("polls:pollrun_list"))
    with django_assert_max_num_queries(12):
        response = client.get(reverse("polls:pollrun_list"))
    assert len(_rows(_html(response), "pollrun-row")) == 20


def test_fetch_older_runs_enqueues_the_job(polls_world, client_for, monkeypatch):
    from closedloop.jobs import runtime

    monkeypatch.setitem(
        runtime.HANDLERS,
        "polls.fetch_runs",
        runtime.HANDLERS.get("polls.fetch_runs", lambda ctx: None),
    )
    pw = polls_world
    client = client_for(pw.w.alice)
    assert 'data-testid="fetch-runs"' in _html(client.get(reverse("polls:pollrun_list")))
    response = client.post(
        reverse("polls:pollrun_list"), {"connection": pw.connection.pk, "days": 45}
    )
    with account_scope(pw.w.account):
        job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "polls:job", args=[job.pk]
    )
    assert job.kind == "polls.fetch_runs"
    assert job.params == {"connection_id": pw.connection.pk, "days": 45}
    assert job.created_by == pw.w.alice


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"days": 0}, "days"),
        ({"days": 99999}, "days"),
        ({"days": "ten"}, "days"),
        ({"days": ""}, "days"),
        ({"connection": "999999"}, "connection"),
    ],
)
def test_fetch_older_runs_bad_input(polls_world, client_for, data, field):
    pw = polls_world
    payload = {"connection": pw.connection.pk, "days": 5, **data}
    response = client_for(pw.w.alice).post(reverse("polls:pollrun_list"), payload)
    assert response.status_code == 400
    assert f'data-testid="error-{field}"' in _html(response)
    with account_scope(pw.w.account):
        assert not Job.objects.exists()


def test_sam_cannot_fetch_runs(polls_world, client_for):
    pw = polls_world
    client = client_for(pw.w.sam)
    assert 'data-testid="fetch-runs"' not in _html(client.get(reverse("polls:pollrun_list")))
    response = client.post(
        reverse("polls:pollrun_list"), {"connection": pw.connection.pk, "days": 5}
    )
    assert response.status_code == 403


# --- detail tabs -----------------------------------------------------------------------


def test_summary_tab(polls_world, client_for):
    pw = polls_world
    url = reverse("polls:pollrun_detail", args=[pw.run1.pk])
    html = _html(client_for(pw.w.alice).get(url))
    assert html.count('data-testid="summary-card"') == 3
    assert "4 participants: 2 complete, 1 partial" in html
    assert f'id="summary-{pw.q_children.pk}"' in html  # histogram data for charts.js
    sam = _html(client_for(pw.w.sam).get(url))
    assert "2 participants: 1 complete, 1 partial" in sam
    for word in SOUTH_WORDS:
        assert word not in sam


def test_participation_tab(polls_world, client_for):
    pw = polls_world
    base = reverse("polls:pollrun_detail", args=[pw.run1.pk]) + "?tab=participation"
    html = _html(client_for(pw.w.alice).get(base))
    rows = _rows(html, "participation-row")
    # by panel org unit: North (ana C), Northvale (ben P), South (cara C, dan E)
    assert [r.split("</td>")[0].split(">")[-1] for r in rows] == [
        "North panel",
        "Northvale panel",
        "South panel",
    ]
    assert [_numbers(r) for r in rows] == [
        ["0", "0", "1", "1"],
        ["0", "1", "0", "1"],
        ["1", "0", "1", "2"],
    ]
    cohorts = _rows(_html(client_for(pw.w.alice).get(base + "&by=cohort")), "participation-row")
    assert [_numbers(r) for r in cohorts] == [["0", "0", "1", "1"], ["0", "1", "1", "2"]]
    sam = _html(client_for(pw.w.sam).get(base))
    assert len(_rows(sam, "participation-row")) == 2 and "South" not in sam


def test_responses_tab_and_superseded(polls_world, client_for):
    pw = polls_world
    with account_scope(pw.w.account):
        t.make_response(
            pw.run1,
            pw.ana,
            {pw.q_children: 1},
            status=ResponseStatus.PARTIAL,
            active=False,
            at=pw.run1.conducted_on + dt.timedelta(minutes=1),
        )
    base = reverse("polls:pollrun_detail", args=[pw.run1.pk]) + "?tab=responses"
    client = client_for(pw.w.alice)
    rows = _rows(_html(client.get(base)), "response-row")
    assert len(rows) == 4
    assert "clean water is good" in rows[0]
    rows = _rows(_html(client.get(base + "&superseded=1")), "response-row")
    assert len(rows) == 5 and sum("superseded" in r for r in rows) == 1
    sam = _html(client_for(pw.w.sam).get(base))
    assert len(_rows(sam, "response-row")) == 2
    for word in SOUTH_WORDS:
        assert word not in sam


# --- exports ---------------------------------------------------------------------------


HEADER = [
    "run uuid",
    "contact",
    "contact uuid",
    "panel",
    "status",
    "active",
    "started",
    "updated",
    "Children",
    "Children (category)",
    "Color",
    "Color (category)",
    "Comment",
]


def _expected(pw: Any, superseded: Any) -> list[list[str]]:
    with account_scope(pw.w.account):
        uuids = {r.contact_id: r.run_uuid for r in pw.run1.responses.filter(is_active=True)}
    kigali = ("2026-11-02 11:05:00", "2026-11-02 11:05:00")  # 09:05 UTC in UTC+2
    return [
        [
            superseded.run_uuid,
            "Ana",
            pw.ana.uuid,
            "North panel",
            "partial",
            "false",
            "2026-11-02 10:56:00",
            "2026-11-02 10:56:00",
            "1",
            "Other",
            "",
            "",
            "",
        ],
        [
            uuids[pw.ana.pk],
            "Ana",
            pw.ana.uuid,
            "North panel",
            "complete",
            "true",
            *kigali,
            "2",
            "Few",
            "Red",
            "Red",
            "clean water is good",
        ],
        [
            uuids[pw.ben.pk],
            "Ben",
            pw.ben.uuid,
            "Northvale panel",
            "partial",
            "true",
            *kigali,
            "4",
            "Many",
            "",
            "",
            "",
        ],
        [
            uuids[pw.cara.pk],
            "Cara",
            pw.cara.uuid,
            "South panel",
            "complete",
            "true",
            *kigali,
            "6",
            "Many",
            "Blue",
            "Blue",
            "the water is dirty",
        ],
        [
            uuids[pw.dan.pk],
            "Dan",
            pw.dan.uuid,
            "South panel",
            "empty",
            "true",
            *kigali,
            "",
            "",
            "",
            "",
            "",
        ],
    ]


@pytest.fixture
def kigali_world(polls_world):
    pw = polls_world
    from closedloop.accounts.models import Account

    Account.objects.filter(pk=pw.w.account.pk).update(time_zone="Africa/Kigali")
    with account_scope(pw.w.account):
        superseded = t.make_response(
            pw.run1,
            pw.ana,
            {pw.q_children: 1},
            status=ResponseStatus.PARTIAL,
            active=False,
            at=pw.run1.conducted_on - dt.timedelta(minutes=4),
        )
    return pw, superseded


def test_csv_export_exact_content(kigali_world, client_for):
    pw, superseded = kigali_world
    response = client_for(pw.w.alice).get(reverse("polls:pollrun_export", args=[pw.run1.pk, "csv"]))
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert (
        response["Content-Disposition"]
        == 'attachment; filename="health-check-2026-11-02-responses.csv"'
    )
    text = b"".join(response.streaming_content).decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows[0] == HEADER
    assert rows[1:] == _expected(pw, superseded)


def test_csv_export_for_sam_has_only_north(kigali_world, client_for):
    pw, superseded = kigali_world
    response = client_for(pw.w.sam).get(reverse("polls:pollrun_export", args=[pw.run1.pk, "csv"]))
    text = b"".join(response.streaming_content).decode("utf-8")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows[1:] == _expected(pw, superseded)[:3]
    for word in SOUTH_WORDS:
        assert word not in text


def test_xlsx_export_exact_content(kigali_world, client_for):
    from openpyxl import load_workbook

    pw, superseded = kigali_world
    response = client_for(pw.w.alice).get(
        reverse("polls:pollrun_export", args=[pw.run1.pk, "xlsx"])
    )
    assert response["Content-Disposition"].endswith('health-check-2026-11-02-responses.xlsx"')
    book = load_workbook(io.BytesIO(b"".join(response.streaming_content)))
    sheet = book["Responses"]
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert rows[0] == HEADER
    expected = _expected(pw, superseded)

    def cell(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, dt.datetime):
            return value.strftime("%Y-%m-%d %H:%M:%S")
        return str(value)

    assert [[cell(v) for v in row] for row in rows[1:]] == expected
    assert rows[1][5] is False and isinstance(rows[1][6], dt.datetime)
    sam = client_for(pw.w.sam).get(reverse("polls:pollrun_export", args=[pw.run1.pk, "xlsx"]))
    book = load_workbook(io.BytesIO(b"".join(sam.streaming_content)))
    names = [row[1] for row in book["Responses"].iter_rows(min_row=2, values_only=True)]
    assert names == ["Ana", "Ana", "Ben"]


def test_export_unknown_format_is_404(polls_world, client_for):
    pw = polls_world
    url = reverse("polls:pollrun_export", args=[pw.run1.pk, "pdf"])
    assert client_for(pw.w.alice).get(url).status_code == 404


# --- message ---------------------------------------------------------------------------


def test_message_non_respondents(polls_world, client_for):
    pw = polls_world
    client = client_for(pw.w.alice)
    form = _html(client.get(reverse("polls:pollrun_message", args=[pw.run1.pk])))
    assert 'maxlength="640"' in form and 'data-counter="message-counter"' in form
    response = client.post(
        reverse("polls:pollrun_message", args=[pw.run1.pk]),
        {"audience": "non_respondents", "text": "  Please answer the poll  "},
    )
    with account_scope(pw.w.account):
        broadcast = Broadcast.objects.get()
        recipients = list(broadcast.recipients.all())
    assert response.status_code == 302
    assert response["Location"] == reverse("polls:job", args=[broadcast.job_id])
    assert recipients == [pw.dan]
    assert broadcast.text == "Please answer the poll"
    assert broadcast.audience == "non_respondents" and broadcast.pollrun_id == pw.run1.pk
    assert broadcast.sent_by == pw.w.alice and broadcast.job.kind == "polls.broadcast"


def test_message_from_sam_reaches_only_north(polls_world, client_for):
    pw = polls_world
    url = reverse("polls:pollrun_message", args=[pw.run1.pk])
    client = client_for(pw.w.sam)
    response = client.post(url, {"audience": "all", "text": "Hello"})
    assert response.status_code == 302
    with account_scope(pw.w.account):
        broadcast = Broadcast.objects.get()
        assert set(broadcast.recipients.all()) == {pw.ana, pw.ben}
    # dan (South) is the only non-respondent: nobody in Sam's panels matches
    response = client.post(url, {"audience": "non_respondents", "text": "Hello"})
    assert response.status_code == 400
    assert "Nobody matches" in _html(response)
    with account_scope(pw.w.account):
        assert Broadcast.objects.count() == 1


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"text": ""}, "text"),
        ({"text": "   "}, "text"),
        ({"text": "x" * 641}, "text"),
        ({"audience": "everyone"}, "audience"),
        ({"audience": ""}, "audience"),
    ],
)
def test_message_bad_input(polls_world, client_for, data, field):
    pw = polls_world
    payload = {"audience": "all", "text": "Hello", **data}
    response = client_for(pw.w.alice).post(
        reverse("polls:pollrun_message", args=[pw.run1.pk]), payload
    )
    assert response.status_code == 400
    assert f'data-testid="error-{field}"' in _html(response)
    with account_scope(pw.w.account):
        assert not Broadcast.objects.exists() and not Job.objects.exists()


def test_message_is_sent_through_rapidpro(polls_world, client_for, fake_rapidpro):
    from closedloop.polls.tests.outbound_helpers import run, wire

    pw = polls_world
    wire(pw, fake_rapidpro)
    client_for(pw.w.alice).post(
        reverse("polls:pollrun_message", args=[pw.run1.pk]),
        {"audience": "respondents", "text": "Thank you"},
    )
    with account_scope(pw.w.account):
        broadcast = Broadcast.objects.get()
        job = run(broadcast.job)
        broadcast.refresh_from_db()
    assert job.status == "succeeded", job.error
    assert broadcast.status == "sent" and broadcast.recipient_count == 3
    sent = fake_rapidpro.state.broadcasts[-1]
    assert {c["uuid"] for c in sent["contacts"]} == {pw.ana.uuid, pw.ben.uuid, pw.cara.uuid}


# --- restart ---------------------------------------------------------------------------


def test_restart_newest_started_run(polls_world, client_for, north_runs):
    pw = polls_world
    old, new = north_runs
    client = client_for(pw.w.sam)
    html = _html(client.get(reverse("polls:pollrun_detail", args=[new.pk])))
    assert 'data-testid="restart"' in html
    response = client.post(reverse("polls:pollrun_restart", args=[new.pk]))
    with account_scope(pw.w.account):
        job = Job.objects.get()
    assert response["Location"] == reverse("polls:job", args=[job.pk])
    assert job.kind == "polls.restart" and job.params == {"pollrun_id": new.pk}
    assert job.created_by == pw.w.sam


def test_restart_refused_for_older_and_universal_runs(polls_world, client_for, north_runs):
    pw = polls_world
    old, _new = north_runs
    client = client_for(pw.w.alice)
    html = _html(client.get(reverse("polls:pollrun_detail", args=[old.pk])))
    assert 'data-testid="restart"' not in html
    response = client.post(reverse("polls:pollrun_restart", args=[old.pk]), follow=True)
    assert "Only the newest poll run" in _html(response)
    assert client.post(reverse("polls:pollrun_restart", args=[pw.run1.pk])).status_code == 404
    assert client.get(reverse("polls:pollrun_restart", args=[old.pk])).status_code == 405
    with account_scope(pw.w.account):
        assert not Job.objects.exists()


def test_restart_runs_against_rapidpro(polls_world, client_for, north_runs, fake_rapidpro):
    from closedloop.polls.tests.outbound_helpers import run, wire

    pw = polls_world
    wire(pw, fake_rapidpro)
    _old, new = north_runs
    client_for(pw.w.alice).post(reverse("polls:pollrun_restart", args=[new.pk]))
    with account_scope(pw.w.account):
        job = run(Job.objects.get())
    assert job.status == "succeeded", job.error
    started = fake_rapidpro.state.flow_starts[-1]
    # propagated run of North: ana (partial) and ben (no response) are incomplete
    assert {c["uuid"] for c in started["contacts"]} == {pw.ana.uuid, pw.ben.uuid}


def test_pollrun_detail_wrong_ids(polls_world, client_for):
    pw = polls_world
    client = client_for(pw.w.alice)
    assert client.get(reverse("polls:pollrun_detail", args=[999999])).status_code == 404
    assert client.get(reverse("polls:pollrun_detail", args=[pw.other_run.pk])).status_code == 404
    with account_scope(pw.w.account):
        assert PollRun.objects.filter(pk=pw.other_run.pk).count() == 0
