"""The merge engine: join modes, update semantics, checks, atomicity and undo."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
import pytest

from closedloop.core.tenancy import account_scope
from closedloop.feedback import table as storage
from closedloop.feedback.dataops.merge import merge_frame
from closedloop.feedback.dataops.sources import parse_csv
from closedloop.feedback.models import Column, TableVersion, WorkflowLog
from closedloop.feedback.services import FeedbackError

UTC = dt.UTC


def rows_of(workflow: Any) -> dict[str, dict[str, Any]]:
    frame = storage.read_frame(workflow)
    return {r["email"]: r for r in frame.to_dicts()}


def state(workflow: Any) -> tuple[Any, ...]:
    workflow.refresh_from_db()
    columns = [
        (c.name, c.data_type, c.is_key, c.slot) for c in Column.objects.filter(workflow=workflow)
    ]
    frame = storage.read_frame(workflow)
    return (workflow.version, workflow.nrows, columns, frame.to_dicts())


def merge_csv(workflow: Any, actor: Any, text: str, **kwargs: Any) -> Any:
    parsed = parse_csv(text.encode())
    options = {"how": "outer", "left_on": "email", "right_on": "email", **kwargs}
    return merge_frame(
        workflow=workflow,
        actor=actor,
        frame=parsed.frame,
        types=parsed.types,
        row_numbers=parsed.row_numbers,
        **options,
    )


@pytest.fixture
def course(make_workflow: Any, world: Any) -> Any:
    workflow = make_workflow()
    with account_scope(world.account):
        yield workflow


def test_outer_merge_adds_columns_and_rows_and_counts_them(course: Any, world: Any) -> None:
    result = merge_csv(
        course,
        world.alice,
        "email,midterm,score\nana@example.org,12,\nben@example.org,15,50\nzoe@example.org,9,70\n",
    )
    assert (result.added, result.updated, result.unchanged, result.dropped) == (1, 2, 4, 0)
    tags = {c.name: c.tag for c in result.columns}
    assert tags == {"email": "key", "midterm": "new", "score": "update"}
    rows = rows_of(course)
    assert len(rows) == 7
    assert rows["ana@example.org"]["score"] == 91.5  # empty does not clear
    assert rows["ben@example.org"]["score"] == 50.0
    assert rows["zoe@example.org"]["midterm"] == 9 and rows["zoe@example.org"]["name"] is None
    assert rows["dan@example.org"]["midterm"] is None
    midterm = Column.objects.get(workflow=course, name="midterm")
    assert midterm.data_type == "integer" and not midterm.is_key
    course.refresh_from_db()
    assert course.nrows == 7 and course.ncols == 7
    log = WorkflowLog.objects.filter(workflow=course, name="workflow_data_merge").get()
    assert log.payload["added"] == 1 and log.payload["updated"] == 2


@pytest.mark.parametrize(
    ("how", "emails", "counts"),
    [
        ("outer", 7, (1, 1, 5, 0)),
        ("inner", 1, (0, 1, 0, 5)),
        ("left", 6, (0, 1, 5, 0)),
        ("right", 2, (1, 1, 0, 5)),
    ],
)
def test_each_merge_mode_keeps_the_rows_it_promises(
    course: Any, world: Any, how: str, emails: int, counts: tuple[int, ...]
) -> None:
    result = merge_csv(
        course, world.alice, "email,bonus\nben@example.org,2\nnew@example.org,3\n", how=how
    )
    assert (result.added, result.updated, result.unchanged, result.dropped) == counts
    rows = rows_of(course)
    assert len(rows) == emails
    assert rows["ben@example.org"]["bonus"] == 2
    assert ("new@example.org" in rows) == (how in ("outer", "right"))


def test_clear_with_empty_lets_empty_values_clear_only_rows_in_the_new_data(
    course: Any, world: Any
) -> None:
    result = merge_csv(
        course, world.alice, "email,score,name\nana@example.org,,Ana B\n", clear_with_empty=True
    )
    assert result.updated == 1
    rows = rows_of(course)
    assert rows["ana@example.org"]["score"] is None
    assert rows["ana@example.org"]["name"] == "Ana B"
    assert rows["ben@example.org"]["score"] == 48.0


def test_unchanged_values_are_not_counted_as_updates(course: Any, world: Any) -> None:
    result = merge_csv(
        course, world.alice, "email,score\nana@example.org,91.5\nben@example.org,48\n"
    )
    assert (result.updated, result.unchanged) == (0, 6)


def test_keys_of_different_names_join_and_the_new_key_is_not_added(course: Any, world: Any) -> None:
    result = merge_csv(
        course,
        world.alice,
        "Email address,grade\nben@example.org,B\n",
        right_on="Email address",
        how="left",
    )
    assert [c.name for c in result.columns if c.tag == "new"] == ["grade"]
    assert rows_of(course)["ben@example.org"]["grade"] == "B"
    assert not Column.objects.filter(workflow=course, name="Email address").exists()


def test_booleans_as_text_and_integral_doubles_are_accepted(course: Any, world: Any) -> None:
    frame = pl.DataFrame(
        {
            "email": ["ana@example.org", "dan@example.org"],
            "passed": ["False", "True"],
            "attempts": [5.0, 7.0],
        }
    )
    merge_frame(
        workflow=course,
        actor=world.alice,
        frame=frame,
        types={"email": "string", "passed": "string", "attempts": "double"},
        how="outer",
        left_on="email",
        right_on="email",
    )
    rows = rows_of(course)
    assert rows["ana@example.org"]["passed"] is False and rows["dan@example.org"]["passed"] is True
    assert rows["dan@example.org"]["attempts"] == 7


def test_a_type_conflict_names_the_column_and_rows_and_changes_nothing(
    course: Any, world: Any
) -> None:
    before = state(course)
    with pytest.raises(FeedbackError) as error:
        merge_csv(
            course,
            world.alice,
            "email,attempts\nana@example.org,3\nben@example.org,2.5\ndan@example.org,many\n",
        )
    assert str(error.value) == (
        "Column “attempts” holds integers, but the new data has values that are not: "
        "rows 3 (“2.5”), 4 (“many”)."
    )
    assert error.value.errors[0] == {
        "row": 3,
        "column": "attempts",
        "message": "“2.5” is not integers.",
    }
    assert state(course) == before
    failed = WorkflowLog.objects.get(workflow=course, name="workflow_data_failedmerge")
    assert "attempts" in failed.payload["message"]


def test_duplicate_keys_in_the_new_data_are_listed_with_their_rows(course: Any, world: Any) -> None:
    before = state(course)
    with pytest.raises(FeedbackError) as error:
        merge_csv(
            course,
            world.alice,
            "email,x\nana@example.org,1\nben@example.org,2\nana@example.org,3\n",
        )
    assert str(error.value) == (
        "The key column “email” of the new data has values that appear more than once: "
        "“ana@example.org” in rows 2, 4."
    )
    assert state(course) == before


def test_a_merge_that_would_break_another_key_fails(course: Any, world: Any) -> None:
    with account_scope(world.account):
        Column.objects.filter(workflow=course, name="name").update(is_key=True)
    before = state(course)
    with pytest.raises(FeedbackError) as error:
        merge_csv(course, world.alice, "email,name\nben@example.org,Ana\n")
    assert "“name” after the merge" in str(error.value) and "“Ana”" in str(error.value)
    with pytest.raises(FeedbackError) as error:
        merge_csv(course, world.alice, "email,bonus\nzed@example.org,1\n")
    assert str(error.value).startswith("The merge would leave key column “name” empty in 1 rows")
    assert "rows 2 of the new data" in str(error.value)
    assert state(course) == before


def test_values_outside_the_categories_are_refused(course: Any, world: Any) -> None:
    with account_scope(world.account):
        Column.objects.filter(workflow=course, name="attempts").update(categories=["0 - 4"])
        Column.objects.filter(workflow=course, name="name").update(
            categories=["Ana", "Ben", "Chloé", "Dan", "Eve", "Femi", "Zed"]
        )
    before = state(course)
    with pytest.raises(FeedbackError) as error:
        merge_csv(course, world.alice, "email,attempts\nana@example.org,4\nben@example.org,9\n")
    assert str(error.value) == (
        "Column “attempts” accepts only “0 - 4”; the new data has other values in rows 3 (“9”)."
    )
    with pytest.raises(FeedbackError):
        merge_csv(course, world.alice, "email,name\nana@example.org,Nobody\n")
    assert state(course) == before
    merge_csv(course, world.alice, "email,name,attempts\nana@example.org,Zed,4\n")
    assert rows_of(course)["ana@example.org"]["name"] == "Zed"


def test_dry_run_previews_without_writing(course: Any, world: Any) -> None:
    before = state(course)
    result = merge_csv(
        course, world.alice, "email,bonus\nben@example.org,2\nnew@example.org,3\n", dry_run=True
    )
    assert (result.added, result.updated) == (1, 1)
    assert result.sample and "bonus" in result.sample[0]
    assert state(course) == before
    assert not WorkflowLog.objects.filter(workflow=course, name="workflow_data_merge").exists()


def test_an_error_after_the_write_started_leaves_the_table_as_it_was(
    course: Any, world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from closedloop.feedback import services

    before = state(course)
    versions = TableVersion.objects.filter(workflow=course).count()

    def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(services, "refresh_after_data_change", explode)
    with pytest.raises(RuntimeError):
        merge_csv(course, world.alice, "email,bonus\nben@example.org,2\nnew@example.org,3\n")
    assert state(course) == before
    assert TableVersion.objects.filter(workflow=course).count() == versions
    failed = WorkflowLog.objects.get(workflow=course, name="workflow_data_failedmerge")
    assert failed.payload["message"] == "disk full"


def test_a_merge_can_be_undone(course: Any, world: Any) -> None:
    before = state(course)
    merge_csv(course, world.alice, "email,bonus,score\nben@example.org,2,1\nnew@example.org,3,\n")
    storage.undo_last(course, actor=world.alice)
    after = state(course)
    assert after[1:] == before[1:]


def test_renamed_columns_are_tagged(course: Any, world: Any) -> None:
    frame = pl.DataFrame({"email": ["ana@example.org"], "score": [99.0], "extra": ["x"]})
    result = merge_frame(
        workflow=course,
        actor=world.alice,
        frame=frame,
        types={"email": "string", "score": "double", "extra": "string"},
        how="outer",
        left_on="email",
        right_on="email",
        renames={"score": "Score (%)"},
        ignored=["comment"],
        dry_run=True,
    )
    plans = {c.name: (c.tag, c.source_name, c.target) for c in result.columns}
    assert plans["score"] == ("renamed", "Score (%)", "update")
    assert plans["extra"] == ("new", "extra", "new")
    assert plans["comment"][0] == "ignored"


def test_an_empty_workflow_is_loaded_not_merged(world: Any) -> None:
    from closedloop.feedback import services

    with account_scope(world.account):
        workflow = services.workflow_create(account=world.account, actor=world.alice, name="Empty")
        parsed = parse_csv(b"sid,when\n1,2024-05-01 10:00\n2,\n")
        result = merge_frame(
            workflow=workflow,
            actor=world.alice,
            frame=parsed.frame,
            types=parsed.types,
            how="outer",
            left_on="sid",
            right_on="sid",
        )
        assert result.added == 2
        columns = {
            c.name: (c.data_type, c.is_key) for c in Column.objects.filter(workflow=workflow)
        }
        assert columns == {"sid": ("integer", True), "when": ("datetime", False)}
        assert WorkflowLog.objects.filter(workflow=workflow, name="workflow_data_upload").exists()
        values = storage.read_frame(workflow).to_dicts()
        assert values[0]["when"] == dt.datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def test_the_fast_reader_gives_exactly_what_the_table_holds(make_workflow: Any, world: Any) -> None:
    from closedloop.feedback.dataops.fastread import read_table_frame

    data = {
        "k": ["a", "b", "c", "d"],
        "text": ["", 'quote " and, comma', "line\nbreak", None],
        "n": [-(2**62), 0, None, 7],
        "x": [0.1 + 0.2, 1e-300, None, -2.5],
        "ok": [True, False, None, True],
        "at": [dt.datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), None,
               dt.datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC), dt.datetime(2030, 6, 1, tzinfo=UTC)],
    }  # fmt: skip
    types = {
        "k": "string",
        "text": "string",
        "n": "integer",
        "x": "double",
        "ok": "boolean",
        "at": "datetime",
    }
    workflow = make_workflow(name="Edge", data=data, keys=("k",), types=types)
    with account_scope(world.account):
        columns = list(Column.objects.filter(workflow=workflow))
        fast = read_table_frame(workflow, columns)
        slow = storage.read_frame(workflow, columns)
    assert fast.schema == slow.schema
    assert fast.to_dicts() == slow.to_dicts()


def test_a_merge_that_changes_nothing_has_no_sample_rows(course: Any, world: Any) -> None:
    result = merge_csv(course, world.alice, "email,score\nana@example.org,91.5\n", dry_run=True)
    assert (result.updated, result.added, result.sample) == (0, 0, [])
