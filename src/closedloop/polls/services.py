"""Configuration writes of the polls module: connections, the setup wizard's choices,
settings, poll edits, indicators and their sandbox sample data.

Each function runs in one transaction and leaves an audit entry. Bad input raises
:class:`SetupError` with a message for the user and the form field (or wizard row) it
concerns; nothing is written then. The sync itself (and the rows it writes) lives in
``sync``/``ingest``; here are only the choices people make.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from closedloop.core.audit import record_audit, snapshot
from closedloop.core.crypto import decrypt, encrypt
from closedloop.core.models import AuditEntry
from closedloop.jobs.models import Job
from closedloop.polls.models import (
    Answer,
    Connection,
    Contact,
    DataField,
    Indicator,
    Message,
    Poll,
    PollsSettings,
    Question,
    QuestionType,
    Response,
    SameDayRule,
    SampleAnswer,
    WordCount,
)
from closedloop.polls.services_base import SetupError, _id

CONNECTION_FIELDS = ("name", "host_url", "sync_interval_minutes", "is_active", "workspace_name")
SETTINGS_FIELDS = ("same_day_rule", "inbox_days", "visible_fields", "featured_indicator")
MIN_INTERVAL, MAX_INTERVAL = 5, 7 * 24 * 60
MAX_INBOX_DAYS = 365
SYNC_KIND = "polls.sync"
FETCH_RUNS_KIND = "polls.fetch_runs"


class TestResult(TypedDict):
    ok: bool
    workspace: str
    timezone: str
    error: str


# --- connections ------------------------------------------------------------------------


def clean_host_url(host_url: str) -> str:
    url = (host_url or "").strip().rstrip("/")
    if not url:
        raise SetupError(_("Enter the address of the RapidPro server."), "host_url")
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError:
        raise SetupError(
            _("“%(value)s” is not a valid web address; write it like https://rapidpro.io.")
            % {"value": host_url},
            "host_url",
        ) from None
    if url.endswith("/api/v2"):
        url = url[: -len("/api/v2")]
    return url


def _clean_connection_name(account: Any, name: str, exclude_pk: int | None = None) -> str:
    name = (name or "").strip()
    if not name:
        raise SetupError(_("A connection needs a name."), "name")
    if len(name) > 100:
        raise SetupError(_("The name is too long (100 characters at most)."), "name")
    clash = Connection.objects.filter(account_id=_id(account), name__iexact=name)
    if exclude_pk is not None:
        clash = clash.exclude(pk=exclude_pk)
    if clash.exists():
        raise SetupError(
            _("A connection named “%(name)s” already exists.") % {"name": name}, "name"
        )
    return name


def _clean_interval(minutes: Any) -> int:
    try:
        value = int(minutes)
    except (TypeError, ValueError):
        raise SetupError(
            _("The sync interval must be a whole number of minutes."), "sync_interval_minutes"
        ) from None
    if not MIN_INTERVAL <= value <= MAX_INTERVAL:
        raise SetupError(
            _("Sync every %(min)s to %(max)s minutes.")
            % {"min": MIN_INTERVAL, "max": MAX_INTERVAL},
            "sync_interval_minutes",
        )
    return value


def check_connection(host_url: str, token: str) -> TestResult:
    """Ask RapidPro who this token belongs to; never raises for network or auth trouble."""
    from closedloop.polls import client

    try:
        result = client.test_connection(host_url, token)
    except Exception as exc:  # noqa: BLE001 - any failure is reported to the user
        return {"ok": False, "workspace": "", "timezone": "", "error": str(exc)}
    return {
        "ok": bool(result.get("ok")),
        "workspace": str(result.get("workspace") or ""),
        "timezone": str(result.get("timezone") or ""),
        "error": str(result.get("error") or ""),
    }


def _tested(host_url: str, token: str) -> TestResult:
    result = check_connection(host_url, token)
    if not result["ok"]:
        error = result["error"] or _("RapidPro did not accept the connection.")
        field = "token" if "token" in error.lower() else "host_url"
        raise SetupError(error, field)
    return result


def connection_token(connection: Connection) -> str:
    """The stored token in clear, for the RapidPro client only (never for display)."""
    return decrypt(connection.token_encrypted)


def _connection_snapshot(connection: Connection) -> dict[str, Any]:
    return snapshot(connection, CONNECTION_FIELDS)


def connection_create(
    *,
    account: Any,
    name: str,
    host_url: str,
    token: str,
    user: Any,
    sync_interval_minutes: int | None = None,
) -> Connection:
    """Test the host and token against RapidPro, then store the connection (token encrypted)."""
    name = _clean_connection_name(account, name)
    host_url = clean_host_url(host_url)
    token = (token or "").strip()
    if not token:
        raise SetupError(_("Enter the API token of the RapidPro workspace."), "token")
    interval = _clean_interval(
        settings.POLLS_SYNC_MINUTES if sync_interval_minutes is None else sync_interval_minutes
    )
    result = _tested(host_url, token)
    with transaction.atomic():
        connection = Connection.objects.create(
            account_id=_id(account),
            name=name,
            host_url=host_url,
            token_encrypted=encrypt(token),
            workspace_name=result["workspace"][:200],
            workspace_timezone=result["timezone"][:64],
            sync_interval_minutes=interval,
            next_sync_at=timezone.now(),
        )
        record_audit(
            account=account,
            actor=user,
            action=AuditEntry.Action.CREATE,
            obj=connection,
            after=_connection_snapshot(connection),
        )
    return connection


def connection_update(
    *,
    connection: Connection,
    user: Any,
    name: str | None = None,
    host_url: str | None = None,
    token: str | None = None,
    sync_interval_minutes: int | None = None,
    is_active: bool | None = None,
) -> Connection:
    """Change a connection. An empty ``token`` keeps the stored one; a new host or token is
    tested against RapidPro first and nothing changes when the test fails."""
    before = _connection_snapshot(connection)
    account_id = connection.account_id
    new_name = (
        _clean_connection_name(account_id, name, exclude_pk=connection.pk)
        if name is not None
        else connection.name
    )
    new_host = clean_host_url(host_url) if host_url is not None else connection.host_url
    new_token = (token or "").strip()
    interval = (
        _clean_interval(sync_interval_minutes)
        if sync_interval_minutes is not None
        else connection.sync_interval_minutes
    )
    result: TestResult | None = None
    if new_token or new_host != connection.host_url:
        result = _tested(new_host, new_token or connection_token(connection))
    with transaction.atomic():
        connection.name = new_name
        connection.host_url = new_host
        if new_token:
            connection.token_encrypted = encrypt(new_token)
        if result is not None:
            connection.workspace_name = result["workspace"][:200]
            connection.workspace_timezone = result["timezone"][:64]
        if interval != connection.sync_interval_minutes:
            connection.sync_interval_minutes = interval
            if not connection.consecutive_failures and connection.last_success_at:
                connection.next_sync_at = connection.last_success_at + dt.timedelta(
                    minutes=interval
                )
        if is_active is not None:
            connection.is_active = is_active
        connection.save()
        after = _connection_snapshot(connection)
        if new_token:
            before["token"], after["token"] = "********", _("******** (replaced)")
        record_audit(
            account=account_id,
            actor=user,
            action=AuditEntry.Action.UPDATE,
            obj=connection,
            before=before,
            after=after,
        )
    return connection


def connection_data_counts(connection: Connection) -> dict[str, int]:
    """What deleting the connection removes (shown before the user confirms)."""
    return {
        "polls": Poll.objects.filter(connection=connection).count(),
        "contacts": Contact.objects.filter(connection=connection).count(),
        "responses": Response.objects.filter(poll__connection=connection).count(),
        "messages": Message.objects.filter(connection=connection).count(),
    }


def connection_delete(
    *, connection: Connection, user: Any, confirm_name: str | None = None
) -> None:
    """Delete the connection and all its polls data (the people stay)."""
    if confirm_name is not None and confirm_name.strip() != connection.name:
        raise SetupError(
            _("Type the connection's name exactly (“%(name)s”) to delete it.")
            % {"name": connection.name},
            "confirm_name",
        )
    with transaction.atomic():
        record_audit(
            account=connection.account_id,
            actor=user,
            action=AuditEntry.Action.DELETE,
            obj=connection,
            before=_connection_snapshot(connection),
        )
        # the biggest tables first, as plain DELETEs (no per-row cascade collection)
        polls = Poll.objects.filter(connection=connection).values("pk")
        SampleAnswer.objects.filter(
            Q(indicator__baseline_question__poll__in=polls)
            | Q(indicator__follow_up_question__poll__in=polls)
        ).delete()
        WordCount.objects.filter(question__poll__in=polls).delete()
        Answer.objects.filter(question__poll__in=polls).delete()
        Response.objects.filter(poll__in=polls).delete()
        Message.objects.filter(connection=connection).delete()
        connection.delete()


# --- jobs ---------------------------------------------------------------------------------


def _enqueue(
    *, connection: Connection, user: Any, kind: str, params: dict[str, Any], title: str
) -> Job:
    from closedloop.jobs.runtime import enqueue_job

    try:
        return enqueue_job(
            account=connection.account_id,
            kind=kind,
            params=params,
            title=title,
            created_by=user,
        )
    except KeyError:
        raise SetupError(_("Syncing is not available on this server right now.")) from None


def request_sync(*, connection: Connection, user: Any, steps: Sequence[str] | None = None) -> Job:
    """ "Sync now" (all steps unless ``steps`` narrows it): a new sync job holding the
    connection's lock, or the sync already queued or running."""
    from closedloop.polls import scheduler

    try:
        return scheduler.request_sync(
            connection, user, steps=list(steps) if steps is not None else None
        )
    except scheduler.SyncBusy as exc:
        raise SetupError(str(exc)) from None
    except KeyError:
        raise SetupError(_("Syncing is not available on this server right now.")) from None


def request_fetch_runs(*, connection: Connection, user: Any, days: int) -> Job:
    """Queue the back-fill of the last ``days`` days of runs (the user is emailed when done)."""
    try:
        days = int(days)
    except (TypeError, ValueError):
        raise SetupError(_("Enter a number of days."), "days") from None
    if not 1 <= days <= 3660:
        raise SetupError(_("Fetch between 1 and 3660 days."), "days")
    return _enqueue(
        connection=connection,
        user=user,
        kind=FETCH_RUNS_KIND,
        params={"connection_id": connection.pk, "days": days},
        title=_("Fetch %(days)s days of runs from %(name)s")
        % {"days": days, "name": connection.name},
    )


# --- settings ---------------------------------------------------------------------------


def _settings_row(account: Any) -> PollsSettings:
    from closedloop.polls.selectors import polls_settings

    return polls_settings(account)


def settings_update(
    *,
    account: Any,
    same_day_rule: str,
    inbox_days: int,
    visible_fields: Sequence[str],
    featured_indicator: Indicator | None,
    user: Any = None,
) -> PollsSettings:
    if same_day_rule not in SameDayRule.values:
        raise SetupError(
            _("“%(value)s” is not a same-day rule.") % {"value": same_day_rule}, "same_day_rule"
        )
    try:
        days = int(inbox_days)
    except (TypeError, ValueError):
        raise SetupError(_("The inbox window is a number of days."), "inbox_days") from None
    if not 1 <= days <= MAX_INBOX_DAYS:
        raise SetupError(
            _("The inbox window is 1 to %(max)s days.") % {"max": MAX_INBOX_DAYS}, "inbox_days"
        )
    keys = sorted({str(k).strip() for k in visible_fields if str(k).strip()})
    known = set(DataField.objects.filter(account_id=_id(account)).values_list("key", flat=True))
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise SetupError(
            _("There is no contact field “%(key)s”.") % {"key": unknown[0]}, "visible_fields"
        )
    if featured_indicator is not None and featured_indicator.account_id != _id(account):
        raise SetupError(_("There is no such indicator."), "featured_indicator")
    row = _settings_row(account)
    before = snapshot(row, SETTINGS_FIELDS)
    with transaction.atomic():
        row.same_day_rule = same_day_rule
        row.inbox_days = days
        row.visible_fields = keys
        row.featured_indicator = featured_indicator
        row.save()
        DataField.objects.filter(account_id=_id(account), key__in=keys).update(is_visible=True)
        DataField.objects.filter(account_id=_id(account)).exclude(key__in=keys).update(
            is_visible=False
        )
        record_audit(
            account=account,
            actor=user,
            action=AuditEntry.Action.UPDATE,
            obj=row,
            before=before,
            after=snapshot(row, SETTINGS_FIELDS),
        )
    return row


# --- poll edits -----------------------------------------------------------------------------


def poll_update(
    *, poll: Poll, name: str, questions: Sequence[Mapping[str, Any]], user: Any
) -> Poll:
    """Rename the poll (blank: follow RapidPro) and its questions; retype (the sync then
    keeps the chosen type) or hide questions."""
    name = (name or "").strip()
    if len(name) > 255:
        raise SetupError(_("The name is too long (255 characters at most)."), "name")
    current = {q.pk: q for q in Question.objects.filter(poll=poll)}
    for item in questions:
        qid = item.get("id")
        if qid not in current:
            raise SetupError(
                _("The question %(id)s is not part of this poll.") % {"id": qid}, "questions"
            )
        if item.get("type") not in QuestionType.values:
            raise SetupError(
                _("“%(value)s” is not a question type.") % {"value": item.get("type")},
                f"question_{qid}",
            )
        if len(str(item.get("name") or "").strip()) > 255:
            raise SetupError(_("The name is too long (255 characters at most)."), f"question_{qid}")
    with transaction.atomic():
        before = {"name": poll.name}
        poll.name = "" if name == poll.rapidpro_name else name
        poll.save(update_fields=["name", "updated_at"])
        record_audit(
            account=poll.account_id,
            actor=user,
            action=AuditEntry.Action.UPDATE,
            obj=poll,
            before=before,
            after={"name": poll.name},
        )
        for item in questions:
            question = current[item["id"]]
            fields = ("name", "type", "type_overridden", "is_hidden")
            q_before = snapshot(question, fields)
            new_name = str(item.get("name") or "").strip()
            question.name = "" if new_name == question.rapidpro_name else new_name
            if item["type"] != question.type:
                question.type = item["type"]
                question.type_overridden = True
            question.is_hidden = bool(item.get("is_hidden"))
            q_after = snapshot(question, fields)
            if q_after != q_before:
                question.save(update_fields=[*fields, "updated_at"])
                record_audit(
                    account=poll.account_id,
                    actor=user,
                    action=AuditEntry.Action.UPDATE,
                    obj=question,
                    before=q_before,
                    after=q_after,
                )
    return poll


# indicators and wizard choices live in their own modules; callers use ``services.<name>``
from closedloop.polls.services_indicators import (  # noqa: E402
    INDICATOR_FIELDS,
    indicator_create,
    indicator_delete,
    indicator_set_sample_mode,
    indicator_update,
    sample_data_clear,
    sample_data_generate,
)
from closedloop.polls.services_wizard import (  # noqa: E402
    RoleChoice,
    set_group_roles,
    set_poll_selection,
    set_visible_fields,
)

__all__ = [
    "INDICATOR_FIELDS",
    "RoleChoice",
    "set_group_roles",
    "set_poll_selection",
    "set_visible_fields",
    "SetupError",
    "indicator_create",
    "indicator_delete",
    "indicator_set_sample_mode",
    "indicator_update",
    "sample_data_clear",
    "sample_data_generate",
]
