"""Poll dashboard pages at scale (suite ``polls``).

On the poll world of :mod:`benchmarks.polls_charts` (full size: ~1,000,000 answers,
5,000 contacts, 200 panels, 50 poll runs, one poll of 10 questions), measures the
server side of the pages a browser opens — logged in with a session, HTML rendered —
as the median of N requests: polls home, poll list, poll detail over a year (the page
is the frame and the filters; each card's series and summary are one chart API call,
measured in ``polls_charts``), the map tab (server-rendered map data and table), poll-run
list, one poll run's summary / participation / responses tabs, and the full CSV and
XLSX exports of that poll run (~2,175 responses × 10 questions).
Targets: ≤ 1 s per page, ≤ 3 s per export.
"""

from __future__ import annotations

from typing import Any

from benchmarks.harness import Context, Measurement, median_of
from benchmarks.polls_charts import build

RUNS_MEDIAN = {"ci": 3, "full": 5}
PAGE_LIMIT = 1.0
EXPORT_LIMIT = 3.0
PLAIN_STATIC = "django.contrib.staticfiles.storage.StaticFilesStorage"


def _session(ctx: Context, role: str = "admin") -> Any:
    from django.test import Client

    from closedloop.accounts.models import Membership, User

    user = User.objects.create_user(f"pages-{role}@example.org", "bench-password")
    Membership.objects.create(account=ctx.account, user=user, role=role)
    client = Client()
    client.force_login(user)
    return client


def _read(response: Any) -> int:
    if getattr(response, "streaming", False):
        return sum(len(chunk) for chunk in response.streaming_content)
    return len(response.content)


def bench_pages(ctx: Context) -> list[Measurement]:
    from django.conf import settings
    from django.test.utils import override_settings

    # pages link static files; without collectstatic the manifest storage has no entries
    plain = {**settings.STORAGES, "staticfiles": {"BACKEND": PLAIN_STATIC}}
    with override_settings(STORAGES=plain):
        return _measure(ctx)


def _measure(ctx: Context) -> list[Measurement]:
    from django.urls import reverse

    info = build(ctx)
    client = _session(ctx)
    runs = RUNS_MEDIAN[ctx.size]
    poll, pollrun = info["poll"], info["pollrun"]
    year = "window=12m"
    detail = reverse("polls:pollrun_detail", args=[pollrun])
    cases: list[tuple[str, str, float]] = [
        ("home", reverse("polls:home"), PAGE_LIMIT),
        ("poll_list", reverse("polls:poll_list"), PAGE_LIMIT),
        ("poll_detail_year", reverse("polls:poll_detail", args=[poll]) + f"?{year}", PAGE_LIMIT),
        (
            "poll_detail_map",
            reverse("polls:poll_detail", args=[poll]) + f"?tab=map&{year}",
            PAGE_LIMIT,
        ),
        ("pollrun_list", reverse("polls:pollrun_list"), PAGE_LIMIT),
        ("pollrun_summary", detail, PAGE_LIMIT),
        ("pollrun_participation", detail + "?tab=participation", PAGE_LIMIT),
        ("pollrun_responses", detail + "?tab=responses", PAGE_LIMIT),
        ("export_csv", reverse("polls:pollrun_export", args=[pollrun, "csv"]), EXPORT_LIMIT),
        ("export_xlsx", reverse("polls:pollrun_export", args=[pollrun, "xlsx"]), EXPORT_LIMIT),
    ]
    extra = {"answers": info["answers"], "contacts": info["contacts"], "panels": info["panels"]}
    results: list[Measurement] = []
    for name, url, limit in cases:
        full_name = f"polls.page_{name}"
        target = f"≤ {int(limit * 1000)} ms median of {runs} at {info['answers']:,} answers"
        first = client.get(url)
        if first.status_code != 200:
            results.append(ctx.failed(full_name, target, f"GET {url} → {first.status_code}"))
            continue
        size = _read(first)
        seconds = median_of(runs, lambda url=url: _read(client.get(url)))
        results.append(ctx.measure(full_name, seconds, limit, target, url=url, bytes=size, **extra))
    return results


BENCHMARKS = {"pages": bench_pages}
