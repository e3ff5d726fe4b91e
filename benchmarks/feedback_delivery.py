"""Feedback delivery: the outbox sending personalized emails to a local SMTP server.

- ``deliver``: 10,000 queued emails (full size) sent by ``outbox.deliver_run`` to an
  aiosmtpd server running in its own process (as a real mail server would) — one persistent SMTP
  connection per batch, claims of 200 rows, one commit per message marked sent.
  Target ≥ 1,000 messages/s. Also reported: the time to render and queue the run
  (``runs.queue_messages``: render + bulk insert of the delivery rows).
"""

from __future__ import annotations

import multiprocessing
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from benchmarks.harness import Context, Measurement

SIZES = {"ci": 1_000, "full": 10_000}
TARGET_RATE = 1_000


class _Counter:
    def __init__(self, shared: Any) -> None:
        self.shared = shared

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.shared.get_lock():
            self.shared.value += 1
        return "250 OK"


def _serve(port: int, shared: Any, ready: Any) -> None:
    """The SMTP server process: counts the messages it accepts until terminated."""
    import logging

    from aiosmtpd.controller import Controller

    logging.getLogger("mail.log").setLevel(logging.WARNING)
    controller = Controller(_Counter(shared), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    threading.Event().wait()


class _SmtpProcess:
    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.port = _free_port()
        self.shared = context.Value("i", 0)
        ready = context.Event()
        self.process = context.Process(
            target=_serve, args=(self.port, self.shared, ready), daemon=True
        )
        self.process.start()
        if not ready.wait(30):
            raise RuntimeError("the SMTP server process did not start")

    @property
    def count(self) -> int:
        return int(self.shared.value)

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_deliver(ctx: Context) -> list[Measurement]:
    import polars as pl
    from django.conf import settings

    from closedloop.accounts.models import User
    from closedloop.core.tenancy import account_scope
    from closedloop.feedback import actions, outbox, runs, services
    from closedloop.feedback.models import ActionRun, Delivery

    total = SIZES[ctx.size]
    handler = controller = _SmtpProcess()
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.EMAIL_OUTBOX_ONLY = False
    settings.EMAIL_BURST = 0
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = ""
    try:
        user = User.objects.create(
            email=f"bench-delivery-{ctx.account.pk}@example.org", full_name="B"
        )
        frame = pl.DataFrame(
            {
                "email": [f"learner{i}@example.org" for i in range(total)],
                "name": [f"Learner {i}" for i in range(total)],
                "score": [float(i % 100) for i in range(total)],
            }
        )
        with account_scope(ctx.account):
            workflow = services.workflow_create(
                account=ctx.account, actor=user, name="Delivery bench"
            )
            services.table_load(workflow=workflow, actor=user, frame=frame, keys=["email"],
                                types={"email": "string", "name": "string", "score": "double"})  # fmt: skip
            action = actions.action_create(
                workflow=workflow,
                actor=user,
                name="Mail",
                action_type="email",
                subject="{{ name }}: your results",
                text_content="<p>Dear {{ name }},</p><p>your score is {{ score }}.</p>",
            )
            run = ActionRun.objects.create(
                account=ctx.account, action=action, started_by=user, options={"item_column": "email", "html_only": True},
            )  # fmt: skip
            start = time.perf_counter()
            queued = runs.queue_messages(run)
            queue_seconds = time.perf_counter() - start
            assert queued == total, queued
        start = time.perf_counter()
        result = outbox.deliver_run(run.pk, worker="bench")
        seconds = time.perf_counter() - start
        with account_scope(ctx.account):
            counts = outbox.run_counts(run.pk)
            sent = Delivery.objects.filter(run=run, status="sent").count()
    finally:
        controller.stop()
    assert result.sent == sent == total == handler.count, (result, sent, handler.count)
    measurement = ctx.measure(
        "deliver",
        seconds,
        total / TARGET_RATE,
        f">= {TARGET_RATE:,} messages/s ({total:,} emails to a local SMTP server)",
        messages=total,
        received_by_server=handler.count,
        failed=counts["failed"],
        queue_seconds=round(queue_seconds, 3),
    )
    measurement.rate = round(total / seconds)
    measurement.unit = "messages/s"
    return [measurement]


BENCHMARKS: dict[str, Callable[[Any], list[Any]]] = {"deliver": bench_deliver}
