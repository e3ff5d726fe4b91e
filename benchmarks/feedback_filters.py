"""Feedback filters: counting the rows of a 3-rule filter over a 100,000 × 20 table.

- ``filter_count``: median of 20 ``conditions.count_matching`` calls (load the columns,
  compile the formula, one ``COUNT(*)`` over the table) for
  ``quiz 1 >= 50 AND (score 2 < 70 OR name contains "7") AND passed = true`` — target
  ≤ 100 ms at full size. Also reported: ``refresh_counts`` of 20 filters and 20 conditions
  at once (one SELECT with a SUM(CASE …) each).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from typing import Any

from benchmarks.harness import Context, Measurement, median_of, timed

SIZES = {"ci": 5_000, "full": 100_000}
TARGET_SECONDS = 0.100
RUNS = 20


def learners_frame(rows: int, seed: int = 11) -> tuple[Any, dict[str, str]]:
    """20 columns: email key, 2 texts, 6 integers, 6 doubles, 2 booleans, 3 datetimes."""
    import polars as pl

    rng = random.Random(seed)
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    data: dict[str, list[Any]] = {
        "email": [f"learner{i}@example.org" for i in range(rows)],
        "name": [f"Learner {i % 997}" for i in range(rows)],
        "group": [f"G{i % 12}" for i in range(rows)],
    }
    types = {"email": "string", "name": "string", "group": "string"}
    for n in range(1, 7):
        data[f"quiz {n}"] = [rng.randint(0, 100) for _ in range(rows)]
        types[f"quiz {n}"] = "integer"
    for n in range(1, 7):
        data[f"score {n}"] = [
            round(rng.uniform(0, 100), 2) if rng.random() > 0.05 else None for _ in range(rows)
        ]
        types[f"score {n}"] = "double"
    for name in ("passed", "active"):
        data[name] = [rng.random() > 0.5 if rng.random() > 0.02 else None for _ in range(rows)]
        types[name] = "boolean"
    for name in ("submitted", "last login", "enrolled"):
        data[name] = [start + dt.timedelta(minutes=rng.randint(0, 500_000)) for _ in range(rows)]
        types[name] = "datetime"
    schema = {k: pl.Datetime("us", "UTC") for k in ("submitted", "last login", "enrolled")}
    return pl.DataFrame(data, schema_overrides=schema), types


def rule(field: str, operator: str, value: Any) -> dict[str, Any]:
    return {
        "id": field,
        "field": field,
        "type": "",
        "input": "",
        "operator": operator,
        "value": value,
    }


FORMULA = {
    "condition": "AND",
    "not": False,
    "valid": True,
    "rules": [
        rule("quiz 1", "greater_or_equal", 50),
        {
            "condition": "OR",
            "not": False,
            "rules": [rule("score 2", "less", "70"), rule("name", "contains", "7")],
        },
        rule("passed", "equal", True),
    ],
}


def bench_filter_count(ctx: Context) -> list[Measurement]:
    from closedloop.accounts.models import User
    from closedloop.core.tenancy import account_scope
    from closedloop.feedback import conditions, services
    from closedloop.feedback.models import Action, Condition, Filter

    rows = SIZES[ctx.size]
    user = User.objects.create(email=f"bench-filters-{ctx.account.pk}@example.org", full_name="B")
    frame, types = learners_frame(rows)
    with account_scope(ctx.account):
        workflow = services.workflow_create(account=ctx.account, actor=user, name="Filters bench")
        load_seconds, _ = timed(
            lambda: services.table_load(
                workflow=workflow, actor=user, frame=frame, keys=["email"], types=types
            )
        )
        workflow.refresh_from_db()
        matching = conditions.count_matching(workflow, FORMULA)
        seconds = median_of(RUNS, lambda: conditions.count_matching(workflow, FORMULA))

        # many filters and conditions recounted in one statement
        action = Action.objects.create(
            account=ctx.account, workflow=workflow, name="Mail", action_type="email"
        )
        for i in range(20):
            formula = {
                "condition": "AND",
                "rules": [rule("quiz 2", "greater", i * 5), rule("active", "equal", True)],
            }
            Filter.objects.create(
                account=ctx.account, workflow=workflow, name=f"f{i}", formula=formula
            )
            Condition.objects.create(
                account=ctx.account, action=action, name=f"c{i}", formula=FORMULA, position=i
            )
        refresh_seconds = median_of(5, lambda: conditions.refresh_counts(workflow))
    return [
        ctx.measure(
            "filter_count",
            seconds,
            TARGET_SECONDS,
            "≤ 100 ms for a 3-rule filter at 100,000 rows",
            rows=rows,
            columns=frame.width,
            matching=matching,
            runs=RUNS,
            table_load_seconds=round(load_seconds, 3),
            refresh_counts_40_items_seconds=round(refresh_seconds, 4),
        )
    ]


BENCHMARKS: dict[str, Callable[[Context], list[Measurement]]] = {
    "filter_count": bench_filter_count,
}
