"""Physical table I/O: every type round-trips (NULLs, time zones) on SQLite and PostgreSQL;
paging, sorting and search; versions and undo."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import polars as pl
import pytest
from django.db import connection
from django.test.utils import override_settings

from closedloop.feedback import columns as column_services
from closedloop.feedback import services, table
from closedloop.feedback.models import Column, TableVersion, column_snapshot
from closedloop.feedback.selectors import columns_of
from closedloop.feedback.tests.conftest import learners

UTC = dt.UTC
pytestmark = pytest.mark.django_db


def test_it_round_trips_every_type_with_nulls(make_workflow, scoped):
    workflow = make_workflow()
    frame = table.read_frame(workflow)
    expected = pl.DataFrame(learners()).with_columns(
        pl.col("submitted").cast(pl.Datetime("us", "UTC"))
    )
    assert frame.schema == {
        "email": pl.String,
        "name": pl.String,
        "score": pl.Float64,
        "attempts": pl.Int64,
        "passed": pl.Boolean,
        "submitted": pl.Datetime("us", "UTC"),
    }
    assert frame.equals(expected)
    assert workflow.nrows == 6 and workflow.ncols == 6


def test_time_zones_are_stored_in_utc(make_workflow, scoped):
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    data = {
        "id": [1, 2, 3],
        "when": [
            dt.datetime(2024, 7, 1, 12, 0, tzinfo=paris),
            dt.datetime(2024, 1, 1, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
            None,
        ],
    }
    workflow = make_workflow(data=data, keys=("id",))
    frame = table.read_frame(workflow)
    assert frame["when"].to_list() == [
        dt.datetime(2024, 7, 1, 10, 0, tzinfo=UTC),
        dt.datetime(2024, 1, 1, 5, 30, tzinfo=UTC),
        None,
    ]
    cols = columns_of(workflow)
    rows = table.fetch_rows(workflow, cols, order_by=cols[1])
    assert [r["when"] for r in rows] == [
        dt.datetime(2024, 1, 1, 5, 30, tzinfo=UTC),
        dt.datetime(2024, 7, 1, 10, 0, tzinfo=UTC),
        None,
    ]


def test_to_db_and_from_db_are_inverse(make_workflow, scoped):
    moment = dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    for data_type, value in [
        ("string", "héllo"),
        ("integer", 2**40),
        ("double", 1.25),
        ("boolean", True),
        ("boolean", False),
        ("datetime", moment),
        ("string", None),
    ]:
        assert table.from_db(data_type, table.to_db(data_type, value)) == value
    if connection.vendor == "sqlite":
        assert table.to_db("datetime", moment) == "2024-05-06 07:08:09.123456"
        assert len(table.to_db("datetime", dt.datetime(2024, 1, 1, tzinfo=UTC))) == 26
    assert table.to_db("double", float("nan")) is None


def test_the_key_column_has_a_unique_index(make_workflow, scoped):
    from django.db import IntegrityError, transaction

    workflow = make_workflow()
    email = columns_of(workflow)[0]
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table.qn(workflow.table_name)} ({table.qn(email.physical)}) VALUES (%s)",
            ["ana@example.org"],
        )


def test_fetch_rows_sorts_pages_and_searches(make_workflow, scoped):
    workflow = make_workflow()
    cols = columns_of(workflow)
    score = next(c for c in cols if c.name == "score")
    rows = table.fetch_rows(workflow, cols, order_by=score)
    assert [r["score"] for r in rows] == [30.5, 48.0, 62.0, 75.25, 91.5, None]
    rows = table.fetch_rows(workflow, cols, order_by=score, descending=True, limit=2)
    assert [r["score"] for r in rows] == [None, 91.5]
    rows = table.fetch_rows(workflow, cols, order_by=score, offset=2, limit=2)
    assert [r["name"] for r in rows] == ["Eve", "Chloé"]
    # search is case-insensitive, over every type, and treats % and _ literally
    assert [r["name"] for r in table.fetch_rows(workflow, cols, search="CHLOÉ")] == ["Chloé"]
    assert [r["name"] for r in table.fetch_rows(workflow, cols, search="75.25")] == ["Chloé"]
    assert len(table.fetch_rows(workflow, cols, search="2024-03-04 23:59")) == 1
    assert len(table.fetch_rows(workflow, cols, search="true")) == 3
    assert table.fetch_rows(workflow, cols, search="%") == []
    assert table.fetch_rows(workflow, cols, search="a_a") == []
    where, params = table.search_sql(cols, "ben")
    assert table.count_rows(workflow, where=where, params=params) == 1


def test_fetch_rows_with_where_and_extra_select(make_workflow, scoped):
    workflow = make_workflow()
    cols = columns_of(workflow)
    attempts = next(c for c in cols if c.name == "attempts")
    rows = table.fetch_rows(
        workflow,
        cols[:1],
        where=f"{table.qn(attempts.physical)} >= %s",
        params=[2],
        extra_select=[
            ("__big", f"CASE WHEN {table.qn(attempts.physical)} > %s THEN 1 ELSE 0 END", [2])
        ],
    )
    assert [(r["email"][:3], r["__big"]) for r in rows] == [
        ("ben", 1),
        ("chl", 0),
        ("eve", 0),
        ("fem", 1),
    ]
    assert set(rows[0]) == {"_rid", "email", "__big"}
    assert table.count_rows(workflow, where=f"{table.qn(attempts.physical)} > %s", params=[2]) == 2


def test_search_text_follows_row_and_column_changes(make_workflow, scoped):
    workflow = make_workflow()
    services.row_update(
        workflow=workflow,
        actor=scoped.alice,
        key_column="email",
        key_value="ben@example.org",
        values={"name": "Benedikt"},
    )
    cols = columns_of(workflow)
    assert [r["name"] for r in table.fetch_rows(workflow, cols, search="benedikt")] == ["Benedikt"]
    column_services.column_add(
        workflow=workflow, actor=scoped.alice, name="group", data_type="string", initial="Zebra"
    )
    cols = columns_of(workflow)
    assert len(table.fetch_rows(workflow, cols, search="zebra")) == 6


def test_undo_restores_data_and_columns_exactly(make_workflow, scoped):
    workflow = make_workflow()
    before_rows = table.read_frame(workflow, with_rid=True)
    before_cols = [column_snapshot(c) for c in columns_of(workflow)]
    services.table_load(
        workflow=workflow,
        actor=scoped.alice,
        frame=pl.DataFrame({"email": ["x@example.org"], "grade": ["A"], "score": ["1.5"]}),
        keys=["email"],
        types={"score": "double"},
    )
    assert workflow.nrows == 1
    assert [c.name for c in columns_of(workflow)] == ["email", "grade", "score"]
    version = table.undo_last(workflow, actor=scoped.alice)
    assert version.label == "upload"
    workflow.refresh_from_db()
    assert [column_snapshot(c) for c in columns_of(workflow)] == before_cols
    assert table.read_frame(workflow, with_rid=True).equals(before_rows)
    assert workflow.nrows == 6 and workflow.ncols == 6
    # the row ids go on after the restored ones
    rid = services.row_insert(workflow=workflow, actor=scoped.alice, values={"email": "new@x.org"})
    assert rid > before_rows["_rid"].max()
    assert workflow.logs.filter(name="workflow_restore").count() == 1
    assert not table.table_exists(version.table_name)


def test_undo_without_versions_is_refused(world, scoped):
    workflow = services.workflow_create(account=world.account, actor=world.alice, name="Empty")
    with pytest.raises(services.FeedbackError, match="no earlier version"):
        table.undo_last(workflow, actor=world.alice)


@override_settings(FEEDBACK_TABLE_VERSIONS=2)
def test_old_versions_are_dropped(make_workflow, scoped):
    workflow = make_workflow()
    for n in range(4):
        services.table_load(
            workflow=workflow,
            actor=scoped.alice,
            frame=pl.DataFrame({"email": [f"{n}@x.org"]}),
            keys=["email"],
            label=f"load {n}",
        )
    versions = list(TableVersion.objects.filter(workflow=workflow))
    assert [v.label for v in versions] == ["load 3", "load 2"]
    assert all(table.table_exists(v.table_name) for v in versions)
    assert not table.table_exists(f"{workflow.table_name}_v1")
    table.undo_last(workflow, actor=scoped.alice)
    assert table.read_frame(workflow)["email"].to_list() == ["2@x.org"]


def test_replace_table_keeps_a_version(make_workflow, scoped):
    workflow = make_workflow()
    cols = columns_of(workflow)
    frame = table.read_frame(workflow).head(2)
    table.replace_table(workflow, cols, frame, label="merge", actor=scoped.alice)
    assert workflow.nrows == 2
    assert table.count_rows(workflow) == 2
    assert TableVersion.objects.get(workflow=workflow, label="merge").nrows == 6


def test_write_frame_appends_in_bulk(make_workflow, scoped):
    workflow = make_workflow()
    cols = columns_of(workflow)
    frame = pl.DataFrame(
        {
            "email": [f"u{i}@x.org" for i in range(2000)],
            "name": ["U"] * 2000,
            "score": [float(i) for i in range(2000)],
            "attempts": list(range(2000)),
            "passed": [i % 2 == 0 for i in range(2000)],
            "submitted": [dt.datetime(2024, 1, 1, tzinfo=UTC)] * 2000,
        }
    )
    assert table.write_frame(workflow, cols, frame) == 2000
    assert table.count_rows(workflow) == 2006
    assert len(table.fetch_rows(workflow, cols, search="u1999@")) == 1


def test_polars_dtypes():
    assert table.polars_dtype("datetime") == pl.Datetime("us", "UTC")
    assert table.polars_dtype("boolean") == pl.Boolean
    assert Column(slot=7).physical == "c7"
