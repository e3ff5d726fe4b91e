"""The table page (server-side paging, sorting, search), view table pages, CSV / XLSX
downloads and undo. Rows are read through ``feedback.table``; nothing here loops over
the whole table in Python except the downloads, which stream it in chunks."""

from __future__ import annotations

import csv
import io
import math
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from html import escape
from typing import Any

import polars as pl
from django.contrib import messages
from django.db import connection
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from closedloop.feedback import conditions, selectors, services
from closedloop.feedback import table as tbl
from closedloop.feedback.models import Column, DataType, TableVersion, View, Workflow
from closedloop.feedback.templatetags.feedback_pages import cell
from closedloop.feedback.views_workflows import (
    error_text,
    load_workflow,
    member_required,
    workflow_context,
)

PAGE_SIZE = 50
DOWNLOAD_CHUNK = 20_000
NUMERIC = (DataType.INTEGER, DataType.DOUBLE)


@dataclass
class TableState:
    q: str
    sort: Column | None
    desc: bool
    page: int

    def query(self, **changes: Any) -> str:
        """The query string of this state with ``changes`` (for links)."""
        from urllib.parse import urlencode

        values = {
            "q": self.q,
            "sort": self.sort.pk if self.sort else "",
            "desc": "1" if self.desc else "",
            "page": self.page,
        }
        values.update(changes)
        if str(values.get("page")) == "1":
            values["page"] = ""
        return urlencode({k: v for k, v in values.items() if v not in ("", None)})


def _state(request: HttpRequest, columns: list[Column]) -> TableState:
    by_id = {str(c.pk): c for c in columns}
    try:
        page = max(1, int(request.GET.get("page", "1")))
    except ValueError:
        page = 1
    return TableState(
        q=request.GET.get("q", "").strip()[:200],
        sort=by_id.get(request.GET.get("sort", "")),
        desc=request.GET.get("desc") == "1",
        page=page,
    )


def has_table(workflow: Workflow, columns: list[Column]) -> bool:
    return bool(columns) and tbl.table_exists(workflow.table_name)


def _where_and(*parts: tuple[str, list[Any]]) -> tuple[str, list[Any]]:
    sqls = [f"({sql})" for sql, _p in parts if sql]
    params = [v for sql, p in parts if sql for v in p]
    return " AND ".join(sqls), params


def key_text(value: Any) -> str:
    """A key value as it travels in a URL (exact: ISO datetimes, true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


def row_query(key: Column, value: Any) -> str:
    from urllib.parse import urlencode

    return urlencode({"key": key.name, "value": key_text(value)})


def key_column(columns: list[Column]) -> Column | None:
    return next((c for c in columns if c.is_key), None)


def row_cells_html(
    row: dict[str, Any], columns: list[Column], key: Column | None, row_url: str
) -> SafeString:
    """The ``<td>`` cells of one row. Built here rather than in the template: a page
    has 1,000 cells, and the template language would spend most of the page's time on them."""
    parts = []
    for column in columns:
        value = row[column.name]
        css = "cl-cell cl-num" if column.data_type in NUMERIC else "cl-cell"
        if column.is_key:
            css += " cl-key"
        if value is None:
            parts.append(f'<td class="{css}"><span class="text-body-tertiary">·</span></td>')
        elif key is not None and column.pk == key.pk and row_url:
            href = escape(f"{row_url}?{row_query(key, value)}")
            parts.append(
                f'<td class="{css}"><a href="{href}" data-testid="row-link">'
                f"<bdi>{escape(cell(value))}</bdi></a></td>"
            )
        else:
            parts.append(f'<td class="{css}"><bdi>{escape(cell(value))}</bdi></td>')
    return mark_safe("".join(parts))  # noqa: S308 - every value is escaped above


def table_page_data(
    workflow: Workflow,
    columns: list[Column],
    state: TableState,
    *,
    where: tuple[str, list[Any]] = ("", []),
    key: Column | None = None,
    row_url: str = "",
) -> dict[str, Any]:
    """Count + one sorted, searched page of rows, shaped for the template."""
    search = tbl.search_sql(columns, state.q)
    count_where, count_params = _where_and(where, search)
    if count_where:
        total = tbl.count_rows(workflow, where=count_where, params=count_params)
    else:  # the whole table: the services keep its row count up to date
        total = workflow.nrows
    num_pages = max(1, math.ceil(total / PAGE_SIZE))
    page = min(state.page, num_pages)
    rows = tbl.fetch_rows(
        workflow,
        columns,
        where=where[0],
        params=where[1],
        order_by=state.sort,
        descending=state.desc,
        search=state.q,
        offset=(page - 1) * PAGE_SIZE,
        limit=PAGE_SIZE,
    )
    state.page = page
    return {
        "rows": [
            {"rid": row[tbl.ROW_ID], "html": row_cells_html(row, columns, key, row_url)}
            for row in rows
        ],
        "total": total,
        "page_number": page,
        "num_pages": num_pages,
        "first_row": (page - 1) * PAGE_SIZE + 1 if total else 0,
        "last_row": min(page * PAGE_SIZE, total),
        "prev_query": state.query(page=page - 1) if page > 1 else "",
        "next_query": state.query(page=page + 1) if page < num_pages else "",
    }


def _column_urls(workflow: Workflow) -> dict[str, str]:
    """URL patterns of the column menu, reversed once (``{cid}`` filled per column)."""
    names = {
        "stats": "feedback:stats_column",
        "edit": "feedback:column_edit",
        "move": "feedback:column_move",
    }
    return {
        key: reverse(name, args=[workflow.pk, 999_999_999]).replace("999999999", "{cid}")
        for key, name in names.items()
    }


def _header(workflow: Workflow, columns: list[Column], state: TableState) -> list[dict[str, Any]]:
    urls = _column_urls(workflow)
    out = []
    for index, column in enumerate(columns):
        sorted_here = state.sort is not None and state.sort.pk == column.pk
        out.append(
            {
                "column": column,
                "numeric": column.data_type in NUMERIC,
                "sorted": sorted_here,
                "desc": sorted_here and state.desc,
                "asc_query": state.query(sort=column.pk, desc="", page=1),
                "desc_query": state.query(sort=column.pk, desc="1", page=1),
                "toggle_query": state.query(
                    sort=column.pk, desc="1" if sorted_here and not state.desc else "", page=1
                ),
                "first": index == 0,
                "last": index == len(columns) - 1,
                "stats_url": urls["stats"].format(cid=column.pk),
                "edit_url": urls["edit"].format(cid=column.pk),
                "move_url": urls["move"].format(cid=column.pk),
            }
        )
    return out


def _render_table(
    request: HttpRequest,
    workflow: Workflow,
    columns: list[Column],
    *,
    view: View | None = None,
    where: tuple[str, list[Any]] = ("", []),
    filter_error: str = "",
) -> HttpResponse:
    all_columns = columns if view is None else selectors.columns_of(workflow)
    state = _state(request, columns)
    key = key_column(all_columns)
    ready = has_table(workflow, all_columns)
    data = (
        table_page_data(
            workflow,
            columns,
            state,
            where=where,
            key=key,
            row_url=reverse("feedback:row_edit", args=[workflow.pk]),
        )
        if ready and columns and not filter_error
        else {"rows": [], "total": 0}
    )
    show_key = key is not None and key in columns
    context = workflow_context(
        workflow,
        "table",
        columns=columns,
        header=_header(workflow, columns, state),
        state=state,
        key=key,
        key_index=columns.index(key) if key is not None and show_key else None,
        has_data=ready,
        view=view,
        filter_error=filter_error,
        views=list(workflow.views.order_by("name").only("pk", "name")),
        last_version=(
            TableVersion.objects.filter(workflow=workflow).order_by("-number").first()
            if view is None
            else None
        ),
        **data,
    )
    template = "feedback/table.html"
    if getattr(request, "htmx", None) and request.htmx.target == "table-results":  # type: ignore[attr-defined]
        template += "#results"
    return render(request, template, context)


@member_required
def table_page(request: HttpRequest, wid: int) -> HttpResponse:
    workflow = load_workflow(request, wid)
    return _render_table(request, workflow, selectors.columns_of(workflow))


def view_columns_and_where(
    workflow: Workflow, view: View
) -> tuple[list[Column], tuple[str, list[Any]], str]:
    """The view's columns (its order; all when empty) and its filter's SQL."""
    all_columns = selectors.columns_of(workflow)
    by_id = {c.pk: c for c in all_columns}
    columns = [by_id[i] for i in view.column_ids or [] if i in by_id] or all_columns
    where: tuple[str, list[Any]] = ("", [])
    error = ""
    if view.filter_id and view.filter is not None:
        try:
            predicate = conditions.compile_formula(view.filter.formula, all_columns)
        except conditions.ConditionError as exc:
            error = _("The view's filter cannot be used: %(error)s") % {"error": exc}
        else:
            where = (predicate.sql, list(predicate.params))
    return columns, where, error


def _load_view(workflow: Workflow, vid: int) -> View:
    view = View.objects.select_related("filter").filter(workflow=workflow, pk=vid).first()
    if view is None:
        raise Http404
    return view


@member_required
def view_table(request: HttpRequest, wid: int, vid: int) -> HttpResponse:
    workflow = load_workflow(request, wid)
    view = _load_view(workflow, vid)
    columns, where, error = view_columns_and_where(workflow, view)
    return _render_table(request, workflow, columns, view=view, where=where, filter_error=error)


# --- downloads ---------------------------------------------------------------------------


def _frames(
    workflow: Workflow, columns: list[Column], where: tuple[str, list[Any]]
) -> Iterator[pl.DataFrame]:
    """The rows in row-id ranges of DOWNLOAD_CHUNK (index range scans, no OFFSET)."""
    if not has_table(workflow, columns):
        return
    rid = tbl.qn(tbl.ROW_ID)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT MAX({rid}) FROM {tbl.qn(workflow.table_name)}")
        top = cursor.fetchone()[0] or 0
    start = 0
    while start < top:
        sql, params = _where_and(
            where, (f"{rid} > %s AND {rid} <= %s", [start, start + DOWNLOAD_CHUNK])
        )
        frame = tbl.read_frame(workflow, columns, where=sql, params=params)
        start += DOWNLOAD_CHUNK
        if frame.height:
            yield frame


def _csv_ready(frame: pl.DataFrame, columns: list[Column]) -> pl.DataFrame:
    fixes = []
    for column in columns:
        if column.data_type == DataType.DATETIME:
            fixes.append(pl.col(column.name).dt.strftime("%Y-%m-%dT%H:%M:%S%.6f+00:00"))
        elif column.data_type == DataType.BOOLEAN:
            fixes.append(
                pl.when(pl.col(column.name))
                .then(pl.lit("true"))
                .when(~pl.col(column.name))
                .then(pl.lit("false"))
                .alias(column.name)
            )
    return frame.with_columns(fixes) if fixes else frame


def _csv_stream(
    workflow: Workflow, columns: list[Column], where: tuple[str, list[Any]]
) -> Iterator[bytes]:
    header = io.StringIO()
    csv.writer(header).writerow([c.name for c in columns])
    yield ("\ufeff" + header.getvalue()).encode("utf-8")
    for frame in _frames(workflow, columns, where):
        yield _csv_ready(frame, columns).write_csv(include_header=False).encode("utf-8")


def _filename(workflow: Workflow, view: View | None, ext: str) -> str:
    base = slugify(workflow.name) or f"workflow-{workflow.pk}"
    if view is not None:
        base += "-" + (slugify(view.name) or f"view-{view.pk}")
    return f"{base}.{ext}"


def _xlsx_response(
    workflow: Workflow, columns: list[Column], where: tuple[str, list[Any]], filename: str
) -> FileResponse:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell  # noqa: F401 - write-only mode

    zone = timezone.get_current_timezone()
    book = Workbook(write_only=True)
    sheet = book.create_sheet(
        title=(workflow.name[:31] or "data").translate(str.maketrans("[]:*?/\\", "_______"))
    )
    sheet.append([c.name for c in columns])
    datetimes = [c.name for c in columns if c.data_type == DataType.DATETIME]
    for frame in _frames(workflow, columns, where):
        if datetimes:
            # Excel has no time zones: local time of the site, as the pages show it
            frame = frame.with_columns(
                [
                    pl.col(n).dt.convert_time_zone(str(zone)).dt.replace_time_zone(None)
                    for n in datetimes
                ]
            )
        for row in frame.iter_rows():
            sheet.append(row)
    handle = tempfile.TemporaryFile()  # noqa: SIM115 - FileResponse closes it
    book.save(handle)
    handle.seek(0)
    return FileResponse(
        handle,
        as_attachment=True,
        filename=filename,
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )


def _download(
    workflow: Workflow,
    columns: list[Column],
    where: tuple[str, list[Any]],
    fmt: str,
    view: View | None = None,
) -> HttpResponseBase:
    if fmt == "xlsx":
        return _xlsx_response(workflow, columns, where, _filename(workflow, view, "xlsx"))
    if fmt != "csv":
        raise Http404
    response = StreamingHttpResponse(
        _csv_stream(workflow, columns, where), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{_filename(workflow, view, "csv")}"'
    return response


@member_required
def table_download(request: HttpRequest, wid: int, fmt: str) -> HttpResponseBase:
    workflow = load_workflow(request, wid)
    return _download(workflow, selectors.columns_of(workflow), ("", []), fmt)


@member_required
def view_download(request: HttpRequest, wid: int, vid: int, fmt: str) -> HttpResponseBase:
    workflow = load_workflow(request, wid)
    view = _load_view(workflow, vid)
    columns, where, error = view_columns_and_where(workflow, view)
    if error:
        messages.error(request, error)
        return redirect("feedback:view_table", wid=workflow.pk, vid=view.pk)
    return _download(workflow, columns, where, fmt, view)


# --- undo --------------------------------------------------------------------------------


@member_required
@require_POST
def table_undo(request: HttpRequest, wid: int) -> HttpResponse:
    workflow = load_workflow(request, wid, "edit")
    try:
        version = tbl.undo_last(workflow, actor=request.user)
    except services.FeedbackError as exc:
        messages.error(request, error_text(exc))
    else:
        messages.success(
            request,
            _("Undone: %(label)s. The table is back as it was before.") % {"label": version.label},
        )
    return redirect("feedback:table", wid=workflow.pk)
