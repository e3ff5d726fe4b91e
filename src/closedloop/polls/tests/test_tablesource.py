"""The polls table source: one row per visible contact, latest answers in a window."""

from __future__ import annotations

import datetime as dt

import pytest

from closedloop.core.tablesource import table_sources
from closedloop.core.tenancy import account_scope
from closedloop.polls import testing as t
from closedloop.polls.models import ResponseStatus
from closedloop.polls.tests.conftest import DAY1, DAY2


@pytest.fixture
def source():
    return table_sources.get("polls")


def _rows(source, pw, membership, **params):
    with account_scope(pw.w.account):
        return {
            r["name"]: r
            for r in source.rows(account=pw.w.account, membership=membership, params=params)
        }


def test_it_is_registered_with_typed_columns(polls_world, source):
    pw = polls_world
    params = {"questions": [pw.q_children.pk, pw.q_color.pk]}
    with account_scope(pw.w.account):
        columns = {c.name: c for c in source.columns(account=pw.w.account, params=params)}
    assert columns["contact uuid"].is_key
    assert columns["Children"].type == "double"
    assert columns["Children category"].type == "string"
    assert columns["Color"].type == "string"


def test_rows_carry_identity_panel_path_and_cohorts(polls_world, source):
    pw = polls_world
    rows = _rows(source, pw, pw.w.alice_membership)
    assert sorted(rows) == ["Ana", "Ben", "Cara", "Dan"]
    ben = rows["Ben"]
    assert ben["contact uuid"] == pw.ben.uuid
    assert ben["person id"] == pw.ben.person_id
    assert ben["phones"] == "tel:+250788000002"
    assert ben["panel"] == "Northvale panel"
    assert ben["panel path"] == "Atlantis › North › Northvale"
    assert ben["cohorts"] == "Teachers"
    assert ben["language"] == "eng" and ben["status"] == "active"


def test_latest_answer_in_the_window(polls_world, source):
    pw = polls_world
    q = [pw.q_children.pk, pw.q_color.pk]
    everything = _rows(source, pw, pw.w.alice_membership, questions=q)
    # Ana answered 2 (Few) on day 1 and 3 (Many) on day 2: the latest wins
    assert everything["Ana"]["Children"] == 3.0
    assert everything["Ana"]["Children category"] == "Many"
    assert everything["Ana"]["Color"] == "Blue"
    assert everything["Ben"]["Children"] == 4.0 and everything["Ben"]["Color"] is None
    assert everything["Dan"]["Children"] is None
    first_week = _rows(
        source,
        pw,
        pw.w.alice_membership,
        questions=q,
        start=str(DAY1),
        end=str(DAY1 + dt.timedelta(days=6)),
    )
    assert first_week["Ana"]["Children"] == 2.0 and first_week["Ana"]["Color"] == "Red"
    assert first_week["Cara"]["Children"] == 6.0


def test_contacts_who_did_not_answer_this_week_have_empty_values(polls_world, source):
    pw = polls_world
    week = {"start": DAY2 - dt.timedelta(days=DAY2.weekday()), "end": DAY2}
    rows = _rows(source, pw, pw.w.alice_membership, questions=[pw.q_children.pk], **week)
    silent = sorted(name for name, row in rows.items() if row["Children"] is None)
    assert silent == ["Ben", "Dan"]


def test_superseded_answers_are_ignored(polls_world, source):
    pw = polls_world
    with account_scope(pw.w.account):
        t.make_response(
            pw.run2, pw.ben, {pw.q_children: 9}, status=ResponseStatus.PARTIAL, active=False
        )
    rows = _rows(source, pw, pw.w.alice_membership, questions=[pw.q_children.pk])
    assert rows["Ben"]["Children"] == 4.0


def test_a_supervisor_gets_only_his_contacts(polls_world, source):
    pw = polls_world
    rows = _rows(source, pw, pw.w.sam_membership, questions=[pw.q_children.pk])
    assert sorted(rows) == ["Ana", "Ben"]


def test_one_query_per_question(polls_world, source, django_assert_max_num_queries):
    pw = polls_world
    with account_scope(pw.w.account):
        for i in range(30):
            contact = t.make_contact(pw.connection, f"Extra {i}", pw.north)
            t.make_response(pw.run1, contact, {pw.q_children: i % 7, pw.q_color: "Red"})
    params = {"questions": [pw.q_children.pk, pw.q_color.pk, pw.q_comment.pk]}
    with django_assert_max_num_queries(9):
        rows = _rows(source, pw, pw.w.alice_membership, **params)
    assert len(rows) == 34


def test_unknown_or_foreign_questions_are_ignored(polls_world, source):
    pw = polls_world
    with account_scope(pw.w.account):
        columns = source.columns(account=pw.w.account, params={"questions": ["x", 999999]})
    assert [c.name for c in columns][-1] == "status"
