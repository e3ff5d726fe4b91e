"""API: polls, questions, poll runs, responses, participation, one-run summary."""

from __future__ import annotations

import pytest

from closedloop.core.tenancy import account_scope
from closedloop.polls import testing as t
from closedloop.polls.models import PollRunType, ResponseStatus
from closedloop.polls.tests.conftest import DAY1

API = "/api/v1/polls"


@pytest.fixture
def south_run(polls_world):
    """A regional poll run started for the South panel (cara answered)."""
    pw = polls_world
    with account_scope(pw.w.account):
        run = t.make_pollrun(pw.poll, DAY1, type=PollRunType.REGIONAL, panel=pw.south, hour=12)
        t.make_response(run, pw.cara, {pw.q_children: 1}, status=ResponseStatus.COMPLETE)
    return run


def test_list_polls_counts_and_tenancy(polls_world, client_for, django_assert_max_num_queries):
    pw = polls_world
    with account_scope(pw.w.account):
        for i in range(3):  # more rows must not mean more queries
            poll = t.make_poll(pw.connection, f"Extra {i}")
            t.make_question(poll, "q")
            t.make_pollrun(poll, DAY1)
    client = client_for(pw.w.alice)
    with django_assert_max_num_queries(8):
        body = client.get(f"{API}/polls").json()
    assert body["count"] == 4
    health = next(p for p in body["items"] if p["name"] == "Health check")
    assert health["question_count"] == 3 and health["pollrun_count"] == 2
    assert health["last_conducted"] == "2026-11-09"
    assert health["connection"] == {"id": pw.connection.pk, "name": "RapidPro"}
    assert client.get(f"{API}/polls?search=heal").json()["count"] == 1
    other = client_for(pw.w.charlie).get(f"{API}/polls").json()
    assert [p["name"] for p in other["items"]] == ["Other poll"]


def test_poll_detail(polls_world, client_for):
    pw = polls_world
    with account_scope(pw.w.account):
        pw.q_comment.is_hidden = True
        pw.q_comment.save()
    body = client_for(pw.w.bob).get(f"{API}/polls/{pw.poll.pk}").json()
    assert [q["name"] for q in body["questions"]] == ["Children", "Color"]
    assert body["questions"][0]["rules"][0] == {
        "category": "Few",
        "test": "between",
        "arguments": [0, 2],
    }
    assert client_for(pw.w.charlie).get(f"{API}/polls/{pw.poll.pk}").status_code == 404
    assert client_for(pw.w.alice).get(f"{API}/polls/{pw.other_poll.pk}").status_code == 404


def test_questions(polls_world, client_for, django_assert_max_num_queries):
    pw = polls_world
    client = client_for(pw.w.alice)
    with django_assert_max_num_queries(6):
        body = client.get(f"{API}/questions?poll={pw.poll.pk}").json()
    assert [q["result_key"] for q in body["items"]] == ["children", "color", "comment"]
    numeric = client.get(f"{API}/questions?type=numeric").json()
    assert [q["id"] for q in numeric["items"]] == [pw.q_children.pk]
    bad = client.get(f"{API}/questions?type=rating")
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "type"
    one = client.get(f"{API}/questions/{pw.q_color.pk}").json()
    assert one["type"] == "categorical" and one["categories"] == ["Red", "Blue", "Other"]
    assert client_for(pw.w.charlie).get(f"{API}/questions/{pw.q_color.pk}").status_code == 404


def test_pollruns_scoped_counts(polls_world, south_run, client_for, django_assert_max_num_queries):
    pw = polls_world
    client = client_for(pw.w.alice)
    with django_assert_max_num_queries(8):
        body = client.get(f"{API}/pollruns?poll={pw.poll.pk}").json()
    assert body["count"] == 3
    by_id = {r["id"]: r for r in body["items"]}
    assert (by_id[pw.run1.pk]["participants"], by_id[pw.run1.pk]["complete"]) == (4, 2)
    assert by_id[pw.run1.pk]["partial"] == 1
    assert by_id[south_run.pk]["panel"] == {"id": pw.south.pk, "name": "South panel"}
    ranged = client.get(f"{API}/pollruns?start=2026-11-03&end=2026-11-30").json()
    assert [r["id"] for r in ranged["items"]] == [pw.run2.pk]
    regional = client.get(f"{API}/pollruns?type=regional").json()
    assert [r["id"] for r in regional["items"]] == [south_run.pk]
    assert client.get(f"{API}/pollruns?type=x").status_code == 400
    assert client.get(f"{API}/pollruns?start=soon").status_code == 422

    sam = client_for(pw.w.sam).get(f"{API}/pollruns").json()
    assert {r["id"] for r in sam["items"]} == {pw.run1.pk, pw.run2.pk}
    sam_run1 = next(r for r in sam["items"] if r["id"] == pw.run1.pk)
    assert (sam_run1["participants"], sam_run1["complete"], sam_run1["partial"]) == (2, 1, 1)
    charlie = client_for(pw.w.charlie).get(f"{API}/pollruns").json()
    assert [r["id"] for r in charlie["items"]] == [pw.other_run.pk]


def test_pollrun_detail_404s(polls_world, south_run, client_for):
    pw = polls_world
    sam = client_for(pw.w.sam)
    assert sam.get(f"{API}/pollruns/{pw.run1.pk}").json()["participants"] == 2
    for suffix in ("", "/responses", "/participation", "/summary"):
        assert sam.get(f"{API}/pollruns/{south_run.pk}{suffix}").status_code == 404, suffix
    charlie = client_for(pw.w.charlie)
    for suffix in ("", "/responses", "/participation", "/summary"):
        assert charlie.get(f"{API}/pollruns/{pw.run1.pk}{suffix}").status_code == 404, suffix
    alice = client_for(pw.w.alice)
    assert alice.get(f"{API}/pollruns/{south_run.pk}").json()["participants"] == 1


def test_responses_paged_with_answers(polls_world, client_for, django_assert_max_num_queries):
    pw = polls_world
    with account_scope(pw.w.account):
        old = t.make_response(pw.run1, pw.ana, {pw.q_children: 9}, active=False)
    client = client_for(pw.w.alice)
    with django_assert_max_num_queries(8):
        body = client.get(f"{API}/pollruns/{pw.run1.pk}/responses").json()
    assert body["count"] == 4
    assert [r["contact"]["name"] for r in body["items"]] == ["Ana", "Ben", "Cara", "Dan"]
    ana = body["items"][0]
    assert ana["status"] == "C" and ana["is_active"] is True
    assert [(a["question"], a["value"]) for a in ana["answers"]] == [
        (pw.q_children.pk, "2"),
        (pw.q_color.pk, "Red"),
        (pw.q_comment.pk, "clean water is good"),
    ]
    assert ana["answers"][0]["value_number"] == 2.0 and ana["answers"][0]["category"] == "Few"
    assert body["items"][3]["answers"] == [] and body["items"][3]["status"] == "E"
    everything = client.get(f"{API}/pollruns/{pw.run1.pk}/responses?include_inactive=1").json()
    assert everything["count"] == 5
    assert old.run_uuid in {r["run_uuid"] for r in everything["items"]}
    page = client.get(f"{API}/pollruns/{pw.run1.pk}/responses?limit=2&offset=2").json()
    assert [r["contact"]["name"] for r in page["items"]] == ["Cara", "Dan"]
    partial = client.get(f"{API}/pollruns/{pw.run1.pk}/responses?status=P").json()
    assert [r["contact"]["name"] for r in partial["items"]] == ["Ben"]
    assert client.get(f"{API}/pollruns/{pw.run1.pk}/responses?status=X").status_code == 400
    sam = client_for(pw.w.sam).get(f"{API}/pollruns/{pw.run1.pk}/responses").json()
    assert [r["contact"]["name"] for r in sam["items"]] == ["Ana", "Ben"]


def test_participation_endpoint(polls_world, client_for):
    pw = polls_world
    client = client_for(pw.w.bob)
    body = client.get(f"{API}/pollruns/{pw.run1.pk}/participation").json()
    assert body["by"] == "panel"
    assert [r["name"] for r in body["rows"]] == ["North panel", "Northvale panel", "South panel"]
    assert body["total"]["total"] == 4 and body["total"]["completion"] == 50.0
    cohorts = client.get(f"{API}/pollruns/{pw.run1.pk}/participation?by=cohort").json()
    assert {r["name"]: r["total"] for r in cohorts["rows"]} == {"Parents": 1, "Teachers": 2}
    bad = client.get(f"{API}/pollruns/{pw.run1.pk}/participation?by=school")
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "by"
    sam = client_for(pw.w.sam).get(f"{API}/pollruns/{pw.run1.pk}/participation").json()
    assert [r["name"] for r in sam["rows"]] == ["North panel", "Northvale panel"]
    assert sam["total"]["total"] == 2


def test_pollrun_summary_endpoint(polls_world, client_for):
    pw = polls_world
    body = client_for(pw.w.alice).get(f"{API}/pollruns/{pw.run1.pk}/summary").json()
    by_name = {q["name"]: q for q in body["questions"]}
    assert [b["count"] for b in by_name["Children"]["bins"]] == [1, 2]
    assert by_name["Color"]["categories"][0] == {"category": "Red", "count": 1, "share": 50.0}
    assert by_name["Comment"]["count"] == 2
    sam = client_for(pw.w.sam).get(f"{API}/pollruns/{pw.run1.pk}/summary").json()
    sam_children = next(q for q in sam["questions"] if q["name"] == "Children")
    assert sam_children["count"] == 2 and sam_children["mean"] == 3.0


def test_openapi_lists_the_polls_endpoints(polls_world, client_for):
    paths = client_for(polls_world.w.alice).get("/api/v1/openapi.json").json()["paths"]
    for path in (
        "/api/v1/polls/polls",
        "/api/v1/polls/questions/{question_id}/chart",
        "/api/v1/polls/questions/{question_id}/map",
        "/api/v1/polls/pollruns/{pollrun_id}/responses",
        "/api/v1/polls/pollruns/{pollrun_id}/participation",
        "/api/v1/polls/indicators/{indicator_id}",
        "/api/v1/polls/home",
    ):
        assert path in paths, path
