"""Setup and indicator pages at scale (suite ``polls``).

Reuses the poll world of :mod:`benchmarks.polls_charts` (full size: 5,000 contacts in 200
panels, 50 poll runs, ~1,000,000 answers). Measures, as medians through the real stack:
the setup page with its health panels, the wizard's panels step listing every group, saving
200 panel links in one post (each to another org unit, then back), the indicator page over
every answer (admin and a supervisor), the indicator XLSX export, and generating sandbox
sample data for every contact over 30 days.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from benchmarks.harness import Context, Measurement, median_of, timed
from benchmarks.polls_charts import RUNS_MEDIAN, build

PAGE_LIMIT = 0.300
SAVE_LIMIT = 2.0
SAMPLE_LIMIT = 5.0
SAMPLE_DAYS = 30
PLAIN_STATIC = "django.contrib.staticfiles.storage.StaticFilesStorage"


def _session(ctx: Context, role: str = "admin", scope: int | None = None) -> Any:
    from django.test import Client

    from closedloop.accounts.models import Membership, User
    from closedloop.core.tenancy import account_scope

    user = User.objects.create_user(f"setup-{role}-{scope}@example.org", "bench-password")
    membership = Membership.objects.create(account=ctx.account, user=user, role=role)
    if scope is not None:
        with account_scope(ctx.account):
            membership.scope.set([scope])
    client = Client()
    client.force_login(user)
    return client


def _ok(response: Any, status: int = 200) -> Any:
    if response.status_code != status:
        raise RuntimeError(f"{response.request['PATH_INFO']} answered {response.status_code}")
    return response


def _indicator(ctx: Context, info: dict[str, Any]) -> Any:
    from closedloop.core.tenancy import account_scope
    from closedloop.polls.models import Indicator, PollRun, Question

    with account_scope(ctx.account):
        days = PollRun.objects.filter(poll_id=info["poll"]).values_list("local_date", flat=True)
        question = Question.objects.get(pk=info["questions"]["numeric"])
        return Indicator.objects.create(
            account=ctx.account,
            name="Benchmark indicator",
            start_date=min(days),
            end_date=max(days),
            baseline_question=question,
            follow_up_question=question,
        )


def _panel_posts(ctx: Context) -> tuple[str, dict[str, str], dict[str, str]]:
    """The panels step URL and two posts: every panel moved to another unit, and back."""
    from django.urls import reverse

    from closedloop.core.tenancy import account_scope
    from closedloop.polls.models import Connection, ContactGroup, GroupRole

    with account_scope(ctx.account):
        connection = Connection.objects.get()
        panels = list(
            ContactGroup.objects.filter(role=GroupRole.PANEL).values_list("pk", "org_unit_id")
        )
    units = [unit for _pk, unit in panels]
    shifted = units[1:] + units[:1]
    back: dict[str, str] = {}
    moved: dict[str, str] = {}
    for (pk, unit), other in zip(panels, shifted, strict=True):
        for data, target in ((back, unit), (moved, other)):
            data[f"panel_{pk}"] = "1"
            data[f"unit_{pk}"] = str(target)
            data[f"mode_{pk}"] = "link"
    url = reverse("polls:connection_step", args=[connection.pk, "panels"])
    return url, moved, back


def bench_setup(ctx: Context) -> list[Measurement]:
    from django.conf import settings
    from django.test import override_settings
    from django.urls import reverse

    from closedloop.core.tenancy import account_scope
    from closedloop.polls import services
    from closedloop.polls.models import Contact, SampleAnswer

    info = build(ctx)
    runs = RUNS_MEDIAN[ctx.size]
    admin = _session(ctx)
    supervisor = _session(ctx, "supervisor", info["region"])
    indicator = _indicator(ctx, info)
    results: list[Measurement] = []
    extra = {"answers": info["answers"], "panels": info["panels"], "contacts": info["contacts"]}
    plain = {**settings.STORAGES, "staticfiles": {"BACKEND": PLAIN_STATIC}}
    url, moved, back = _panel_posts(ctx)
    pages = [
        ("setup_page", admin, reverse("polls:setup")),
        ("setup_panels_step", admin, url),
        ("indicator_page", admin, reverse("polls:indicator_detail", args=[indicator.pk])),
        (
            "indicator_page_supervisor",
            supervisor,
            reverse("polls:indicator_detail", args=[indicator.pk]),
        ),
        ("indicator_xlsx", admin, reverse("polls:indicator_export", args=[indicator.pk])),
    ]
    with override_settings(STORAGES=plain):
        for name, client, page in pages:
            _ok(client.get(page))  # warm up
            seconds = median_of(runs, lambda c=client, u=page: _ok(c.get(u)))
            results.append(ctx.measure(name, seconds, PAGE_LIMIT, "≤ 300 ms", **extra))
        seconds, _r = timed(lambda: _ok(admin.post(url, moved), 302))
        results.append(ctx.measure("setup_save_panels", seconds, SAVE_LIMIT, "≤ 2 s", **extra))
        seconds, _r = timed(lambda: _ok(admin.post(url, back), 302))
        results.append(ctx.measure("setup_save_panels_back", seconds, SAVE_LIMIT, "≤ 2 s", **extra))
    with account_scope(ctx.account):
        indicator.end_date = indicator.start_date + dt.timedelta(days=SAMPLE_DAYS + 1)
        indicator.save()
        contacts = Contact.objects.count()
        seconds, written = timed(
            lambda: services.sample_data_generate(
                indicator=indicator,
                minimum=0,
                maximum=10,
                contacts=contacts,
                days=SAMPLE_DAYS,
                seed=1,
            )
        )
        assert SampleAnswer.objects.count() == written
    results.append(
        ctx.measure(
            "sample_data_generate", seconds, SAMPLE_LIMIT, "≤ 5 s", rows=written, contacts=contacts
        )
    )
    return results


BENCHMARKS = {"setup": bench_setup}
