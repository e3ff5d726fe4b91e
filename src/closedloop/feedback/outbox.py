"""The outbox: every message is a :class:`Delivery` row before anything is sent.

Workers claim queued rows with a conditional UPDATE (``queued`` and due → ``sending``
with a claim token), send them through the run's channel in id order, and mark each
one ``sent`` in its own commit, so a crash never loses the fact that a message left.
Failures are retried with exponential back-off; permanent ones fail at once.

Crash-resume without duplicates: the rows of a dead worker's claim that are still
``sending`` were never started, except the first (lowest id) — the one that was in
flight. That one is failed with a note instead of being resent (it may have reached
the server); the rest go back to ``queued`` for the next worker.

Bursts (``EMAIL_BURST`` messages, then ``EMAIL_BURST_PAUSE`` seconds) are not slept
in the worker: :func:`deliver_run` stops and tells its task when to resume. One sender
at a time per run holds the run's lease, so bursts and pauses hold across workers.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Exists, F, Min, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from closedloop.core.crypto import SecretUnreadable, decrypt
from closedloop.core.tenancy import account_scope, scopes_disabled
from closedloop.feedback import channels as ch
from closedloop.feedback.models import (
    ActionRun,
    ActionType,
    Channel,
    Delivery,
    DeliveryStatus,
    RunStatus,
)

logger = logging.getLogger("closedloop.feedback.outbox")

CLAIM_BATCH = 200
#: a ``sending`` row older than this with no live worker behind it is stale
STALE_CLAIM_SECONDS = 600
INTERRUPTED = _(
    "Interrupted while sending; not retried automatically to avoid a duplicate — "
    "re-send it if needed."
)
PROGRESS_EVERY = 0.5
LEASE_RENEW_EVERY = 5.0


def lease_seconds() -> int:
    """How long a sender's lease on a run lasts without renewal."""
    return max(15, 3 * int(settings.WORKER_HEARTBEAT_SECONDS))


def retry_delay(attempts: int) -> int:
    """Seconds before try ``attempts + 1`` (DELIVERY_RETRY_SECONDS, doubling)."""
    return int(settings.DELIVERY_RETRY_SECONDS) * 2 ** max(0, attempts - 1)


@dataclass
class DeliverResult:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    #: seconds after which a sender should continue (burst pause or next retry); None: done
    resume_in: float | None = None
    #: the lease to hand to the continuation
    lease: str = ""
    #: resuming after a burst pause (the lease is kept through the pause)
    pause: bool = False
    finished: bool = False
    skipped: bool = False


# --- counts -------------------------------------------------------------------------------


def run_counts(run: ActionRun | int) -> dict[str, int]:
    """queued / sending / sent / failed / cancelled / opened / total in one query."""
    run_id = getattr(run, "pk", run)
    return dict(Delivery.objects.filter(run_id=run_id).aggregate(**count_expressions()))


def count_expressions(prefix: str = "") -> dict[str, Any]:
    def n(**cond: Any) -> Any:
        return Count("id" if not prefix else f"{prefix}id", filter=Q(**cond))

    p = prefix
    return {
        "queued": n(**{f"{p}status": DeliveryStatus.QUEUED}),
        "sending": n(**{f"{p}status": DeliveryStatus.SENDING}),
        "sent": n(**{f"{p}status": DeliveryStatus.SENT}),
        "failed": n(**{f"{p}status": DeliveryStatus.FAILED}),
        "cancelled": n(**{f"{p}status": DeliveryStatus.CANCELLED}),
        "opened": n(**{f"{p}opened_at__isnull": False}),
        "total_rows": Count("id" if not p else f"{p}id"),
    }


# --- channels -----------------------------------------------------------------------------


def sender_address(run: ActionRun) -> str:
    if settings.EMAIL_OVERRIDE_FROM:
        return str(settings.EMAIL_OVERRIDE_FROM)
    user = run.started_by
    return user.email if user is not None and user.email else str(settings.DEFAULT_FROM_EMAIL)


def email_settings(run: ActionRun, *, plain: bool = False) -> ch.EmailSettings:
    options = run.options or {}
    return ch.EmailSettings(
        from_address=sender_address(run),
        cc=tuple(ch.split_addresses(options.get("cc") or "")[0]),
        bcc=tuple(ch.split_addresses(options.get("bcc") or "")[0]),
        html_only=bool(options.get("html_only", settings.EMAIL_HTML_ONLY)),
        track_read=bool(options.get("track_read")) and not plain,
        plain_text=plain,
    )


def channel_for(run: ActionRun) -> ch.Channel:
    action_type = run.action.action_type
    if action_type in (ActionType.EMAIL, ActionType.EMAIL_REPORT, ActionType.RUBRIC):
        conf = email_settings(run)
        return ch.ConsoleOutbox(conf) if settings.EMAIL_OUTBOX_ONLY else ch.SmtpChannel(conf)
    if action_type == ActionType.SMS:
        transport = settings.SMS_TRANSPORT
        if transport == "http":
            return ch.HttpSms()
        if transport == "email":
            if not settings.SMS_EMAIL_DOMAIN:
                return ch.Unavailable(_("SMS_EMAIL_DOMAIN is not set: no SMTP-to-SMS gateway."))
            conf = email_settings(run, plain=True)
            suffix = "@" + settings.SMS_EMAIL_DOMAIN.lstrip("@")
            if settings.EMAIL_OUTBOX_ONLY:
                return ch.ConsoleOutbox(conf, address_suffix=suffix)
            return ch.SmtpChannel(conf, address_suffix=suffix)
        if transport == "rapidpro":
            return ch.RapidProSms(run.account)
        return ch.Unavailable(_("SMS sending is turned off (SMS_TRANSPORT=none)."))
    if action_type in (ActionType.JSON, ActionType.JSON_REPORT):
        options = run.options or {}
        url = options.get("target_url") or run.action.target_url
        try:
            token = decrypt(options.get("token_encrypted") or run.action.token_encrypted)
        except SecretUnreadable:
            return ch.Unavailable(_("The bearer token cannot be read any more; enter it again."))
        return ch.JsonChannel(url, token)
    if action_type == ActionType.CANVAS_EMAIL:
        from closedloop.feedback.canvas import CanvasChannel

        return CanvasChannel(run)
    return ch.Unavailable(_("This action type does not send messages."))


def channel_kind(action_type: str) -> str:
    return {
        ActionType.SMS: Channel.SMS,
        ActionType.JSON: Channel.JSON,
        ActionType.JSON_REPORT: Channel.JSON,
        ActionType.CANVAS_EMAIL: Channel.CANVAS,
    }.get(action_type, Channel.EMAIL)  # type: ignore[call-overload]


def in_flight_size(channel: str) -> int:
    """How many claimed messages one provider call sends (all are in flight at a crash)."""
    if channel == Channel.SMS and settings.SMS_TRANSPORT == "rapidpro":
        return ch.RAPIDPRO_CHUNK
    return 1


# --- claiming and recording ---------------------------------------------------------------


def claim(run_id: int, *, limit: int, worker: str = "") -> list[Delivery]:
    """Claim up to ``limit`` due queued rows of a run; returns them in id order."""
    now = timezone.now()
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    ids = list(
        Delivery.objects.filter(run_id=run_id, status=DeliveryStatus.QUEUED)
        .filter(due)
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
    if not ids:
        return []
    token = uuid.uuid4().hex
    # the status condition makes the UPDATE the arbiter: a row goes to one claimer only
    got = Delivery.objects.filter(id__in=ids, status=DeliveryStatus.QUEUED).update(
        status=DeliveryStatus.SENDING, claim_token=token, claimed_at=now, claimed_by=worker[:200]
    )
    if not got:
        return []
    return list(
        Delivery.objects.filter(claim_token=token, status=DeliveryStatus.SENDING)
        .order_by("id")
        .only("id", "run_id", "recipient", "subject", "body", "extra", "attempts", "claim_token")
    )


def _outgoing(row: Delivery) -> ch.Outgoing:
    return ch.Outgoing(
        id=row.pk,
        run_id=row.run_id,
        recipient=row.recipient,
        subject=row.subject,
        body=row.body,
        extra=row.extra or {},
    )


def _mine(row: Delivery) -> Any:
    return Delivery.objects.filter(
        pk=row.pk, claim_token=row.claim_token, status=DeliveryStatus.SENDING
    )


def _mark_sent_sql() -> str:
    qn = connection.ops.quote_name
    return (
        f"UPDATE {qn(Delivery._meta.db_table)} SET status = 'sent', sent_at = %s, "
        "attempts = attempts + 1, provider_id = %s, error = '' "
        "WHERE id = %s AND claim_token = %s AND status = 'sending'"
    )


def record(row: Delivery, outcome: ch.Outcome, now: datetime, cursor: Any = None) -> str:
    """Write one message's outcome (autocommit: its own commit). Returns the new status.

    The "sent" mark is the hot path: one prepared UPDATE, no ORM query building."""
    attempts = row.attempts + 1
    if outcome.ok:
        params = [
            connection.ops.adapt_datetimefield_value(now),
            outcome.provider_id[:255],
            row.pk,
            row.claim_token,
        ]
        if cursor is None:
            with connection.cursor() as own:
                own.execute(_mark_sent_sql(), params)
        else:
            cursor.execute(_mark_sent_sql(), params)
        return DeliveryStatus.SENT
    if outcome.temporary and attempts < settings.DELIVERY_MAX_ATTEMPTS:
        _mine(row).update(
            status=DeliveryStatus.QUEUED,
            attempts=attempts,
            next_attempt_at=now + timedelta(seconds=retry_delay(attempts)),
            claim_token="",
            error=outcome.error,
        )
        return DeliveryStatus.QUEUED
    error = outcome.error
    if outcome.temporary:
        error = _("Gave up after %(n)s attempts: %(error)s") % {"n": attempts, "error": error}
    _mine(row).update(status=DeliveryStatus.FAILED, attempts=attempts, error=error)
    return DeliveryStatus.FAILED


def release(rows: Sequence[Delivery], *, delay: int = 0) -> None:
    """Put claimed rows that were never started back in the queue."""
    if not rows:
        return
    Delivery.objects.filter(
        pk__in=[r.pk for r in rows], claim_token=rows[0].claim_token, status=DeliveryStatus.SENDING
    ).update(
        status=DeliveryStatus.QUEUED,
        claim_token="",
        next_attempt_at=timezone.now() + timedelta(seconds=delay) if delay else None,
    )


@contextlib.contextmanager
def fast_commits() -> Iterator[None]:
    """On PostgreSQL, commit without waiting for the WAL flush while marking messages.

    A worker crash loses nothing (the commit is in the server's memory); only a database
    server crash could lose the last fraction of a second of "sent" marks.
    """
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET synchronous_commit")


# --- the lease ------------------------------------------------------------------------------


def take_lease(run_id: int, lease: str = "") -> str:
    """The run's sender lease (renewing ``lease`` if it is still ours); "" if taken."""
    now = timezone.now()
    token = lease or uuid.uuid4().hex
    free = Q(sender_lease="") | Q(sender_lease_until__lt=now)
    if lease:
        free |= Q(sender_lease=lease)
    got = (
        ActionRun.objects.filter(pk=run_id, status=RunStatus.SENDING)
        .filter(free)
        .update(sender_lease=token, sender_lease_until=now + timedelta(seconds=lease_seconds()))
    )
    return token if got else ""


def hold_lease(run_id: int, lease: str, seconds: float) -> None:
    until = timezone.now() + timedelta(seconds=seconds + lease_seconds())
    ActionRun.objects.filter(pk=run_id, sender_lease=lease).update(sender_lease_until=until)


def drop_lease(run_id: int, lease: str) -> None:
    ActionRun.objects.filter(pk=run_id, sender_lease=lease).update(
        sender_lease="", sender_lease_until=None
    )


# --- delivering -----------------------------------------------------------------------------


def deliver_run(
    run_id: int,
    *,
    worker: str = "",
    lease: str = "",
    job_id: int | None = None,
) -> DeliverResult:
    """Send a run's due queued messages until done, a burst is complete, or only future
    retries are left. Never sleeps: ``resume_in`` says when to continue."""
    with scopes_disabled():
        account_id = (
            ActionRun.objects.filter(pk=run_id).values_list("account_id", flat=True).first()
        )
    if account_id is None:
        return DeliverResult(skipped=True)
    with account_scope(account_id):
        lease = take_lease(run_id, lease)
        if not lease:
            return DeliverResult(skipped=True)
        try:
            result = _deliver(run_id, worker=worker, lease=lease, job_id=job_id)
        except BaseException:
            drop_lease(run_id, lease)
            raise
        if result.pause and result.resume_in is not None:
            hold_lease(run_id, lease, result.resume_in)
            result.lease = lease
        else:
            drop_lease(run_id, lease)
            if result.resume_in is None:
                result.finished = finish_run_if_done(run_id)
        return result


def _deliver(run_id: int, *, worker: str, lease: str, job_id: int | None) -> DeliverResult:
    run = ActionRun.objects.select_related("action", "started_by", "account").get(pk=run_id)
    result = DeliverResult()
    is_email = channel_kind(run.action.action_type) == Channel.EMAIL
    burst = int(settings.EMAIL_BURST) if is_email else 0
    in_burst = 0
    channel = channel_for(run)
    last_progress = last_renew = time.monotonic()
    with fast_commits():
        try:
            channel.open()
            while True:
                limit = CLAIM_BATCH if not burst else min(CLAIM_BATCH, burst - in_burst)
                rows = claim(run_id, limit=limit, worker=worker)
                if not rows:
                    break
                down = _send_claimed(channel, rows, result)
                in_burst += len(rows)
                if down is not None:
                    result.resume_in = down
                    break
                now = time.monotonic()
                if now - last_renew >= LEASE_RENEW_EVERY:
                    hold_lease(run_id, lease, 0)
                    last_renew = now
                if job_id and now - last_progress >= PROGRESS_EVERY:
                    report_progress(run_id, job_id)
                    last_progress = now
                if burst and in_burst >= burst:
                    if _has_queued(run_id):
                        result.resume_in = float(settings.EMAIL_BURST_PAUSE)
                        result.pause = True
                    break
        finally:
            channel.close()
    if result.resume_in is None:
        result.resume_in = _next_retry_in(run_id)
    if job_id:
        report_progress(run_id, job_id)
    return result


def _send_claimed(channel: ch.Channel, rows: list[Delivery], result: DeliverResult) -> float | None:
    """Send claimed rows chunk by chunk; returns a delay if the channel went down."""
    size = max(1, channel.chunk_size)
    cursor = connection.cursor()
    for start in range(0, len(rows), size):
        chunk = rows[start : start + size]
        outcomes = channel.send([_outgoing(r) for r in chunk])
        now = timezone.now()
        for row, outcome in zip(chunk, outcomes, strict=False):
            status = record(row, outcome, now, cursor)
            if status == DeliveryStatus.SENT:
                result.sent += 1
            elif status == DeliveryStatus.FAILED:
                result.failed += 1
            else:
                result.retried += 1
        if len(outcomes) < len(chunk) or any(o.down for o in outcomes):
            # the server is unreachable: the rest of the claim was never started
            delay = retry_delay(1)
            release(rows[start + len(outcomes) :], delay=delay)
            return float(delay)
    return None


def _has_queued(run_id: int) -> bool:
    return Delivery.objects.filter(run_id=run_id, status=DeliveryStatus.QUEUED).exists()


def _next_retry_in(run_id: int) -> float | None:
    """Seconds until the earliest queued row is due (0: now); None if none is queued."""
    earliest = Delivery.objects.filter(run_id=run_id, status=DeliveryStatus.QUEUED).aggregate(
        at=Min("next_attempt_at"), n=Count("id")
    )
    if not earliest["n"]:
        return None
    if earliest["at"] is None:
        return 0.0
    return max(0.0, (earliest["at"] - timezone.now()).total_seconds())


def report_progress(run_id: int, job_id: int) -> None:
    counts = run_counts(run_id)
    total = counts["total_rows"]
    done = counts["sent"] + counts["failed"] + counts["cancelled"]
    from closedloop.jobs.models import Job

    message = _("Sent %(sent)s of %(total)s; %(failed)s failed.") % {
        "sent": counts["sent"],
        "total": total,
        "failed": counts["failed"],
    }
    with scopes_disabled():
        Job.objects.filter(pk=job_id).update(
            progress_done=done, progress_total=total, message=message[:500]
        )


def finish_run_if_done(run_id: int) -> bool:
    """Mark the run done once nothing is queued or sending (once; sends the summary)."""
    busy = Delivery.objects.filter(
        run_id=run_id, status__in=[DeliveryStatus.QUEUED, DeliveryStatus.SENDING]
    ).exists()
    if busy:
        return False
    done = ActionRun.objects.filter(pk=run_id, status=RunStatus.SENDING).update(
        status=RunStatus.DONE, finished_at=timezone.now(), sender_lease="", sender_lease_until=None
    )
    if done:
        from closedloop.feedback.runs import after_run_finished

        after_run_finished(ActionRun.objects.select_related("action__workflow").get(pk=run_id))
    return bool(done)


# --- recovery -------------------------------------------------------------------------------


def stale_claims(*, now: datetime | None = None, restarted_worker: str = "") -> Q:
    """Which ``sending`` rows no live sender is working on."""
    from closedloop.jobs.models import WorkerHeartbeat

    now = now or timezone.now()
    dead_after = now - timedelta(seconds=5 * int(settings.WORKER_HEARTBEAT_SECONDS))
    dead = list(
        WorkerHeartbeat.objects.filter(seen_at__lt=dead_after).values_list("hostname", flat=True)
    )
    stale = Q(claimed_at__lt=now - timedelta(seconds=STALE_CLAIM_SECONDS))
    if dead:
        stale |= Q(claimed_by__in=dead)
    if restarted_worker:
        stale |= Q(claimed_by=restarted_worker, claimed_at__lt=now)
    return stale


def recover_stale_claims(*, restarted_worker: str = "") -> dict[str, int]:
    """Fail the in-flight message of each dead claim and re-queue the rest of it."""
    failed = requeued = 0
    with scopes_disabled():
        rows = list(
            Delivery.objects.filter(status=DeliveryStatus.SENDING)
            .filter(stale_claims(restarted_worker=restarted_worker))
            .order_by("claim_token", "id")
            .values("id", "claim_token", "channel")
        )
        by_claim: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_claim.setdefault(row["claim_token"], []).append(row)
        for token, claimed in by_claim.items():
            first = claimed[: in_flight_size(claimed[0]["channel"])]
            rest = claimed[len(first) :]
            with transaction.atomic():
                failed += Delivery.objects.filter(
                    pk__in=[r["id"] for r in first], claim_token=token, status="sending"
                ).update(
                    status=DeliveryStatus.FAILED, error=INTERRUPTED, attempts=F("attempts") + 1
                )
                requeued += Delivery.objects.filter(
                    pk__in=[r["id"] for r in rest], claim_token=token, status="sending"
                ).update(status=DeliveryStatus.QUEUED, claim_token="")
    if failed or requeued:
        logger.warning("outbox: %s interrupted messages failed, %s re-queued", failed, requeued)
    return {"failed": failed, "requeued": requeued}


def runs_needing_a_sender() -> list[int]:
    """Runs that are sending, have due queued messages, and no live sender lease."""
    now = timezone.now()
    due = Q(deliveries__next_attempt_at__isnull=True) | Q(deliveries__next_attempt_at__lte=now)
    with scopes_disabled():
        free = Q(sender_lease="") | Q(sender_lease_until__lt=now)
        return list(
            ActionRun.objects.filter(status=RunStatus.SENDING)
            .filter(free)
            .filter(due, deliveries__status=DeliveryStatus.QUEUED)
            .values_list("id", flat=True)
            .distinct()
        )


def runs_to_close() -> list[int]:
    """Sending runs with nothing left queued or sending (e.g. after recovery)."""
    with scopes_disabled():
        busy = Delivery.objects.filter(
            run_id=OuterRef("pk"), status__in=[DeliveryStatus.QUEUED, DeliveryStatus.SENDING]
        )
        return list(
            ActionRun.objects.filter(status=RunStatus.SENDING)
            .exclude(Exists(busy))
            .values_list("id", flat=True)
        )
