"""Downloads: a poll run's responses (CSV streamed, XLSX write-only) and a poll's per-date
figures (XLSX). Everything is limited to what the member may see."""

from __future__ import annotations

import csv
import datetime as dt
import re
import tempfile
import zoneinfo
from collections.abc import Iterator
from typing import Any

from django.http import FileResponse, Http404, HttpRequest, HttpResponseBase, StreamingHttpResponse
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from closedloop.accounts.models import Membership
from closedloop.core.tenancy import account_scope
from closedloop.polls import selectors
from closedloop.polls.models import Answer, PollRun, Question, QuestionType, ResponseStatus
from closedloop.polls.views_dashboards import (
    filter_context,
    member_required,
    membership_of,
    stats_module,
)

CHUNK = 1000
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def account_zone(account: Any) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(getattr(account, "time_zone", "") or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def _local(value: dt.datetime | None, zone: zoneinfo.ZoneInfo) -> dt.datetime | None:
    """Aware time → naive local time of the account (Excel has no time zones)."""
    if value is None:
        return None
    return value.astimezone(zone).replace(tzinfo=None)


def response_header(questions: list[Question]) -> list[str]:
    header = [
        _("run uuid"),
        _("contact"),
        _("contact uuid"),
        _("panel"),
        _("status"),
        _("active"),
        _("started"),
        _("updated"),
    ]
    for question in questions:
        header.append(question.display_name)
        if question.type != QuestionType.OPEN:
            header.append(_("%(question)s (category)") % {"question": question.display_name})
    return header


def response_rows(
    membership: Membership, pollrun: PollRun, questions: list[Question]
) -> Iterator[list[Any]]:
    """One row per response (superseded ones included), answers fetched per chunk."""
    zone = account_zone(membership.account)
    statuses = dict(ResponseStatus.choices)
    responses = (
        selectors.visible_responses(membership)
        .filter(pollrun=pollrun)
        .order_by("contact__name", "contact_id", "created_on", "pk")
        .values_list(
            "pk",
            "run_uuid",
            "contact__name",
            "contact__uuid",
            "contact__panel__name",
            "status",
            "is_active",
            "created_on",
            "updated_on",
        )
    )
    question_ids = [q.pk for q in questions]
    chunk: list[tuple[Any, ...]] = []

    def flush() -> Iterator[list[Any]]:
        answers: dict[tuple[int, int], tuple[str, str]] = {}
        for response_id, question_id, value, category in Answer.objects.filter(
            response_id__in=[row[0] for row in chunk], question_id__in=question_ids
        ).values_list("response_id", "question_id", "value", "category"):
            answers[(response_id, question_id)] = (value, category)
        for pk, run_uuid, name, uuid, panel, status, active, created, updated in chunk:
            row: list[Any] = [
                run_uuid,
                name,
                uuid,
                panel or "",
                str(statuses.get(status, status)),
                bool(active),
                _local(created, zone),
                _local(updated, zone),
            ]
            for question in questions:
                value, category = answers.get((pk, question.pk), ("", ""))
                row.append(value)
                if question.type != QuestionType.OPEN:
                    row.append(category)
            yield row

    for item in responses.iterator(chunk_size=CHUNK):
        chunk.append(item)
        if len(chunk) >= CHUNK:
            yield from flush()
            chunk = []
    if chunk:
        yield from flush()


def _csv_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.strftime(TIME_FORMAT)
    return value


def _csv_stream(
    membership: Membership, pollrun: PollRun, questions: list[Question]
) -> Iterator[str]:
    """Streamed after the view returned, so it re-enters the account scope itself."""

    class Echo:
        def write(self, value: str) -> str:
            return value

    writer = csv.writer(Echo())
    yield "\ufeff" + writer.writerow(response_header(questions))
    with account_scope(membership.account_id):
        for row in response_rows(membership, pollrun, questions):
            yield writer.writerow([_csv_value(v) for v in row])


def _filename(pollrun: PollRun, ext: str) -> str:
    name = slugify(pollrun.poll.display_name) or f"poll-{pollrun.poll_id}"
    return f"{name}-{pollrun.local_date.isoformat()}-responses.{ext}"


def _xlsx_response(book: Any, filename: str) -> FileResponse:
    handle = tempfile.TemporaryFile()  # noqa: SIM115 - FileResponse closes it
    book.save(handle)
    handle.seek(0)
    return FileResponse(handle, as_attachment=True, filename=filename, content_type=XLSX_TYPE)


@member_required
@require_GET
def pollrun_export(request: HttpRequest, pk: int, fmt: str) -> HttpResponseBase:
    membership = membership_of(request)
    pollrun = selectors.get_pollrun(membership, pk)
    questions = list(selectors.visible_questions(pollrun.poll))
    if fmt == "csv":
        response = StreamingHttpResponse(
            _csv_stream(membership, pollrun, questions), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="{_filename(pollrun, "csv")}"'
        return response
    if fmt != "xlsx":
        raise Http404
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet(_("Responses"))
    sheet.append(response_header(questions))
    for row in response_rows(membership, pollrun, questions):
        sheet.append(row)
    return _xlsx_response(book, _filename(pollrun, "xlsx"))


# --- a poll's per-date figures ----------------------------------------------------------


def sheet_title(name: str, used: set[str]) -> str:
    """Excel sheet names: at most 31 characters, none of []:*?/\\, unique."""
    base = re.sub(r"[\[\]:*?/\\]", " ", name).strip()[:28] or "Sheet"
    title, n = base, 1
    while title.lower() in used:
        n += 1
        title = f"{base[:25]} ({n})"
    used.add(title.lower())
    return title


def _numeric_rows(data: dict[str, Any]) -> Iterator[list[Any]]:
    yield [_("date"), _("sum"), _("average"), _("response rate (%)")]
    for i, day in enumerate(data.get("dates", [])):
        yield [
            _as_date(day),
            data["sum"][i],
            data["average"][i],
            data["response_rate"][i],
        ]


def _categorical_rows(data: dict[str, Any]) -> Iterator[list[Any]]:
    categories = list(data.get("categories", []))
    yield [_("date"), *categories, *[f"{c} (%)" for c in categories]]
    for i, day in enumerate(data.get("dates", [])):
        yield [
            _as_date(day),
            *[data["counts"][c][i] for c in categories],
            *[data["shares"][c][i] for c in categories],
        ]


def _as_date(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value[:10])
        except ValueError:
            return value
    return value


@member_required
@require_GET
def poll_export(request: HttpRequest, pk: int) -> FileResponse:
    membership = membership_of(request)
    poll = selectors.get_poll(membership, pk)
    filters = filter_context(request, membership)["filters"]
    stats = stats_module()
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    used: set[str] = set()
    for question in selectors.visible_questions(poll):
        sheet = book.create_sheet(sheet_title(question.display_name, used))
        if question.type == QuestionType.NUMERIC:
            rows = _numeric_rows(stats.numeric_series(question, filters))
        elif question.type == QuestionType.CATEGORICAL:
            rows = _categorical_rows(stats.categorical_series(question, filters))
        else:
            words = stats.word_cloud(question, filters, limit=200)
            rows = iter([[_("word"), _("count")], *[[w["word"], w["count"]] for w in words]])
        for row in rows:
            sheet.append(row)
    if not used:
        book.create_sheet(_("Poll")).append([_("This poll has no questions.")])
    name = slugify(poll.display_name) or f"poll-{poll.pk}"
    return _xlsx_response(book, f"{name}-figures.xlsx")
