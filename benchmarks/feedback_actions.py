"""Feedback actions: rendering personalized emails.

- ``render``: ``render.iter_messages`` over a 100,000-row table (full size) for an email
  action with a subject, 6 inserted values and 5 conditions (decided in the same SELECT as
  ``CASE WHEN`` columns, streamed in batches of 2,000) — target ≥ 20,000 messages/s.
  Also reported: the share of the time spent in the SELECTs vs the template rendering.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from benchmarks.harness import Context, Measurement

SIZES = {"ci": 5_000, "full": 100_000}
TARGET_RATE = 20_000

TEXT = """<p>Dear {{ name }},</p>
<p>Your score on quiz 1 was {{ quiz 1 }} and your overall score {{ score 1 }}.</p>
{% if Low %}<p>Please book a session with your tutor in group {{ group }}.</p>{% endif %}
{% if High %}<p>Excellent work — consider the advanced track.</p>{% elif Middle %}<p>Solid progress.</p>{% endif %}
{% if Inactive %}<p>We have not seen you online since {{ last login }}.</p>{% else %}<p>Thanks for staying active.</p>{% endif %}
{% if Failed quiz %}<p>Retake quiz 2 before Friday.</p>{% endif %}
<p>Regards,<br>{{ course }}</p>"""


def _rule(field: str, operator: str, value: Any) -> dict[str, Any]:
    return {"id": field, "field": field, "type": "", "operator": operator, "value": value}


def _group(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"condition": "AND", "not": False, "valid": True, "rules": list(rules)}


CONDITIONS = {
    "Low": _group(_rule("score 1", "less", 40)),
    "High": _group(_rule("score 1", "greater_or_equal", 85)),
    "Middle": _group(_rule("score 1", "between", [60, 85])),
    "Inactive": _group(_rule("active", "equal", False)),
    "Failed quiz": _group(_rule("quiz 2", "less", 50), _rule("passed", "equal", False)),
}


def bench_render(ctx: Context) -> list[Measurement]:
    from benchmarks.feedback_filters import learners_frame
    from closedloop.accounts.models import User
    from closedloop.core.tenancy import account_scope
    from closedloop.feedback import actions, filters, render, services

    rows = SIZES[ctx.size]
    user = User.objects.create(email=f"bench-actions-{ctx.account.pk}@example.org", full_name="B")
    frame, types = learners_frame(rows, seed=5)
    with account_scope(ctx.account):
        workflow = services.workflow_create(
            account=ctx.account,
            actor=user,
            name="Render bench",
            attributes={"course": "Biology 101"},
        )
        services.table_load(workflow=workflow, actor=user, frame=frame, keys=["email"], types=types)
        workflow.refresh_from_db()
        action = actions.action_create(
            workflow=workflow,
            actor=user,
            name="Mail",
            action_type="email",
            subject="{{ name }}: your results",
        )
        for name, formula in CONDITIONS.items():
            filters.condition_create(action=action, actor=user, name=name, formula=formula)
        actions.action_update(action=action, actor=user, text_content=TEXT)

        def run() -> tuple[int, int]:
            count = length = 0
            for message in render.iter_messages(action, options={"with_text": False}):
                count += 1
                length += len(message.body)
            return count, length

        run()  # warm up (imports, statement caches)
        best = None
        for _ in range(3):
            start = time.perf_counter()
            count, length = run()
            seconds = time.perf_counter() - start
            best = seconds if best is None else min(best, seconds)
        assert best is not None
        prepared = render.prepare(action)
        start = time.perf_counter()
        fetched = 0
        for batch_start in range(0, rows, 2000):
            fetched += len(
                render._fetch(
                    prepared, where=f"{render.ROW_ID} > %s", params=[batch_start], limit=2000
                )
            )
        select_seconds = time.perf_counter() - start
    rate = count / best
    measurement = ctx.measure(
        "render",
        best,
        count / TARGET_RATE,
        f">= {TARGET_RATE:,} messages/s ({rows:,} emails, 5 conditions)",
        messages=count,
        avg_body_chars=round(length / max(count, 1)),
        select_seconds=round(select_seconds, 3),
    )
    measurement.rate = round(rate)
    measurement.unit = "messages/s"
    return [measurement]


BENCHMARKS: dict[str, Callable[[Any], list[Any]]] = {"render": bench_render}
