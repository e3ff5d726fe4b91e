"""Feedback data operations: upload a CSV into a new workflow, merge new columns into it.

- ``upload``: a 100,000-row × 20-column CSV (text, integers, doubles, booleans, ISO
  datetimes) parsed, typed and loaded into a new workflow — target ≤ 3 s.
- ``merge``: an outer merge of 100,000 rows adding 5 columns into that table — ≤ 3 s.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from typing import Any

from benchmarks.harness import Context, Measurement, timed

SIZES = {"ci": 5_000, "full": 100_000}
TARGET_SECONDS = 3.0


def make_user(ctx: Context) -> Any:
    from closedloop.accounts.models import Membership, Role, User

    user = User.objects.create(email=f"bench-{ctx.account.pk}@example.org", full_name="Bench")
    Membership.objects.create(account=ctx.account, user=user, role=Role.ADMIN)
    return user


def learners_csv(rows: int, seed: int = 7) -> bytes:
    """20 columns: email key, names, 6 integers, 6 doubles, 2 booleans, 3 datetimes."""
    rng = random.Random(seed)
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    header = (
        ["email", "first name", "last name"]
        + [f"quiz {i}" for i in range(1, 7)]
        + [f"score {i}" for i in range(1, 7)]
        + ["passed", "active"]
        + ["submitted", "last login", "enrolled"]
    )
    lines = [",".join(header)]
    for i in range(rows):
        ints = [str(rng.randint(0, 100)) for _ in range(6)]
        doubles = [f"{rng.uniform(0, 100):.2f}" if rng.random() > 0.02 else "" for _ in range(6)]
        bools = ["true" if rng.random() > 0.5 else "false" for _ in range(2)]
        times = [
            (start + dt.timedelta(minutes=rng.randint(0, 500_000))).isoformat(),
            (start + dt.timedelta(seconds=rng.randint(0, 30_000_000))).strftime(
                "%Y-%m-%d %H:%M:%S"
            ),
            (start + dt.timedelta(days=rng.randint(0, 300))).strftime("%Y-%m-%d"),
        ]
        first = f"First{i % 997}"
        last = f"Last{i % 1009}"
        lines.append(
            ",".join([f"learner{i}@example.org", first, last, *ints, *doubles, *bools, *times])
        )
    return ("\n".join(lines) + "\n").encode()


def extra_columns_csv(rows: int, seed: int = 11) -> bytes:
    """The same learners (plus 1 % new ones) with 5 new columns."""
    rng = random.Random(seed)
    lines = ["email,midterm,forum posts,videos watched,grade,late"]
    for i in range(rows):
        n = i if rng.random() > 0.01 else rows + i
        lines.append(
            f"learner{n}@example.org,{rng.uniform(0, 20):.1f},{rng.randint(0, 40)},"
            f"{rng.randint(0, 12)},{rng.choice('ABCDF')},{'true' if rng.random() > 0.8 else 'false'}"
        )
    return ("\n".join(lines) + "\n").encode()


def upload(ctx: Context, user: Any, data: bytes, name: str) -> tuple[Any, float, float]:
    from closedloop.feedback import services
    from closedloop.feedback.dataops.merge import load_frame
    from closedloop.feedback.dataops.sources import parse_csv

    workflow = services.workflow_create(account=ctx.account, actor=user, name=name)
    parse_seconds, parsed = timed(lambda: parse_csv(data))
    load_seconds, _columns = timed(
        lambda: load_frame(
            workflow=workflow,
            actor=user,
            frame=parsed.frame,
            keys=["email"],
            types=parsed.types,
            row_numbers=parsed.row_numbers,
        )
    )
    return workflow, parse_seconds, load_seconds


def bench_upload(ctx: Context) -> list[Measurement]:
    from closedloop.core.tenancy import account_scope

    rows = SIZES[ctx.size]
    data = learners_csv(rows)
    with account_scope(ctx.account):
        user = make_user(ctx)
        upload(ctx, user, learners_csv(500, seed=1), "warm-up")
        seconds, (workflow, parse_s, load_s) = timed(lambda: upload(ctx, user, data, "Upload"))
        workflow.refresh_from_db()
    return [
        ctx.measure(
            "feedback.upload_csv",
            seconds,
            TARGET_SECONDS,
            "≤ 3 s for a 100,000-row × 20-column CSV into a new workflow",
            rows=workflow.nrows,
            columns=workflow.ncols,
            megabytes=round(len(data) / 1e6, 1),
            parse_seconds=round(parse_s, 3),
            load_seconds=round(load_s, 3),
        )
    ]


def bench_merge(ctx: Context) -> list[Measurement]:
    from closedloop.core.tenancy import account_scope
    from closedloop.feedback.dataops.merge import merge_frame
    from closedloop.feedback.dataops.sources import parse_csv

    rows = SIZES[ctx.size]
    with account_scope(ctx.account):
        user = make_user(ctx)
        workflow, _p, _l = upload(ctx, user, learners_csv(rows), "Merge")
        extra = extra_columns_csv(rows)

        def run() -> Any:
            parsed = parse_csv(extra)
            return merge_frame(
                workflow=workflow,
                actor=user,
                frame=parsed.frame,
                types=parsed.types,
                how="outer",
                left_on="email",
                right_on="email",
                row_numbers=parsed.row_numbers,
            )

        seconds, result = timed(run)
        workflow.refresh_from_db()
    return [
        ctx.measure(
            "feedback.merge_outer",
            seconds,
            TARGET_SECONDS,
            "≤ 3 s for an outer merge of 100,000 rows adding 5 columns",
            rows=workflow.nrows,
            columns=workflow.ncols,
            added=result.added,
            updated=result.updated,
            unchanged=result.unchanged,
        )
    ]


BENCHMARKS: dict[str, Callable[[Any], list[Any]]] = {
    "upload": bench_upload,
    "merge": bench_merge,
}
