"""Fixtures shared by the feedback tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

import polars as pl
import pytest

UTC = dt.UTC


def learners() -> dict[str, list[Any]]:
    """Six learners: email (key), name, score (double, one NULL), attempts (integer),
    passed (boolean, one NULL), submitted (datetime, UTC)."""
    return {
        "email": [
            "ana@example.org",
            "ben@example.org",
            "chloe@example.org",
            "dan@example.org",
            "eve@example.org",
            "femi@example.org",
        ],
        "name": ["Ana", "Ben", "Chloé", "Dan", "Eve", "Femi"],
        "score": [91.5, 48.0, 75.25, None, 62.0, 30.5],
        "attempts": [1, 3, 2, 0, 2, 4],
        "passed": [True, False, True, None, True, False],
        "submitted": [
            dt.datetime(2024, 3, 1, 9, 0, tzinfo=UTC),
            dt.datetime(2024, 3, 2, 14, 30, tzinfo=UTC),
            dt.datetime(2024, 3, 3, 8, 15, 30, tzinfo=UTC),
            dt.datetime(2024, 3, 4, 23, 59, 59, tzinfo=UTC),
            dt.datetime(2024, 3, 5, 12, 0, tzinfo=UTC),
            dt.datetime(2024, 3, 6, 7, 45, tzinfo=UTC),
        ],
    }


LEARNER_TYPES = {
    "email": "string",
    "name": "string",
    "score": "double",
    "attempts": "integer",
    "passed": "boolean",
    "submitted": "datetime",
}


def _utc(values: list[Any]) -> list[Any]:
    """Aware datetimes in different zones as UTC (Polars wants one zone per column)."""
    return [
        v.astimezone(UTC) if isinstance(v, dt.datetime) and v.tzinfo is not None else v
        for v in values
    ]


@pytest.fixture
def make_workflow(world: Any) -> Callable[..., Any]:
    """``make_workflow(name="Course", data=None, keys=("email",), owner=None, account=None,
    types=None)``: a workflow with a loaded table (default: the six learners above)."""
    from closedloop.core.tenancy import account_scope
    from closedloop.feedback import services

    def make(
        name: str = "Course",
        data: dict[str, list[Any]] | None = None,
        keys: Sequence[str] = ("email",),
        owner: Any = None,
        account: Any = None,
        types: dict[str, str] | None = None,
    ) -> Any:
        account = account or world.account
        owner = owner or world.alice
        if data is None:
            data = learners()
            types = {**LEARNER_TYPES, **(types or {})}
        frame = pl.DataFrame({k: _utc(v) for k, v in data.items()}, strict=False)
        with account_scope(account):
            workflow = services.workflow_create(account=account, actor=owner, name=name)
            if frame.width:
                services.table_load(
                    workflow=workflow, actor=owner, frame=frame, keys=list(keys), types=types
                )
            workflow.refresh_from_db()
        return workflow

    return make


@pytest.fixture
def shared_course(world, make_workflow):
    """Alice's course, shared with Sam (editor) and Bob (viewer)."""
    from closedloop.core.tenancy import account_scope
    from closedloop.feedback import services

    workflow = make_workflow()
    with account_scope(world.account):
        services.workflow_share(
            workflow=workflow, actor=world.alice, email=world.sam.email, role="editor"
        )
        services.workflow_share(
            workflow=workflow, actor=world.alice, email=world.bob.email, role="viewer"
        )
    return workflow


def login(user):
    """A Django test client logged in as ``user`` (several per test, unlike client_for)."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client
