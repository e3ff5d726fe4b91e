"""Filters of the poll charts and the base querysets every aggregate starts from.

A :class:`Filters` value says which answers count: a date window on the poll run's local
day, the org units of the visible / chosen panels (``unit_ids``; ``None`` = everything),
a cohort (a RapidPro group used as a cohort → its ``people.Cohort``) and "contact field
contains" filters. :func:`parse_filters` builds it from query parameters (the same ones
the poll-detail page and the API take):

``window``  ``month`` (default: the current month), ``30d``, ``60d``, ``90d``, ``6m``,
            ``12m``, ``all`` or ``custom`` (with ``start`` and ``end``, ``YYYY-MM-DD``)
``panel``   a panel group id (404 when the member cannot see it); ``sub=0`` leaves its
            sub-panels out (default: included)
``cohort``  a cohort group id
``field.<key>=text``  the contact's RapidPro field ``key`` contains ``text`` (any case)

Everything is applied in SQL: answers and responses are filtered by their denormalized
``org_unit_id`` and, for cohort / field filters, by ``contact_id IN (subquery)``.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db.models import F, Q, QuerySet
from django.db.models.fields.json import KeyTextTransform
from django.utils import timezone
from django.utils.translation import gettext as _

from closedloop.accounts.models import Membership
from closedloop.polls import selectors
from closedloop.polls.models import (
    Answer,
    Contact,
    ContactGroup,
    GroupRole,
    PollRun,
    Question,
    Response,
    SameDayRule,
)

WINDOWS = ("month", "30d", "60d", "90d", "6m", "12m", "all", "custom")
DEFAULT_WINDOW = "month"
#: longest accepted field-filter text and number of field filters
MAX_FIELD_TEXT = 100
MAX_FIELD_FILTERS = 10


class FilterError(ValueError):
    """A filter parameter is wrong; ``field`` names it, the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass
class Filters:
    start: dt.date | None = None
    end: dt.date | None = None
    #: org units whose answers count (from ``selectors.panel_unit_ids``); None: all
    unit_ids: list[int] | None = None
    #: a ContactGroup (role cohort) id
    cohort_id: int | None = None
    #: RapidPro field key → text the contact's value must contain (case-insensitive)
    field_filters: dict[str, str] = field(default_factory=dict)
    window: str = DEFAULT_WINDOW

    @property
    def has_contact_filter(self) -> bool:
        return self.cohort_id is not None or bool(self.field_filters)

    def as_params(self) -> dict[str, Any]:
        """The filters as they are echoed back in API payloads."""
        return {
            "window": self.window,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "cohort": self.cohort_id,
            "fields": dict(self.field_filters),
        }


def account_today(account: Any) -> dt.date:
    """Today in the account's time zone."""
    try:
        zone = zoneinfo.ZoneInfo(getattr(account, "time_zone", "") or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = zoneinfo.ZoneInfo("UTC")
    return timezone.now().astimezone(zone).date()


def months_before(day: dt.date, months: int) -> dt.date:
    """The same day ``months`` earlier (the month's last day when it is shorter)."""
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    for candidate in (day.day, 30, 29, 28):
        try:
            return dt.date(year, month, min(day.day, candidate))
        except ValueError:
            continue
    return dt.date(year, month, 28)


def window_bounds(
    window: str, today: dt.date, start: dt.date | None = None, end: dt.date | None = None
) -> tuple[dt.date | None, dt.date | None]:
    """``(start, end)`` of a named window ending today (both inclusive)."""
    if window == "month":
        return today.replace(day=1), today
    if window.endswith("d") and window[:-1].isdigit():
        return today - dt.timedelta(days=int(window[:-1]) - 1), today
    if window.endswith("m") and window[:-1].isdigit():
        return months_before(today, int(window[:-1])) + dt.timedelta(days=1), today
    if window == "all":
        return None, None
    return start, end


def _date(params: Mapping[str, Any], key: str) -> dt.date | None:
    raw = str(params.get(key) or "").strip()
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise FilterError(key, _("Enter a date as YYYY-MM-DD.")) from None


def _int(params: Mapping[str, Any], key: str) -> int | None:
    raw = str(params.get(key) or "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise FilterError(key, _("Enter a whole number.")) from None


def parse_filters(membership: Membership, params: Mapping[str, Any]) -> Filters:
    """Query parameters → :class:`Filters` within what ``membership`` may see.

    Raises :class:`FilterError` for a bad value and ``Http404`` for a panel the member
    cannot see (it may exist in another subtree or account).
    """
    window = str(params.get("window") or DEFAULT_WINDOW).strip()
    if window not in WINDOWS:
        raise FilterError(
            "window", _("Choose one of: %(choices)s.") % {"choices": ", ".join(WINDOWS)}
        )
    start, end = _date(params, "start"), _date(params, "end")
    if window == "custom":
        if start is None and end is None:
            raise FilterError("start", _("A custom window needs a start or an end date."))
        if start and end and start > end:
            raise FilterError("end", _("The end date is before the start date."))
    else:
        start, end = window_bounds(window, account_today(membership.account))
    panel_id = _int(params, "panel")
    panel = selectors.get_panel(membership, panel_id) if panel_id is not None else None
    include_sub = str(params.get("sub", "1")).strip().lower() not in ("0", "false", "no", "off")
    unit_ids = selectors.panel_unit_ids(membership, panel, include_sub)
    cohort_id = _int(params, "cohort")
    if cohort_id is not None:
        exists = ContactGroup.objects.filter(
            pk=cohort_id, role=GroupRole.COHORT, cohort__isnull=False
        ).exists()
        if not exists:
            raise FilterError("cohort", _("There is no cohort with id %(id)s.") % {"id": cohort_id})
    fields: dict[str, str] = {}
    for key in params:
        if not str(key).startswith("field."):
            continue
        name = str(key)[len("field.") :].strip()
        value = str(params.get(key) or "").strip()
        if not value:
            continue
        if not name or len(name) > 64:
            raise FilterError(str(key), _("Name a contact field after “field.”."))
        if len(value) > MAX_FIELD_TEXT:
            raise FilterError(str(key), _("At most %(n)s characters.") % {"n": MAX_FIELD_TEXT})
        fields[name] = value
    if len(fields) > MAX_FIELD_FILTERS:
        raise FilterError("field", _("At most %(n)s field filters.") % {"n": MAX_FIELD_FILTERS})
    return Filters(
        start=start,
        end=end,
        unit_ids=unit_ids,
        cohort_id=cohort_id,
        field_filters=fields,
        window=window,
    )


# --- base querysets --------------------------------------------------------------------


def value_field(account_id: int) -> str:
    """The answer column numeric aggregates use under the account's same-day rule."""
    rule = selectors.polls_settings(account_id).same_day_rule
    return "day_sum" if rule == SameDayRule.SUM else "value_number"


def contact_subquery(filters: Filters) -> QuerySet[Any] | None:
    """Ids of the contacts matching the cohort and field filters (None: no such filter)."""
    if not filters.has_contact_filter:
        return None
    contacts = Contact.objects.all()
    if filters.cohort_id is not None:
        contacts = contacts.filter(person__cohorts__poll_groups__pk=filters.cohort_id)
    for i, (key, text) in enumerate(sorted(filters.field_filters.items())):
        alias = f"_field_{i}"
        contacts = contacts.alias(**{alias: KeyTextTransform(key, "fields")}).filter(
            **{f"{alias}__icontains": text}
        )
    return contacts.values("pk")


def pollrun_dates(poll_id: int, filters: Filters) -> list[tuple[int, dt.date]]:
    """``[(pollrun id, local date)]`` of a poll's runs in the window, oldest first."""
    runs = PollRun.objects.filter(poll_id=poll_id)
    if filters.start:
        runs = runs.filter(local_date__gte=filters.start)
    if filters.end:
        runs = runs.filter(local_date__lte=filters.end)
    return list(runs.order_by("local_date", "conducted_on", "pk").values_list("pk", "local_date"))


def scope_q(filters: Filters, prefix: str = "") -> Q:
    """Unit and contact filters for Answer / Response rows (``prefix`` for joins)."""
    q = selectors.unit_filter(filters.unit_ids, f"{prefix}org_unit_id")
    contacts = contact_subquery(filters)
    if contacts is not None:
        q &= Q(**{f"{prefix}contact_id__in": contacts})
    return q


def answers(question: Question, filters: Filters, pollrun_ids: list[int]) -> QuerySet[Answer]:
    """Active answers to ``question`` in the given poll runs within the filters."""
    return Answer.objects.filter(
        scope_q(filters), question_id=question.pk, is_active=True, pollrun_id__in=pollrun_ids
    )


def responses(filters: Filters, pollrun_ids: list[int]) -> QuerySet[Response]:
    """Active responses (empty ones included) of the given poll runs within the filters."""
    return Response.objects.filter(scope_q(filters), is_active=True, pollrun_id__in=pollrun_ids)


def value_expr(account_id: int) -> F:
    return F(value_field(account_id))
