"""Indicator writes: create / update / delete, and the sandbox sample data (kept apart
from real answers: only :class:`SampleAnswer` rows are ever written here). Re-exported by
:mod:`closedloop.polls.services`."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from closedloop.core.audit import record_audit, snapshot
from closedloop.core.models import AuditEntry
from closedloop.polls.models import Contact, Indicator, Question, QuestionType, SampleAnswer
from closedloop.polls.services_base import SetupError, _id

INDICATOR_FIELDS = (
    "name",
    "start_date",
    "end_date",
    "baseline_question",
    "follow_up_question",
    "y_axis_title",
    "goal",
    "use_sample_data",
)
MAX_SAMPLE_CONTACTS = 5000
MAX_SAMPLE_DAYS = 366


# --- indicators -----------------------------------------------------------------------------


def _check_indicator(
    account_id: int,
    *,
    name: str,
    start_date: dt.date,
    end_date: dt.date,
    baseline_question: Question,
    follow_up_question: Question,
    goal: float | None,
    exclude_pk: int | None = None,
) -> str:
    name = (name or "").strip()
    if not name:
        raise SetupError(_("An indicator needs a name."), "name")
    clash = Indicator.objects.filter(account_id=account_id, name__iexact=name)
    if exclude_pk is not None:
        clash = clash.exclude(pk=exclude_pk)
    if clash.exists():
        raise SetupError(
            _("An indicator named “%(name)s” already exists.") % {"name": name}, "name"
        )
    if start_date > end_date:
        raise SetupError(_("The end date must not be before the start date."), "end_date")
    for field, question in (
        ("baseline_question", baseline_question),
        ("follow_up_question", follow_up_question),
    ):
        if question.account_id != account_id:
            raise SetupError(_("There is no such question."), field)
        if question.type != QuestionType.NUMERIC:
            raise SetupError(
                _("“%(name)s” is not a numeric question; indicators add up numbers.")
                % {"name": question.display_name},
                field,
            )
    if goal is not None and goal != goal:  # NaN
        raise SetupError(_("The goal must be a number."), "goal")
    return name


def indicator_create(
    *,
    account: Any,
    user: Any,
    name: str,
    start_date: dt.date,
    end_date: dt.date,
    baseline_question: Question,
    follow_up_question: Question,
    y_axis_title: str = "",
    goal: float | None = None,
) -> Indicator:
    account_id = _id(account)
    name = _check_indicator(
        account_id,
        name=name,
        start_date=start_date,
        end_date=end_date,
        baseline_question=baseline_question,
        follow_up_question=follow_up_question,
        goal=goal,
    )
    with transaction.atomic():
        indicator = Indicator.objects.create(
            account_id=account_id,
            name=name,
            start_date=start_date,
            end_date=end_date,
            baseline_question=baseline_question,
            follow_up_question=follow_up_question,
            y_axis_title=(y_axis_title or "").strip()[:100],
            goal=goal,
            created_by=user if getattr(user, "pk", None) else None,
        )
        record_audit(
            account=account_id,
            actor=user,
            action=AuditEntry.Action.CREATE,
            obj=indicator,
            after=snapshot(indicator, INDICATOR_FIELDS),
        )
    return indicator


def indicator_update(*, indicator: Indicator, user: Any, **changes: Any) -> Indicator:
    unknown = set(changes) - set(INDICATOR_FIELDS)
    if unknown:
        raise TypeError(f"unknown indicator fields: {sorted(unknown)}")
    values = {name: getattr(indicator, name) for name in INDICATOR_FIELDS} | changes
    values["name"] = _check_indicator(
        indicator.account_id,
        name=values["name"],
        start_date=values["start_date"],
        end_date=values["end_date"],
        baseline_question=values["baseline_question"],
        follow_up_question=values["follow_up_question"],
        goal=values["goal"],
        exclude_pk=indicator.pk,
    )
    values["y_axis_title"] = (values["y_axis_title"] or "").strip()[:100]
    before = snapshot(indicator, INDICATOR_FIELDS)
    with transaction.atomic():
        for key, value in values.items():
            setattr(indicator, key, value)
        indicator.save()
        record_audit(
            account=indicator.account_id,
            actor=user,
            action=AuditEntry.Action.UPDATE,
            obj=indicator,
            before=before,
            after=snapshot(indicator, INDICATOR_FIELDS),
        )
    return indicator


def indicator_delete(*, indicator: Indicator, user: Any) -> None:
    with transaction.atomic():
        record_audit(
            account=indicator.account_id,
            actor=user,
            action=AuditEntry.Action.DELETE,
            obj=indicator,
            before=snapshot(indicator, INDICATOR_FIELDS),
        )
        SampleAnswer.objects.filter(indicator=indicator).delete()
        indicator.delete()


def sample_data_generate(
    *,
    indicator: Indicator,
    minimum: int,
    maximum: int,
    contacts: int | Sequence[Contact],
    days: int,
    user: Any = None,
    seed: int | None = None,
) -> int:
    """Replace the indicator's sandbox data: for each contact a random integer in
    [minimum, maximum] on the start date (baseline) and on each of ``days`` following days
    (follow-up). Real answers and responses are never touched."""
    if minimum > maximum:
        raise SetupError(_("The minimum must not be above the maximum."), "maximum")
    span = (indicator.end_date - indicator.start_date).days
    if not 1 <= days <= min(MAX_SAMPLE_DAYS, max(span, 1)):
        raise SetupError(
            _(
                "Choose 1 to %(max)s follow-up days (the days after the start date, up to the end date)."
            )
            % {"max": min(MAX_SAMPLE_DAYS, max(span, 1))},
            "days",
        )
    chosen: list[Contact | None]
    if isinstance(contacts, int):
        if not 1 <= contacts <= MAX_SAMPLE_CONTACTS:
            raise SetupError(
                _("Choose 1 to %(max)s contacts.") % {"max": MAX_SAMPLE_CONTACTS}, "contacts"
            )
        pool = list(
            Contact.objects.filter(account_id=indicator.account_id, is_active=True)
            .order_by("pk")
            .values_list("pk", flat=True)[: MAX_SAMPLE_CONTACTS * 4]
        )
        rng_pick = random.Random(seed)
        picked = rng_pick.sample(pool, min(contacts, len(pool)))
        chosen = list(Contact.objects.filter(pk__in=picked).only("pk"))
        chosen += [None] * (contacts - len(chosen))  # anonymous samples when too few contacts
    else:
        chosen = list(contacts)
        if not chosen:
            raise SetupError(_("Choose at least one contact."), "contacts")
        if any(c is not None and c.account_id != indicator.account_id for c in chosen):
            raise SetupError(_("There is no such contact."), "contacts")
    rng = random.Random(seed)
    low, high = int(minimum), int(maximum)
    baseline, follow_up = SampleAnswer.Kind.BASELINE.value, SampleAnswer.Kind.FOLLOW_UP.value
    from django.db import connection as db

    dates = [
        db.ops.adapt_datefield_value(indicator.start_date + dt.timedelta(days=offset))
        for offset in range(days + 1)
    ]
    rows = [
        (
            indicator.account_id,
            indicator.pk,
            baseline if offset == 0 else follow_up,
            contact.pk if contact is not None else None,
            day,
            float(rng.randint(low, high)),
        )
        for contact in chosen
        for offset, day in enumerate(dates)
    ]
    with transaction.atomic():
        SampleAnswer.objects.filter(indicator=indicator).delete()
        _insert_samples(rows)
        record_audit(
            account=indicator.account_id,
            actor=user,
            action=AuditEntry.Action.UPDATE,
            obj=indicator,
            before={"sample_answers": None},
            after={"sample_answers": len(rows)},
        )
    return len(rows)


def _insert_samples(rows: list[tuple[Any, ...]]) -> None:
    """Plain multi-row INSERTs (sample data can be 100,000s of rows; no ORM objects)."""
    from django.db import connection

    table = connection.ops.quote_name(SampleAnswer._meta.db_table)
    columns = "account_id, indicator_id, kind, contact_id, local_date, value"
    sql = f"INSERT INTO {table} ({columns}) VALUES (%s, %s, %s, %s, %s, %s)"
    with connection.cursor() as cursor:
        for start in range(0, len(rows), 5000):
            cursor.executemany(sql, rows[start : start + 5000])


def sample_data_clear(*, indicator: Indicator, user: Any = None) -> int:
    with transaction.atomic():
        deleted, _detail = SampleAnswer.objects.filter(indicator=indicator).delete()
        if indicator.use_sample_data:
            indicator.use_sample_data = False
            indicator.save(update_fields=["use_sample_data", "updated_at"])
        if deleted:
            record_audit(
                account=indicator.account_id,
                actor=user,
                action=AuditEntry.Action.UPDATE,
                obj=indicator,
                before={"sample_answers": deleted},
                after={"sample_answers": 0},
            )
    return deleted


def indicator_set_sample_mode(
    *, indicator: Indicator, use_sample_data: bool, user: Any = None
) -> Indicator:
    """Show the sandbox data instead of real answers (or back)."""
    if use_sample_data and not SampleAnswer.objects.filter(indicator=indicator).exists():
        raise SetupError(_("Generate sample data first."), "use_sample_data")
    return indicator_update(indicator=indicator, user=user, use_sample_data=use_sample_data)
