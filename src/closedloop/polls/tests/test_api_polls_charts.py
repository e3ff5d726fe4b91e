"""API: question charts, maps, home figures and indicators, with hand-computed numbers."""

from __future__ import annotations

from closedloop.core.tenancy import account_scope
from closedloop.polls.models import Contact, Indicator, SampleAnswer
from closedloop.polls.tests.conftest import DAY1, DAY2

API = "/api/v1/polls"
NOV = "window=custom&start=2026-11-01&end=2026-11-30"


def test_numeric_chart_everything(polls_world, client_for, django_assert_max_num_queries):
    pw = polls_world
    client = client_for(pw.w.bob)  # a viewer reads dashboards
    client.get(f"{API}/questions/{pw.q_children.pk}/chart")  # the settings row now exists
    with django_assert_max_num_queries(10):
        response = client.get(f"{API}/questions/{pw.q_children.pk}/chart?{NOV}")
    assert response.status_code == 200
    body = response.json()
    assert body["question"]["type"] == "numeric"
    assert body["dates"] == ["2026-11-02", "2026-11-09"]
    assert body["pollruns"] == [pw.run1.pk, pw.run2.pk]
    assert body["sum"] == [12.0, 8.0]
    assert body["average"] == [4.0, 4.0]
    assert body["response_rate"] == [75.0, 100.0]
    assert body["series_by_panel"] == {}
    assert body["summary"] == {
        "dates": 2,
        "mean": 4.0,
        "stdev": 0.0,
        "response_rate": 87.5,
        "answers": 5,
        "responses": 6,
    }
    assert body["filters"]["start"] == "2026-11-01"


def test_numeric_chart_sam_sees_north_only(polls_world, client_for):
    pw = polls_world
    client = client_for(pw.w.sam)
    body = client.get(f"{API}/questions/{pw.q_children.pk}/chart?{NOV}&split=1").json()
    assert body["sum"] == [6.0, 3.0]
    assert body["average"] == [3.0, 3.0]
    assert body["response_rate"] == [100.0, 100.0]
    assert set(body["series_by_panel"]) == {str(pw.w.region_north.pk), str(pw.w.district_n1.pk)}
    narrowed = client.get(
        f"{API}/questions/{pw.q_children.pk}/chart?{NOV}&panel={pw.north.pk}&sub=0"
    ).json()
    assert narrowed["sum"] == [2.0, 3.0]
    south = client.get(f"{API}/questions/{pw.q_children.pk}/chart?{NOV}&panel={pw.south.pk}")
    assert south.status_code == 404
    # South numbers never show: cara's 6 and 5 are nowhere in Sam's figures
    text = client.get(f"{API}/questions/{pw.q_children.pk}/map?{NOV}").content.decode()
    assert "South" not in text


def test_chart_filters_from_query(polls_world, client_for):
    pw = polls_world
    with account_scope(pw.w.account):
        Contact.objects.filter(pk=pw.ana.pk).update(fields={"district": "Upper Gasabo"})
    client = client_for(pw.w.alice)
    url = f"{API}/questions/{pw.q_children.pk}/chart?{NOV}"
    assert client.get(f"{url}&field.district=GASABO").json()["sum"] == [2.0, 3.0]
    assert client.get(f"{url}&cohort={pw.parents.pk}").json()["sum"] == [6.0, 5.0]
    split = client.get(f"{url}&split=1").json()["series_by_panel"]
    assert split[str(pw.w.region_south.pk)]["response_rate"] == [50.0, 100.0]
    for query, field in [
        ("window=fortnight", "window"),
        ("window=custom", "start"),
        ("window=custom&start=2026-11-30&end=2026-11-01", "end"),
        (f"cohort={pw.north.pk}", "cohort"),  # a panel is no cohort
        ("field.district=" + "x" * 101, "field.district"),
    ]:
        response = client.get(f"{API}/questions/{pw.q_children.pk}/chart?{query}")
        assert response.status_code == 400, query
        assert response.json()["errors"][0]["field"] == field, query
    for query, field in [("cohort=abc", "cohort"), ("panel=abc", "panel"), ("start=x", "start")]:
        response = client.get(f"{API}/questions/{pw.q_children.pk}/chart?{query}")
        assert response.status_code == 422, query
        assert response.json()["errors"][0]["field"] == field, query


def test_categorical_and_open_charts(polls_world, client_for):
    pw = polls_world
    client = client_for(pw.w.alice)
    color = client.get(f"{API}/questions/{pw.q_color.pk}/chart?{NOV}").json()
    assert color["categories"] == ["Red", "Blue"]
    assert color["counts"] == {"Red": [1, 0], "Blue": [1, 1]}
    assert color["shares"] == {"Red": [50.0, 0.0], "Blue": [50.0, 100.0]}
    assert color["summary"]["mean"] is None and color["summary"]["response_rate"] == 50.0
    comment = client.get(f"{API}/questions/{pw.q_comment.pk}/chart?{NOV}").json()
    assert comment["words_source"] == "rollup"
    assert comment["response_rate"] == [50.0, 50.0]
    teachers = client.get(
        f"{API}/questions/{pw.q_comment.pk}/chart?{NOV}&cohort={pw.teachers.pk}"
    ).json()
    assert teachers["words_source"] == "latest_answers"
    assert teachers["words"][0] == {"word": "water", "count": 3}


def test_chart_tenancy(polls_world, client_for):
    pw = polls_world
    charlie = client_for(pw.w.charlie)
    for suffix in ("chart", "map"):
        assert charlie.get(f"{API}/questions/{pw.q_children.pk}/{suffix}").status_code == 404


def test_map_endpoint(polls_world, client_for):
    pw = polls_world
    body = client_for(pw.w.alice).get(f"{API}/questions/{pw.q_children.pk}/map?{NOV}").json()
    units = {u["name"]: u for u in body["units"]}
    assert body["type"] == "numeric"
    assert units["North"]["value"] == 2.5 and units["Northvale"]["category"] == "Many"
    assert units["South"]["value"] == 5.5 and units["South"]["count"] == 2


def test_home_endpoint(polls_world, client_for):
    pw = polls_world
    body = client_for(pw.w.bob).get(f"{API}/home").json()
    assert [r["id"] for r in body["recent_pollruns"]] == [pw.run2.pk, pw.run1.pk]
    assert body["recent_pollruns"][1]["participants"] == 4
    assert body["days"] == 30
    sam = client_for(pw.w.sam).get(f"{API}/home").json()
    assert sam["recent_pollruns"][1]["participants"] == 2
    charlie = client_for(pw.w.charlie).get(f"{API}/home").json()
    assert [r["id"] for r in charlie["recent_pollruns"]] == [pw.other_run.pk]


def _indicator(pw, **kwargs):
    with account_scope(pw.w.account):
        return Indicator.objects.create(
            account=pw.w.account,
            name="Children",
            start_date=DAY1,
            end_date=DAY2,
            baseline_question=pw.q_children,
            follow_up_question=pw.q_children,
            goal=kwargs.pop("goal", None),
            **kwargs,
        )


def test_indicators(polls_world, client_for, django_assert_max_num_queries):
    pw = polls_world
    indicator = _indicator(pw)
    sample = _indicator(pw, use_sample_data=True)
    with account_scope(pw.w.account):
        SampleAnswer.objects.create(
            account=pw.w.account,
            indicator=sample,
            kind="baseline",
            contact=pw.ana,
            local_date=DAY1,
            value=7,
        )
    client = client_for(pw.w.bob)
    with django_assert_max_num_queries(6):
        listed = client.get(f"{API}/indicators").json()
    assert listed["count"] == 2
    assert listed["items"][0]["baseline_poll"] == {"id": pw.poll.pk, "name": "Health check"}
    body = client.get(f"{API}/indicators/{indicator.pk}").json()
    assert body["data"]["baseline"] == 12.0
    assert [p["sum"] for p in body["data"]["follow_up"]] == [12.0, 8.0]
    assert body["data"]["summary"]["follow_up_stdev"] == 2.0
    sampled = client.get(f"{API}/indicators/{sample.pk}").json()
    assert sampled["data"]["baseline"] == 7.0 and sampled["data"]["follow_up"] == []
    sam = client_for(pw.w.sam)
    assert sam.get(f"{API}/indicators/{indicator.pk}").json()["data"]["baseline"] == 6.0
    north_only = sam.get(f"{API}/indicators/{indicator.pk}?panel={pw.north.pk}&sub=0").json()
    assert north_only["data"]["baseline"] == 2.0
    assert sam.get(f"{API}/indicators/{indicator.pk}?panel={pw.south.pk}").status_code == 404
    assert client_for(pw.w.charlie).get(f"{API}/indicators/{indicator.pk}").status_code == 404
