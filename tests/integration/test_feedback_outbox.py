"""A real Celery worker (Redis broker) sending a feedback run to a real SMTP server is
killed with SIGKILL mid-run and restarted: every message reaches the server at most
once, and every message still queued is delivered by the new worker."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from .conftest import Install, free_port, stop, wait_for
from .test_worker import start_worker

pytestmark = pytest.mark.integration

MESSAGES = 300
MESSAGE_ID = re.compile(rb"Message-ID: <delivery-(\d+)\.", re.IGNORECASE)


class SlowServer:
    """Accepts every message after a short pause, so the run lasts a few seconds."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        await asyncio.sleep(0.02)
        found = MESSAGE_ID.search(bytes(envelope.original_content or envelope.content))
        with self.lock:
            self.ids.append(int(found.group(1)) if found else -1)
        return "250 OK"


@pytest.fixture
def smtp() -> Any:
    handler = SlowServer()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield handler, controller.port
    finally:
        controller.stop()


SETUP = """
import polars as pl
from django.db import transaction
from closedloop.accounts.models import Account, Membership, Role, User
from closedloop.core.tenancy import account_scope
from closedloop.feedback import services
from closedloop.feedback.actions import action_create
from closedloop.feedback.runs import start_run

account, _ = Account.objects.get_or_create(slug="itest", defaults={{"name": "Integration"}})
user = User.objects.create_user("teacher@example.org", "pw-12345678")
Membership.objects.create(account=account, user=user, role=Role.ADMIN)
with account_scope(account):
    workflow = services.workflow_create(account=account, actor=user, name="Course")
    frame = pl.DataFrame({{"email": [f"s{{i}}@example.org" for i in range({n})],
                          "name": [f"Student {{i}}" for i in range({n})]}})
    services.table_load(workflow=workflow, actor=user, frame=frame, keys=["email"],
                        types={{"email": "string", "name": "string"}})
    action = action_create(workflow=workflow, actor=user, name="Feedback", action_type="email",
                           text_content="<p>Hello {{{{ name }}}}</p>", subject="Feedback")
    with transaction.atomic():
        run = start_run(action=action, actor=user, options={{"item_column": "email"}})
print(run.pk)
"""


def run_row(install: Install, run_id: int) -> tuple[str, int]:
    row = install.query("SELECT status, total FROM feedback_actionrun WHERE id = ?", run_id)[0]
    return str(row[0]), int(row[1])


def delivery_rows(install: Install, run_id: int) -> dict[int, tuple[str, str]]:
    rows = install.query("SELECT id, status, error FROM feedback_delivery WHERE run_id = ?", run_id)
    return {int(i): (str(s), str(e)) for i, s, e in rows}


def test_a_killed_worker_resumes_without_duplicates(make_install, redis_url, smtp, tmp_path: Path):
    handler, port = smtp
    install = make_install(
        REDIS_URL=redis_url,
        CELERY_BROKER_URL=redis_url,
        WORKER_HEARTBEAT_SECONDS="1",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(port),
        EMAIL_OUTBOX_ONLY="False",
        EMAIL_BURST="0",
    )
    log = tmp_path / "worker.log"
    worker = start_worker(install, log)
    try:
        run_id = int(install.django(SETUP.format(n=MESSAGES)).strip().splitlines()[-1])
        wait_for(lambda: len(handler.ids) >= 40, 90, "the first messages to arrive")
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        arrived_before = len(handler.ids)
        assert arrived_before < MESSAGES, "the run finished before the worker could be killed"
        status, total = run_row(install, run_id)
        assert status == "sending" and total == MESSAGES

        worker = start_worker(install, log)
        wait_for(
            lambda: run_row(install, run_id)[0] == "done",
            120,
            "the run to finish after the restart",
        )

        deliveries = delivery_rows(install, run_id)
        counts = Counter(handler.ids)
        duplicates = [i for i, n in counts.items() if n > 1]
        assert duplicates == [], f"sent twice: {duplicates}"
        assert len(deliveries) == MESSAGES
        sent = {i for i, (s, _e) in deliveries.items() if s == "sent"}
        failed = {i: e for i, (s, e) in deliveries.items() if s == "failed"}
        # at most the one message in flight when the worker died is failed, not resent
        assert len(failed) <= 1
        assert all("not retried automatically" in e for e in failed.values())
        assert sent | set(failed) == set(deliveries)
        assert sent <= set(counts), "a message marked sent never reached the server"
        assert set(counts) - sent <= set(failed)
        assert len(handler.ids) > arrived_before  # the new worker delivered the rest
    except BaseException:
        print(log.read_text()[-6000:])
        raise
    finally:
        stop(worker)
