"""Fixtures shared by the polls tests.

``polls_world`` builds, in account A of the shared ``world`` (Alice admin, Bob viewer, Sam
supervising North, Charlie admin of account B), one RapidPro connection with:

- panels: "North panel" → North, "Northvale panel" → Northvale (under North),
  "South panel" → South; cohorts "Teachers" and "Parents" (people cohorts);
- poll "Health check" with questions ``children`` (numeric; rules 0–2 "Few", 3–10 "Many"),
  ``color`` (categorical: Red, Blue, Other) and ``comment`` (open);
- contacts ana (North, Teachers), ben (Northvale, Teachers), cara (South, Parents),
  dan (South);
- two universal poll runs:

  ===========  =====================================  ===========================
  day          response                               answers
  ===========  =====================================  ===========================
  2026-11-02   ana complete                           children 2, color Red,
                                                      comment "clean water is good"
  2026-11-02   ben partial                            children 4
  2026-11-02   cara complete                          children 6, color Blue,
                                                      comment "the water is dirty"
  2026-11-02   dan empty                              –
  2026-11-09   ana complete                           children 3, color Blue,
                                                      comment "water water everywhere"
  2026-11-09   cara partial                           children 5
  ===========  =====================================  ===========================

Hand-computed figures (everything visible, "use_last"):
day 1 children: sum 12, average 4.0, response rate 3/4 = 75 %; color: Red 1, Blue 1;
day 2 children: sum 8, average 4.0, rate 2/2 = 100 %. Sam (North) sees ana and ben only:
day 1 children sum 6, average 3.0, rate 2/2 = 100 %.

Account B (Charlie) has its own connection and poll "Other poll" with one run, to prove
tenancy.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass
class PollsWorld:
    w: Any  # the shared world
    connection: Any
    north: Any
    northvale: Any
    south: Any
    teachers: Any
    parents: Any
    poll: Any
    q_children: Any
    q_color: Any
    q_comment: Any
    ana: Any
    ben: Any
    cara: Any
    dan: Any
    run1: Any
    run2: Any
    other_connection: Any
    other_poll: Any
    other_run: Any


DAY1 = dt.date(2026, 11, 2)
DAY2 = dt.date(2026, 11, 9)
CHILDREN_RULES = [
    {"category": "Few", "test": "between", "arguments": [0, 2]},
    {"category": "Many", "test": "between", "arguments": [3, 10]},
]


@pytest.fixture
def polls_world(world: Any) -> PollsWorld:
    from closedloop.core.tenancy import account_scope
    from closedloop.polls import testing as t
    from closedloop.polls.models import QuestionType, ResponseStatus

    with account_scope(world.account):
        conn = t.make_connection(world.account)
        north = t.make_panel(conn, "North panel", world.region_north)
        northvale = t.make_panel(conn, "Northvale panel", world.district_n1)
        south = t.make_panel(conn, "South panel", world.region_south)
        teachers = t.make_cohort_group(conn, "Teachers")
        parents = t.make_cohort_group(conn, "Parents")
        poll = t.make_poll(conn, "Health check")
        q_children = t.make_question(
            poll,
            "children",
            QuestionType.NUMERIC,
            name="Children",
            categories=["Few", "Many", "Other"],
            rules=CHILDREN_RULES,
            order=0,
        )
        q_color = t.make_question(
            poll,
            "color",
            QuestionType.CATEGORICAL,
            name="Color",
            categories=["Red", "Blue", "Other"],
            order=1,
        )
        q_comment = t.make_question(poll, "comment", QuestionType.OPEN, name="Comment", order=2)
        ana = t.make_contact(conn, "Ana", north, [teachers], phone="+250788000001", language="eng")
        ben = t.make_contact(
            conn, "Ben", northvale, [teachers], phone="+250788000002", language="eng"
        )
        cara = t.make_contact(conn, "Cara", south, [parents], phone="+250788000003", language="fra")
        dan = t.make_contact(conn, "Dan", south, [], phone="+250788000004", language="eng")
        run1 = t.make_pollrun(poll, DAY1)
        run2 = t.make_pollrun(poll, DAY2)
        C, P, E = ResponseStatus.COMPLETE, ResponseStatus.PARTIAL, ResponseStatus.EMPTY
        t.make_response(
            run1,
            ana,
            {q_children: 2, q_color: "Red", q_comment: "clean water is good"},
            status=C,
            categories={q_children: "Few", q_color: "Red"},
        )
        t.make_response(run1, ben, {q_children: 4}, status=P, categories={q_children: "Many"})
        t.make_response(
            run1,
            cara,
            {q_children: 6, q_color: "Blue", q_comment: "the water is dirty"},
            status=C,
            categories={q_children: "Many", q_color: "Blue"},
        )
        t.make_response(run1, dan, {}, status=E)
        t.make_response(
            run2,
            ana,
            {q_children: 3, q_color: "Blue", q_comment: "water water everywhere"},
            status=C,
            categories={q_children: "Many", q_color: "Blue"},
        )
        t.make_response(run2, cara, {q_children: 5}, status=P, categories={q_children: "Many"})
    with account_scope(world.other_account):
        other_conn = t.make_connection(world.other_account, name="Other RapidPro")
        other_poll = t.make_poll(other_conn, "Other poll")
        other_q = t.make_question(other_poll, "score", QuestionType.NUMERIC)
        other_contact = t.make_contact(other_conn, "Zed")
        other_run = t.make_pollrun(other_poll, DAY1)
        t.make_response(other_run, other_contact, {other_q: 9}, status=ResponseStatus.COMPLETE)
    return PollsWorld(
        w=world,
        connection=conn,
        north=north,
        northvale=northvale,
        south=south,
        teachers=teachers,
        parents=parents,
        poll=poll,
        q_children=q_children,
        q_color=q_color,
        q_comment=q_comment,
        ana=ana,
        ben=ben,
        cara=cara,
        dan=dan,
        run1=run1,
        run2=run2,
        other_connection=other_conn,
        other_poll=other_poll,
        other_run=other_run,
    )


@pytest.fixture
def fake_rapidpro():
    """A running RapidPro API v2 double on localhost (see ``closedloop.polls.rapidpro_double``).

    ``fake_rapidpro.url`` is its base URL, ``fake_rapidpro.token`` the accepted API token,
    ``fake_rapidpro.state`` its data (contacts, groups, flows, runs, ...) to arrange and inspect.
    """
    from closedloop.polls.rapidpro_double import FakeRapidPro

    server = FakeRapidPro(seed=1)
    server.start()
    try:
        yield server
    finally:
        server.stop()
