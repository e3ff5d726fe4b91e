"""Chart aggregates with hand-computed numbers (see ``polls_world`` in conftest)."""

from __future__ import annotations

import datetime as dt

import pytest

from closedloop.core.tenancy import account_scope
from closedloop.polls import selectors, stats
from closedloop.polls import testing as t
from closedloop.polls.models import ResponseStatus, WordCount
from closedloop.polls.tests.conftest import DAY1, DAY2

ALL = stats.Filters(start=dt.date(2026, 11, 1), end=dt.date(2026, 11, 30))


def _filters(**kwargs):
    return stats.Filters(**{"start": ALL.start, "end": ALL.end, **kwargs})


def test_numeric_series_everything_visible(polls_world):
    pw = polls_world
    with account_scope(pw.w.account):
        series = stats.numeric_series(pw.q_children, ALL)
    assert series["dates"] == ["2026-11-02", "2026-11-09"]
    assert series["pollruns"] == [pw.run1.pk, pw.run2.pk]
    assert series["sum"] == [12.0, 8.0]
    assert series["average"] == [4.0, 4.0]
    assert series["response_rate"] == [75.0, 100.0]
    assert series["answers"] == [3, 2]
    assert series["responses"] == [4, 2]
    assert series["series_by_panel"] == {}


def test_numeric_series_sam_sees_north_only(polls_world):
    pw = polls_world
    with account_scope(pw.w.account):
        units = stats.parse_filters(pw.w.sam_membership, {"window": "all"}).unit_ids
        series = stats.numeric_series(pw.q_children, _filters(unit_ids=units))
    assert sorted(units) == sorted([pw.w.region_north.pk, pw.w.district_n1.pk])
    # day 1: ana 2 + ben 4; day 2: ana 3 (cara is South)
    assert series["sum"] == [6.0, 3.0]
    assert series["average"] == [3.0, 3.0]
    assert series["response_rate"] == [100.0, 100.0]


def test_window_excludes_pollruns_outside(polls_world):
    pw = polls_world
    with account_scope(pw.w.account):
        series = stats.numeric_series(pw.q_children, _filters(start=DAY2))
        empty = stats.numeric_series(pw.q_children, _filters(end=dt.date(2026, 11, 1)))
    assert series["dates"] == ["2026-11-09"]
    assert empty["dates"] == [] and empty["sum"] == []


def test_inactive_answers_and_responses_never_count(polls_world):
    pw = polls_world
    with account_scope(pw.w.account):
        # an older, superseded run of ben on day 2 (inactive) changes nothing
        t.make_response(pw.run2, pw.ben, {pw.q_children: 100}, active=False)
        series = stats.numeric_series(pw.q_children, ALL)
    assert series["sum"] == [12.0, 8.0]
    assert series["response_rate"] == [75.0, 100.0]


def test_same_day_rule_sum_uses_day_sum(polls_world):
    pw = polls_world
    with account_scope(pw.w.account):
        from closedloop.polls.models import Answer

        # ana answered 2 then 5 on day 1: the active answer holds 5, day_sum 7
        Answer.objects.filter(pollrun=pw.run1, contact=pw.ana, question=pw.q_children).update(
            value="5", value_number=5, day_sum=7
        )
        last = stats.numeric_series(pw.q_children, ALL)
        settings_row = selectors.polls_settings(pw.w.account)
        settings_row.same_day_rule = "sum"
        settings_row.save()
        summed = stats.numeric_series(pw.q_children, ALL)
    assert last["sum"][0] == 15.0  # 5 + 4 + 6
    assert summed["sum"][0] == 17.0  # 7 + 4 + 6
    assert summed["average"][0] == pytest.approx(17 / 3, abs=1e-4)


def test_split_by_panel(polls_world):
    pw = polls_world
    with account_scope(pw.w.account):
        series = stats.numeric_series(pw.q_children, ALL, split_by_panel=True)
    panels = series["series_by_panel"]
    north = panels[str(pw.w.region_north.pk)]
    northvale = panels[str(pw.w.district_n1.pk)]
    south = panels[str(pw.w.region_south.pk)]
    assert north["name"] == "North panel"
    assert north["sum"] == [2.0, 3.0] and north["response_rate"] == [100.0, 100.0]
    assert northvale["sum"] == [4.0, None] and northvale["average"] == [4.0, None]
    # South: cara 6 + dan empty on day 1 (rate 1/2), cara 5 on day 2
    assert south["sum"] == [6.0, 5.0]
    assert south["response_rate"] == [50.0, 100.0]
    assert list(panels) == [
        str(pw.w.region_north.pk),
        str(pw.w.district_n1.pk),
        str(pw.w.region_south.pk),
    ]


def test_cohort_filter(polls_world):
    pw = polls_world
    with account_scope(pw.w.account):
        teachers = stats.numeric_series(pw.q_children, _filters(cohort_id=pw.teachers.pk))
        parents = stats.numeric_series(pw.q_children, _filters(cohort_id=pw.parents.pk))
    # teachers: ana + ben day 1 (2 + 4), ana day 2 (3)
    assert teachers["sum"] == [6.0, 3.0] and teachers["response_rate"] == [100.0, 100.0]
    # parents: cara (dan has no cohort)
    assert parents["sum"] == [6.0, 5.0] and parents["responses"] == [1, 1]


def test_field_filter_contains_any_case(polls_world):
    pw = polls_world
    with account_scope(pw.w.account):
        from closedloop.polls.models import Contact

        Contact.objects.filter(pk=pw.ana.pk).update(fields={"district": "Upper Gasabo"})
        Contact.objects.filter(pk=pw.cara.pk).update(fields={"district": "Nyarugenge"})
        found = stats.numeric_series(pw.q_children, _filters(field_filters={"district": "GASAB"}))
        both = stats.numeric_series(
            pw.q_children,
            _filters(field_filters={"district": "gasabo"}, cohort_id=pw.parents.pk),
        )
    assert found["sum"] == [2.0, 3.0] and found["responses"] == [1, 1]
    assert both["dates"] == []


def test_categorical_series(polls_world):
    pw = polls_world
    with account_scope(pw.w.account):
        series = stats.categorical_series(pw.q_color, ALL)
    assert series["categories"] == ["Red", "Blue"]
    assert series["counts"] == {"Red": [1, 0], "Blue": [1, 1]}
    assert series["shares"] == {"Red": [50.0, 0.0], "Blue": [50.0, 100.0]}
    # day 1: 2 answers of 4 responses; day 2: 1 of 2
    assert series["response_rate"] == [50.0, 50.0]


def test_categorical_series_scoped(polls_world):
    pw = polls_world
    with account_scope(pw.w.account):
        units = stats.parse_filters(pw.w.sam_membership, {}).unit_ids
        series = stats.categorical_series(pw.q_color, _filters(unit_ids=units))
    assert series["counts"] == {"Red": [1, 0], "Blue": [0, 1]}
    assert series["shares"] == {"Red": [100.0, 0.0], "Blue": [0.0, 100.0]}


def _word_counts(pw):
    rows = [
        (pw.run1, pw.w.region_north, "clean", 1),
        (pw.run1, pw.w.region_north, "water", 1),
        (pw.run1, pw.w.region_north, "good", 1),
        (pw.run1, pw.w.region_south, "water", 1),
        (pw.run1, pw.w.region_south, "dirty", 1),
        (pw.run2, pw.w.region_north, "water", 2),
    ]
    WordCount.objects.bulk_create(
        [
            WordCount(
                account=pw.w.account,
                question=pw.q_comment,
                pollrun=run,
                org_unit=unit,
                word=word,
                count=n,
            )
            for run, unit, word, n in rows
        ]
    )


def test_word_cloud_from_rollup(polls_world):
    pw = polls_world
    with account_scope(pw.w.account):
        _word_counts(pw)
        words = stats.word_cloud(pw.q_comment, ALL)
        north = stats.word_cloud(pw.q_comment, _filters(unit_ids=[pw.w.region_north.pk]))
        top = stats.word_cloud(pw.q_comment, ALL, limit=1)
    assert words[0] == {"word": "water", "count": 4}
    assert {w["word"]: w["count"] for w in words} == {
        "water": 4,
        "clean": 1,
        "dirty": 1,
        "good": 1,
    }
    assert {w["word"]: w["count"] for w in north} == {"water": 3, "clean": 1, "good": 1}
    assert top == [{"word": "water", "count": 4}]


def test_word_cloud_with_cohort_tokenizes_answers(polls_world):
    pw = polls_world
    with account_scope(pw.w.account):
        words = stats.word_cloud(pw.q_comment, _filters(cohort_id=pw.teachers.pk))
        chart = stats.question_chart(pw.q_comment, _filters(cohort_id=pw.teachers.pk))
    # ana's "clean water is good" and "water water everywhere" (stop words removed)
    counts = {w["word"]: w["count"] for w in words}
    assert counts["water"] == 3
    assert "is" not in counts
    assert chart["words_source"] == "latest_answers"


def test_summary_population_stdev(polls_world):
    pw = polls_world
    with account_scope(pw.w.account):
        # day 3: one answer 10 → averages 4, 4, 10: mean 6, population stdev √8
        run3 = t.make_pollrun(pw.poll, dt.date(2026, 11, 16))
        t.make_response(run3, pw.ana, {pw.q_children: 10}, status=ResponseStatus.COMPLETE)
        t.make_response(run3, pw.ben, {}, status=ResponseStatus.EMPTY)
        result = stats.summary(pw.q_children, ALL)
        color = stats.summary(pw.q_color, ALL)
    assert result["dates"] == 3
    assert result["mean"] == 6.0
    assert result["stdev"] == pytest.approx(8**0.5, abs=1e-4)
    assert result["response_rate"] == pytest.approx((75 + 100 + 50) / 3, abs=0.01)
    assert result["answers"] == 6 and result["responses"] == 8
    assert color["mean"] is None and color["response_rate"] == pytest.approx(
        (50 + 50 + 0) / 3, abs=0.01
    )


def test_question_chart_numeric_has_summary(polls_world):
    pw = polls_world
    with account_scope(pw.w.account):
        chart = stats.question_chart(pw.q_children, ALL, split_by_panel=True)
    assert chart["question"]["type"] == "numeric"
    assert chart["sum"] == [12.0, 8.0]
    assert chart["summary"]["mean"] == 4.0 and chart["summary"]["stdev"] == 0.0
    assert chart["summary"]["response_rate"] == 87.5
    assert len(chart["series_by_panel"]) == 3


def test_parse_filters_windows_and_errors(polls_world):
    pw = polls_world
    m = pw.w.alice_membership
    with account_scope(pw.w.account):
        today = stats.account_today(pw.w.account)
        month = stats.parse_filters(m, {})
        assert (month.start, month.end, month.window) == (today.replace(day=1), today, "month")
        days = stats.parse_filters(m, {"window": "30d"})
        assert (days.end - days.start).days == 29
        assert stats.parse_filters(m, {"window": "all"}).start is None
        custom = stats.parse_filters(
            m, {"window": "custom", "start": "2026-11-01", "end": "2026-11-05"}
        )
        assert (custom.start, custom.end) == (dt.date(2026, 11, 1), DAY1 + dt.timedelta(days=3))
        assert stats.parse_filters(m, {}).unit_ids is None
        panel = stats.parse_filters(m, {"panel": str(pw.north.pk)})
        assert sorted(panel.unit_ids) == sorted([pw.w.region_north.pk, pw.w.district_n1.pk])
        alone = stats.parse_filters(m, {"panel": str(pw.north.pk), "sub": "0"})
        assert alone.unit_ids == [pw.w.region_north.pk]
        fields = stats.parse_filters(m, {"field.district": " Gas ", "field.empty": ""})
        assert fields.field_filters == {"district": "Gas"}
        for params, field in [
            ({"window": "week"}, "window"),
            ({"window": "custom"}, "start"),
            ({"window": "custom", "start": "2026-11-05", "end": "2026-11-01"}, "end"),
            ({"window": "custom", "start": "05/11/2026"}, "start"),
            ({"panel": "x"}, "panel"),
            ({"cohort": str(pw.north.pk)}, "cohort"),  # a panel is not a cohort
            ({"field.district": "x" * 101}, "field.district"),
        ]:
            with pytest.raises(stats.FilterError) as error:
                stats.parse_filters(m, params)
            assert error.value.field == field, params


def test_parse_filters_sam_cannot_pick_south(polls_world):
    from django.http import Http404

    pw = polls_world
    with account_scope(pw.w.account), pytest.raises(Http404):
        stats.parse_filters(pw.w.sam_membership, {"panel": str(pw.south.pk)})
