"""Benchmark ``polls_double``: the RapidPro double's own speed (no database work).

- ``polls.double_generate``: generating ``runs`` runs × 10 values (+ contacts) ≤ 5 s;
- ``polls.double_serve_runs``: paging through all of them over HTTP (``reverse=true``, 250
  per page, raw JSON) at ≥ 20,000 runs/s of the double's own request-handling time (first
  pass, so every run is encoded once); the wall time with HTTP and client-side parsing is
  reported alongside.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.harness import Context, Measurement

SIZES = {
    "ci": {"contacts": 500, "runs": 10_000},
    "full": {"contacts": 5_000, "runs": 100_000},
}
GENERATE_LIMIT = 5.0
SERVE_RATE = 20_000


def bench_double(ctx: Context) -> list[Measurement]:
    import requests

    from closedloop.polls.rapidpro_double import FakeRapidPro

    size = SIZES[ctx.size]
    server = FakeRapidPro(seed=21)
    start = time.perf_counter()
    counts = server.generate(
        contacts=size["contacts"],
        polls=1,
        questions=10,
        runs_per_poll=size["runs"],
        messages=False,
    )
    generate_seconds = time.perf_counter() - start
    served = [0.0]
    handle = server.handle

    def timed_handle(*args: Any, **kwargs: Any) -> Any:
        begin = time.perf_counter()
        try:
            return handle(*args, **kwargs)
        finally:
            served[0] += time.perf_counter() - begin

    server.handle = timed_handle  # type: ignore[method-assign]
    server.start()
    try:
        session = requests.Session()
        session.headers["Authorization"] = f"Token {server.token}"
        url: Any = f"{server.url}/api/v2/runs.json?reverse=true"
        count = pages = 0
        start = time.perf_counter()
        while url:
            page = session.get(url).json()
            count += len(page["results"])
            pages += 1
            url = page["next"]
        wall_seconds = time.perf_counter() - start
    finally:
        server.stop()
    return [
        ctx.measure(
            "polls.double_generate",
            generate_seconds,
            GENERATE_LIMIT * size["runs"] / 100_000,
            f"≤ {GENERATE_LIMIT:g} s per 100,000 runs × 10 values",
            runs=counts["runs"],
            contacts=counts["contacts"],
        ),
        ctx.measure(
            "polls.double_serve_runs",
            served[0],
            count / SERVE_RATE,
            f"≥ {SERVE_RATE:,} runs/s of the double's own time (pages of 250, first pass)",
            runs=count,
            pages=pages,
            rate_runs_per_s=round(count / max(served[0], 1e-9)),
            wall_seconds_with_http_and_client_parse=round(wall_seconds, 3),
        ),
    ]


BENCHMARKS = {"polls_double": bench_double}
