"""Feedback table page: a sorted and searched page of a 100,000-row × 20-column table.

- ``table_page``: median time of a logged-in GET of the table page (Django test client,
  the whole stack: middleware, access checks, count, page query, template) sorted by a
  column AND searched with a term — target ≤ 100 ms at full size. Also reported:
  ``fetch_rows`` alone and the matching-row count alone (the two queries of the page).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from typing import Any

from benchmarks.harness import Context, Measurement, median_of, timed

SIZES = {"ci": 5_000, "full": 100_000}
TARGET_SECONDS = 0.100
RUNS = 15
SEARCH = "first12"  # First12, First120..First129 in the name column: ~1 % of rows


def learners_frame(rows: int, seed: int = 7) -> Any:
    """20 columns: email key, names, 6 integers, 6 doubles, 2 booleans, 3 datetimes."""
    import polars as pl

    rng = random.Random(seed)
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    data: dict[str, list[Any]] = {
        "email": [f"learner{i}@example.org" for i in range(rows)],
        "first name": [f"First{i % 997}" for i in range(rows)],
        "last name": [f"Last{i % 1009}" for i in range(rows)],
    }
    for n in range(1, 7):
        data[f"quiz {n}"] = [rng.randint(0, 100) for _ in range(rows)]
    for n in range(1, 7):
        data[f"score {n}"] = [
            round(rng.uniform(0, 100), 2) if rng.random() > 0.02 else None for _ in range(rows)
        ]
    data["passed"] = [rng.random() > 0.5 for _ in range(rows)]
    data["active"] = [rng.random() > 0.2 for _ in range(rows)]
    for name in ("submitted", "last login", "enrolled"):
        data[name] = [start + dt.timedelta(minutes=rng.randint(0, 500_000)) for _ in range(rows)]
    types = {"email": "string", "first name": "string", "last name": "string"}
    types |= {f"quiz {n}": "integer" for n in range(1, 7)}
    types |= {f"score {n}": "double" for n in range(1, 7)}
    types |= {"passed": "boolean", "active": "boolean"}
    types |= {"submitted": "datetime", "last login": "datetime", "enrolled": "datetime"}
    frame = pl.DataFrame(
        data,
        schema_overrides={
            k: pl.Datetime("us", "UTC") for k in ("submitted", "last login", "enrolled")
        },
    )
    return frame, types


def _plain_static_files() -> None:
    """Pages link static files by name; no collected manifest is needed to time them."""
    from django.conf import settings
    from django.test.utils import override_settings

    storages = dict(settings.STORAGES)
    storages["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    override_settings(STORAGES=storages).enable()


def bench_table_page(ctx: Context) -> list[Measurement]:
    from django.test import Client
    from django.test.utils import setup_test_environment
    from django.urls import reverse

    from closedloop.accounts.models import Membership, Role, User
    from closedloop.core.tenancy import account_scope
    from closedloop.feedback import selectors, services
    from closedloop.feedback import table as tbl
    from closedloop.feedback.views_table import PAGE_SIZE

    setup_test_environment()
    _plain_static_files()
    rows = SIZES[ctx.size]
    user = User.objects.create(email=f"bench-table-{ctx.account.pk}@example.org", full_name="B")
    Membership.objects.create(account=ctx.account, user=user, role=Role.ADMIN)
    frame, types = learners_frame(rows)
    with account_scope(ctx.account):
        workflow = services.workflow_create(account=ctx.account, actor=user, name="Big course")
        load_seconds, _cols = timed(
            lambda: services.table_load(
                workflow=workflow, actor=user, frame=frame, keys=["email"], types=types
            )
        )
        columns = selectors.columns_of(workflow)
        sort = next(c for c in columns if c.name == "score 3")

        def fetch() -> list[dict[str, Any]]:
            return tbl.fetch_rows(
                workflow, columns, order_by=sort, search=SEARCH, offset=0, limit=PAGE_SIZE
            )

        def count() -> int:
            where, params = tbl.search_sql(columns, SEARCH)
            return tbl.count_rows(workflow, where=where, params=params)

        fetch()
        matching = count()
        fetch_seconds = median_of(RUNS, fetch)
        count_seconds = median_of(RUNS, count)
        sorted_only = median_of(
            RUNS,
            lambda: tbl.fetch_rows(workflow, columns, order_by=sort, offset=0, limit=PAGE_SIZE),
        )
        deep_sorted = median_of(
            RUNS,
            lambda: tbl.fetch_rows(
                workflow, columns, order_by=sort, offset=rows // 2, limit=PAGE_SIZE
            ),
        )

    client = Client()
    client.force_login(user)
    url = reverse("feedback:table", args=[workflow.pk]) + f"?sort={sort.pk}&q={SEARCH}"

    def get() -> None:
        response = client.get(url)
        assert response.status_code == 200, response.status_code
        assert b'data-testid="data-row"' in response.content

    get()
    page_seconds = median_of(RUNS, get)
    plain_url = reverse("feedback:table", args=[workflow.pk]) + f"?sort={sort.pk}&page=1000"
    plain_seconds = median_of(RUNS, lambda: client.get(plain_url))
    return [
        ctx.measure(
            "feedback.table_page",
            page_seconds,
            TARGET_SECONDS,
            f"sorted + searched table page at {rows:,} rows <= 100 ms",
            rows=rows,
            columns=len(columns),
            matching_rows=matching,
            fetch_rows_seconds=round(fetch_seconds, 4),
            count_seconds=round(count_seconds, 4),
            fetch_sorted_only_seconds=round(sorted_only, 4),
            fetch_sorted_deep_page_seconds=round(deep_sorted, 4),
            page_sorted_deep_seconds=round(plain_seconds, 4),
            load_seconds=round(load_seconds, 3),
        ),
        ctx.measure(
            "feedback.table_fetch_rows",
            fetch_seconds,
            TARGET_SECONDS,
            "fetch_rows alone (sorted + searched, first page)",
            rows=rows,
        ),
    ]


BENCHMARKS: dict[str, Callable[[Any], list[Any]]] = {"table_page": bench_table_page}
