"""Reading every kind of source into a :class:`ParsedTable`: a typed Polars frame.

All sources are normalised alike: column names stripped (at most 63 characters, no
duplicates), text values stripped with empty text as null, fully empty rows dropped,
types inferred by :mod:`infer` and at least one column that can serve as a key.
Row numbers in messages are those a person sees in the file: the header is row 1.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from django.conf import settings
from django.utils.translation import gettext as _

from closedloop.core.tabular import TabularError, detect_delimiter, detect_encoding, read_csv_text
from closedloop.feedback.dataops import infer
from closedloop.feedback.dataops.errors import FeedbackError, data_error
from closedloop.feedback.models import COLUMN_NAME_MAX
from closedloop.feedback.services_table import check_column_name

KINDS = ("csv", "xlsx", "json")
SNIFF_CHARS = 64 * 1024


@dataclass
class ParsedTable:
    """A typed frame ready for the wizard: ``types[name]`` is each column's type."""

    frame: pl.DataFrame
    types: dict[str, str]
    source: str
    notes: list[str] = field(default_factory=list)
    #: the file's row number of each frame row (header = 1); None: index + 2
    row_numbers: list[int] | None = None

    @property
    def nrows(self) -> int:
        return self.frame.height

    def key_candidates(self) -> list[str]:
        """Columns with a value in every row and no value twice."""
        return key_candidates(self.frame)


def key_candidates(frame: pl.DataFrame) -> list[str]:
    if frame.height == 0 or not frame.columns:
        return []
    stats = frame.select(
        [
            ((pl.col(c).null_count() == 0) & (pl.col(c).n_unique() == pl.len())).alias(c)
            for c in frame.columns
        ]
    ).row(0)
    return [c for c, ok in zip(frame.columns, stats, strict=True) if ok]


def max_upload_size() -> int:
    return int(getattr(settings, "DATAOPS_MAX_UPLOAD_SIZE", 209_715_200))


def check_size(size: int) -> None:
    limit = max_upload_size()
    if size > limit:
        raise data_error(
            _("The data is %(size)s; the largest accepted is %(max)s.")
            % {"size": _human_size(size), "max": _human_size(limit)}
        )


def _human_size(size: int) -> str:
    if size >= 1_000_000:
        return f"{size / 1_000_000:.1f} MB"
    if size >= 1_000:
        return f"{size / 1_000:.1f} kB"
    return _("%(n)d bytes") % {"n": size}


def default_time_zone() -> str:
    return str(getattr(settings, "TIME_ZONE", "UTC") or "UTC")


# --- names and keys -------------------------------------------------------------------


def check_names(names: Sequence[str]) -> list[str]:
    """Stripped column names; an error names the empty, too long or repeated one."""
    cleaned = [str(n).strip() for n in names]
    seen: dict[str, int] = {}
    for position, name in enumerate(cleaned, start=1):
        if not name:
            raise data_error(
                _("Column %(n)d has no name: give every column a name in the first row.")
                % {"n": position},
                row=1,
            )
        if len(name) > COLUMN_NAME_MAX:
            raise data_error(
                _("The column name “%(name)s” is %(len)d characters long; at most %(max)d.")
                % {"name": name, "len": len(name), "max": COLUMN_NAME_MAX},
                row=1,
                column=name,
            )
        if name in seen:
            raise data_error(
                _("The column name “%(name)s” appears twice (columns %(a)d and %(b)d).")
                % {"name": name, "a": seen[name], "b": position},
                row=1,
                column=name,
            )
        seen[name] = position
        check_column_name(name)  # the platform's rules: no quotes, no leading "__"
    return cleaned


def finish(
    frame: pl.DataFrame,
    *,
    source: str,
    time_zone: str,
    notes: list[str] | None = None,
    row_numbers: list[int] | None = None,
    text_inference: str = "full",
) -> ParsedTable:
    """Type the frame, drop empty rows and check there is data and a possible key."""
    if row_numbers is None:
        row_numbers = list(range(2, frame.height + 2))
    empty = frame.select(pl.all_horizontal(_empty_exprs(frame))).to_series()
    if empty.any():  # fully empty rows are dropped
        frame = frame.filter(~empty)
        row_numbers = [n for n, e in zip(row_numbers, empty.to_list(), strict=True) if not e]
    if text_inference == "datetime":
        typed, found = _type_datetimes_only(frame, time_zone)
    else:
        typed, found = infer.type_text_frame(frame, time_zone)
    if typed.height == 0:
        raise data_error(_("There is no data: the file has a header but no rows."))
    parsed = ParsedTable(typed, found, source, notes or [], row_numbers)
    if not parsed.key_candidates():
        raise data_error(
            _(
                "No column can be a key: a key needs a value in every row and no value twice. "
                "Add a column with a unique identifier (e.g. an email or an id)."
            )
        )
    return parsed


def _empty_exprs(frame: pl.DataFrame) -> list[pl.Expr]:
    exprs = []
    for name, dtype in frame.schema.items():
        expr = pl.col(name).is_null()
        if dtype == pl.String:
            expr = expr | (pl.col(name).str.strip_chars() == "")
        exprs.append(expr)
    return exprs


def _type_datetimes_only(frame: pl.DataFrame, time_zone: str) -> tuple[pl.DataFrame, dict]:
    """Sources with native types (SQL, spreadsheets): only text columns are tried as datetimes."""
    columns, found = [], {}
    for name in frame.columns:
        series = frame.get_column(name)
        data_type = infer.type_of_dtype(series.dtype)
        if data_type == "string":
            text = infer.clean_text(series)
            values = text.drop_nulls()
            if not values.is_empty() and values.str.contains(infer.DATE_PREFIX_RE).all():
                converted = infer.parse_datetime(text, time_zone)
                if converted.null_count() == text.null_count():
                    text, data_type = converted, "datetime"
            columns.append(text)
        elif data_type is None:
            columns.append(infer.clean_text(series.cast(pl.String)))
            data_type = "string"
        else:
            columns.append(infer.coerce_series(series, data_type, time_zone))
        found[name] = data_type
    return pl.DataFrame(columns), found


# --- CSV ------------------------------------------------------------------------------


def _skip_lines(text: str, top: int, bottom: int) -> str:
    for label, value in ((_("top"), top), (_("bottom"), bottom)):
        if value < 0:
            raise data_error(
                _("Lines to skip at the %(where)s cannot be negative.") % {"where": label}
            )
    start = 0
    for _n in range(top):
        found = text.find("\n", start)
        if found < 0:
            raise data_error(_("The file has fewer lines than the lines to skip."))
        start = found + 1
    end = len(text.rstrip("\r\n"))
    for _n in range(bottom):
        found = text.rfind("\n", start, end)
        if found < 0:
            raise data_error(_("The file has fewer lines than the lines to skip."))
        end = found
    return text[start:end] if (top or bottom) else text


def parse_csv(
    data: bytes,
    *,
    skip_top: int = 0,
    skip_bottom: int = 0,
    delimiter: str | None = None,
    encoding: str | None = None,
    time_zone: str | None = None,
) -> ParsedTable:
    time_zone = time_zone or default_time_zone()
    check_size(len(data))
    if not data.strip():
        raise data_error(_("The file is empty."))
    try:
        text, used = detect_encoding(data, encoding)
    except (TabularError, UnicodeDecodeError) as exc:
        raise data_error(str(exc), row=getattr(exc, "row", None)) from None
    if "\x00" in text[:SNIFF_CHARS] or _looks_binary(text[:SNIFF_CHARS]):
        raise data_error(_("The file contains binary data; it does not look like a CSV file."))
    text = _skip_lines(text, skip_top, skip_bottom)
    if not text.strip():
        raise data_error(_("The file is empty."))
    sep = delimiter or detect_delimiter(text)
    sep = "\t" if sep == "\\t" else sep
    try:
        header = next(csv.reader(io.StringIO(text[:SNIFF_CHARS], newline=""), delimiter=sep))
    except (csv.Error, StopIteration):
        raise data_error(_("The first row (the header) cannot be read."), row=1) from None
    while header and not header[-1].strip() and len(header) > 1:
        header.pop()  # trailing separators after the last name
    names = check_names(header)
    body = data if used == "utf-8" and not (skip_top or skip_bottom) else text.encode("utf-8")
    frame = _read_csv_fast(body, sep, len(names))
    if frame is None:
        frame = _read_csv_checked(text, sep, names, skip_top)
    elif frame.width != len(names):
        frame = frame.select(frame.columns[: len(names)])
    frame.columns = names
    notes = [_("Encoding %(enc)s, delimiter “%(sep)s”.") % {"enc": used, "sep": _sep_name(sep)}]
    numbers = list(range(2 + skip_top, frame.height + 2 + skip_top)) if skip_top else None
    return finish(
        frame,
        source="csv",
        time_zone=time_zone,
        notes=notes,
        row_numbers=numbers,
    )


def _looks_binary(sample: str) -> bool:
    control = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\r\n\t\f\v")
    return control > max(8, len(sample) // 100)


def _sep_name(sep: str) -> str:
    return {"\t": "tab", ",": ",", ";": ";", "|": "|"}.get(sep, sep)


def _read_csv_fast(body: bytes, sep: str, width: int) -> pl.DataFrame | None:
    """Polars, every column as text. None if the file needs the careful reader."""
    try:
        frame = pl.read_csv(
            io.BytesIO(body),
            separator=sep,
            has_header=True,
            infer_schema=False,
            quote_char='"',
        )
    except (pl.exceptions.PolarsError, UnicodeDecodeError):
        return None
    if frame.width < width:
        return None
    return frame


def _read_csv_checked(text: str, sep: str, names: list[str], skip_top: int) -> pl.DataFrame:
    """The careful reader: finds the row at fault, or reads files Polars refuses."""
    try:
        table = read_csv_text(text, sep)
    except TabularError as exc:
        row = exc.row + skip_top if exc.row else None
        message = str(exc)
        if exc.row and skip_top:
            message = message.replace(f"Row {exc.row} ", f"Row {row} ")
        raise data_error(message, row=row, column=exc.column) from None
    columns = list(zip(*table.rows, strict=True)) if table.rows else [() for _n in names]
    return pl.DataFrame(
        {f"c{i}": list(col) for i, col in enumerate(columns[: len(names)])},
        schema={f"c{i}": pl.String for i in range(len(names))},
    )


# --- Excel ----------------------------------------------------------------------------


def xlsx_sheet_names(data: bytes) -> list[str]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True)
    except Exception:
        raise data_error(_("The file is not a readable Excel .xlsx workbook.")) from None
    try:
        return list(workbook.sheetnames)
    finally:
        workbook.close()


def parse_xlsx(
    data: bytes,
    *,
    sheet: str | None = None,
    skip_top: int = 0,
    time_zone: str | None = None,
) -> ParsedTable:
    from openpyxl import load_workbook

    time_zone = time_zone or default_time_zone()
    check_size(len(data))
    if not data:
        raise data_error(_("The file is empty."))
    if data[:2] != b"PK":
        raise data_error(_("The file is not an Excel .xlsx workbook."))
    if skip_top < 0:
        raise data_error(_("Lines to skip at the top cannot be negative."))
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:
        raise data_error(_("The file is not a readable Excel .xlsx workbook.")) from None
    try:
        if sheet and sheet not in workbook.sheetnames:
            raise data_error(
                _("Sheet “%(sheet)s” is not in the workbook. Sheets: %(found)s.")
                % {"sheet": sheet, "found": ", ".join(workbook.sheetnames)}
            )
        worksheet = workbook[sheet] if sheet else workbook.worksheets[0]
        rows = worksheet.iter_rows(values_only=True)
        for _n in range(skip_top):
            next(rows, None)
        header = list(next(rows, ()) or ())
        while header and (header[-1] is None or str(header[-1]).strip() == ""):
            header.pop()
        if not header:
            raise data_error(_("The sheet is empty."))
        names = check_names([infer.python_value_text(h) or "" for h in header])
        width = len(names)
        body: list[tuple[Any, ...]] = []
        numbers: list[int] = []
        for number, row in enumerate(rows, start=2 + skip_top):
            cells = tuple(row[:width]) + (None,) * (width - len(row[:width]))
            if all(c is None or (isinstance(c, str) and not c.strip()) for c in cells):
                continue  # fully empty rows are dropped
            body.append(cells)
            numbers.append(number)
        title = worksheet.title
    finally:
        workbook.close()
    frame = frame_from_rows(names, body)
    return finish(
        frame,
        source="xlsx",
        time_zone=time_zone,
        notes=[_("Sheet “%(sheet)s”.") % {"sheet": title}],
        row_numbers=numbers,
        text_inference="full",
    )


# --- rows of Python values (spreadsheets, SQL, JSON, table sources) --------------------


def column_series(name: str, values: list[Any]) -> pl.Series:
    """A column of driver / JSON values: its native dtype when every value agrees,
    else its values as text (typed later like a CSV column)."""
    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return pl.Series(name, values, dtype=pl.String)
    if kinds == {bool}:
        return pl.Series(name, values, dtype=pl.Boolean)
    if kinds == {int}:
        if all(-(2**63) <= v < 2**63 for v in values if v is not None):
            return pl.Series(name, values, dtype=pl.Int64)
    elif kinds <= {int, float, decimal.Decimal}:
        return pl.Series(name, [None if v is None else float(v) for v in values], pl.Float64)
    elif kinds <= {dt.datetime}:
        aware = {v.tzinfo is not None for v in values if v is not None}
        if aware == {True}:
            return pl.Series(name, values, dtype=pl.Datetime("us", "UTC"), strict=False)
        if aware == {False}:
            return pl.Series(name, values, dtype=pl.Datetime("us"))
    elif kinds <= {dt.date}:
        return pl.Series(name, values, dtype=pl.Date)
    if kinds == {str}:
        return pl.Series(name, values, dtype=pl.String)
    return pl.Series(name, [infer.python_value_text(v) for v in values], dtype=pl.String)


def frame_from_rows(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> pl.DataFrame:
    columns = list(zip(*rows, strict=True)) if rows else [() for _n in names]
    return pl.DataFrame([column_series(n, list(c)) for n, c in zip(names, columns, strict=True)])


def frame_from_records(records: Iterable[dict[str, Any]]) -> tuple[list[str], pl.DataFrame]:
    """Records (dicts) → frame; columns in order of first appearance."""
    items = list(records)
    names: dict[str, None] = {}
    for record in items:
        if not isinstance(record, dict):
            raise data_error(
                _("Every record must be an object with column names as keys, e.g. %(ex)s.")
                % {"ex": '[{"email": "ann@example.org", "score": 7}]'}
            )
        names.update(dict.fromkeys(record))
    columns = check_names(list(names))
    originals = list(names)
    rows = [tuple(r.get(n) for n in originals) for r in items]
    return columns, frame_from_rows(columns, rows)


def parse_records(
    records: Any, *, time_zone: str | None = None, source: str = "json"
) -> ParsedTable:
    if not isinstance(records, list):
        raise data_error(
            _("The JSON must be a list of records (objects), e.g. %(ex)s.")
            % {"ex": '[{"email": "ann@example.org", "score": 7}]'}
        )
    if not records:
        raise data_error(_("There is no data: the list of records is empty."))
    _names, frame = frame_from_records(records)
    return finish(
        frame,
        source=source,
        time_zone=time_zone or default_time_zone(),
        row_numbers=list(range(1, frame.height + 1)),
    )


def parse_json(data: bytes, *, time_zone: str | None = None) -> ParsedTable:
    check_size(len(data))
    if not data.strip():
        raise data_error(_("The file is empty."))
    try:
        text, _used = detect_encoding(data)
        document = json.loads(text)
    except (TabularError, ValueError) as exc:
        raise data_error(_("The file is not valid JSON: %(err)s") % {"err": exc}) from None
    if isinstance(document, dict) and isinstance(document.get("records"), list):
        document = document["records"]
    return parse_records(document, time_zone=time_zone)


def parse_upload(
    kind: str,
    data: bytes,
    *,
    skip_top: int = 0,
    skip_bottom: int = 0,
    sheet: str | None = None,
    delimiter: str | None = None,
    encoding: str | None = None,
    time_zone: str | None = None,
) -> ParsedTable:
    """Parse an uploaded file of ``kind`` ("csv", "xlsx" or "json")."""
    if kind == "csv":
        return parse_csv(
            data,
            skip_top=skip_top,
            skip_bottom=skip_bottom,
            delimiter=delimiter,
            encoding=encoding,
            time_zone=time_zone,
        )
    if kind == "xlsx":
        return parse_xlsx(data, sheet=sheet, skip_top=skip_top, time_zone=time_zone)
    if kind == "json":
        return parse_json(data, time_zone=time_zone)
    raise data_error(_("Unknown file kind “%(kind)s”.") % {"kind": kind})


# --- the other sources (their own modules; here so callers have one entry point) ------


def load_sql(connection: Any, *, password: str | None = None, table: str | None = None,
             query: str | None = None, time_zone: str | None = None) -> ParsedTable:  # fmt: skip
    from closedloop.feedback.dataops.sqlconn import read_connection

    return read_connection(
        connection, password=password, table=table, query=query, time_zone=time_zone
    )


def load_table_source(
    key: str, *, account: Any, membership: Any, params: dict[str, Any] | None = None
) -> ParsedTable:
    from closedloop.core.tablesource import table_sources

    try:
        source = table_sources.get(key)
    except LookupError:
        raise data_error(_("There is no table source “%(key)s”.") % {"key": key}) from None
    params = params or {}
    declared = source.columns(account=account, params=params)
    names = [c.name for c in declared]
    rows = [tuple(r.get(n) for n in names) for r in source.rows(
        account=account, membership=membership, params=params)]  # fmt: skip
    if not rows:
        raise data_error(_("The table source “%(title)s” has no rows you may see.") % {
            "title": source.title})  # fmt: skip
    frame = frame_from_rows(check_names(names), rows)
    time_zone = getattr(account, "time_zone", "") or default_time_zone()
    frame = pl.DataFrame(
        [infer.coerce_series(frame.get_column(c.name), c.type, time_zone) for c in declared]
    )
    types = {c.name: c.type for c in declared}
    parsed = ParsedTable(frame, types, f"table:{key}", [str(source.title)])
    if not parsed.key_candidates():
        raise data_error(_("No column of this table source can be a key."))
    return parsed


def load_remote(
    url: str,
    *,
    kind: str = "csv",
    access_key: str | None = None,
    secret_key: str | None = None,
    region: str | None = None,
    time_zone: str | None = None,
    **options: Any,
) -> ParsedTable:
    from closedloop.feedback.dataops.remote import fetch_remote

    data, detected = fetch_remote(url, access_key=access_key, secret_key=secret_key, region=region)
    parsed = parse_upload(detected or kind, data, time_zone=time_zone, **options)
    parsed.source = "remote"
    return parsed


__all__ = [
    "FeedbackError",
    "ParsedTable",
    "check_names",
    "key_candidates",
    "load_remote",
    "load_sql",
    "load_table_source",
    "parse_csv",
    "parse_json",
    "parse_records",
    "parse_upload",
    "parse_xlsx",
]
