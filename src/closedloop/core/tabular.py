"""Reading uploaded spreadsheets: CSV (any delimiter, UTF-8 with or without BOM,
UTF-16, Latin-1 / Windows-1252) and Excel ``.xlsx``.

Every importer starts here so bad files get the same clear errors everywhere:
:class:`TabularError` says what is wrong and, where it can, at which row.
Row numbers are the ones a person sees in a spreadsheet: the header is row 1.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.utils.translation import gettext as _

DELIMITERS = [",", ";", "\t", "|"]
SNIFF_BYTES = 64 * 1024
csv.field_size_limit(10 * 1024 * 1024)


class TabularError(ValueError):
    """The file cannot be read as a table; the message says why (and where)."""

    def __init__(self, message: str, row: int | None = None, column: str | None = None):
        super().__init__(message)
        self.row = row
        self.column = column


@dataclass
class Table:
    """A header and its rows, as text. ``rows[i]`` is spreadsheet row ``first_row + i``."""

    columns: list[str]
    rows: list[list[str]]
    encoding: str = ""
    delimiter: str = ""
    sheet: str = ""
    first_row: int = 2
    skipped_blank: int = 0
    notes: list[str] = field(default_factory=list)

    def row_number(self, index: int) -> int:
        return self.first_row + index

    def column_index(self, name: str) -> int:
        try:
            return self.columns.index(name)
        except ValueError:
            raise TabularError(
                _("Column “%(name)s” is not in the file. Columns found: %(found)s.")
                % {"name": name, "found": ", ".join(self.columns) or _("none")},
                column=name,
            ) from None

    def records(self) -> Iterator[tuple[int, dict[str, str]]]:
        for index, row in enumerate(self.rows):
            yield self.row_number(index), dict(zip(self.columns, row, strict=False))


def detect_encoding(raw: bytes, encoding: str | None = None) -> tuple[str, str]:
    """Decode ``raw``; returns (text, encoding name). A given encoding is used as is."""
    if encoding:
        try:
            return raw.decode(encoding), encoding
        except LookupError:
            raise TabularError(_("Unknown encoding “%(enc)s”.") % {"enc": encoding}) from None
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise TabularError(
                _(
                    "The file is not valid %(enc)s (line %(line)d, byte %(byte)d). "
                    "Choose another encoding."
                )
                % {"enc": encoding, "line": line, "byte": exc.start},
                row=line,
            ) from None
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8", errors="strict"), "utf-8-sig"
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16"), "utf-16"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return raw.decode("latin-1"), "latin-1"


def detect_delimiter(text: str) -> str:
    sample = text[:SNIFF_BYTES]
    try:
        return csv.Sniffer().sniff(sample, delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        first_line = sample.split("\n", 1)[0]
        counts = {d: first_line.count(d) for d in DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","


def _clean_header(header: list[str]) -> list[str]:
    columns = [c.strip() for c in header]
    if not any(columns):
        raise TabularError(_("The first row (the header) is empty."), row=1)
    seen: dict[str, int] = {}
    for position, name in enumerate(columns, start=1):
        if not name:
            raise TabularError(
                _("Column %(n)d of the header has no name.") % {"n": position}, row=1
            )
        key = name.lower()
        if key in seen:
            raise TabularError(
                _("The header names column “%(name)s” twice (columns %(a)d and %(b)d).")
                % {"name": name, "a": seen[key], "b": position},
                row=1,
                column=name,
            )
        seen[key] = position
    return columns


def _finish(columns: list[str], body: Iterator[list[str]], table: Table) -> Table:
    width = len(columns)
    rows: list[list[str]] = []
    blank = 0
    for row in body:
        if not any(cell.strip() for cell in row):
            blank += 1
            rows.append([""] * width)  # keep numbering; importers skip blank rows
            continue
        if len(row) > width and any(cell.strip() for cell in row[width:]):
            raise TabularError(
                _("Row %(row)d has %(n)d cells but the header has %(w)d columns.")
                % {"row": table.first_row + len(rows), "n": len(row), "w": width},
                row=table.first_row + len(rows),
            )
        if len(row) < width:
            row = row + [""] * (width - len(row))
        rows.append([cell.strip() for cell in row[:width]])
    while rows and not any(rows[-1]):
        rows.pop()
    table.columns = columns
    table.rows = rows
    table.skipped_blank = blank
    return table


def read_csv_text(text: str, delimiter: str | None = None, encoding: str = "") -> Table:
    if not text.strip():
        raise TabularError(_("The file is empty."))
    if "\x00" in text[:SNIFF_BYTES]:
        raise TabularError(_("The file contains binary data; it does not look like a CSV file."))
    delimiter = delimiter or detect_delimiter(text)
    if delimiter == "\\t":
        delimiter = "\t"
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    table = Table(columns=[], rows=[], encoding=encoding, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise TabularError(_("The file is empty.")) from None
    except csv.Error as exc:
        raise TabularError(_("Row 1 cannot be read: %(err)s") % {"err": exc}, row=1) from None

    def body() -> Iterator[list[str]]:
        index = 0
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise TabularError(
                    _("Row %(row)d cannot be read: %(err)s (check the quotes).")
                    % {"row": table.first_row + index, "err": exc},
                    row=table.first_row + index,
                ) from None
            index += 1
            yield row

    return _finish(_clean_header(header), body(), table)


def read_xlsx(data: bytes, sheet: str | None = None) -> Table:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:
        raise TabularError(
            _("The file is not a readable Excel .xlsx workbook (%(err)s).") % {"err": exc}
        ) from None
    try:
        if sheet:
            if sheet not in workbook.sheetnames:
                raise TabularError(
                    _("Sheet “%(sheet)s” is not in the workbook. Sheets: %(found)s.")
                    % {"sheet": sheet, "found": ", ".join(workbook.sheetnames)}
                )
            worksheet = workbook[sheet]
        else:
            worksheet = workbook.worksheets[0]
        values = worksheet.iter_rows(values_only=True)

        def as_text(cell: object) -> str:
            if cell is None:
                return ""
            if isinstance(cell, float) and cell.is_integer():
                return str(int(cell))
            return str(cell)

        try:
            header = [as_text(c) for c in next(values)]
        except StopIteration:
            raise TabularError(_("The sheet is empty.")) from None
        while header and not header[-1].strip():
            header.pop()
        table = Table(columns=[], rows=[], sheet=worksheet.title)
        body = ([as_text(c) for c in row] for row in values)
        return _finish(_clean_header(header), body, table)
    finally:
        workbook.close()


def is_xlsx(data: bytes, filename: str = "") -> bool:
    return data[:2] == b"PK" or filename.lower().endswith((".xlsx", ".xlsm"))


def read_table(
    source: str | Path | bytes,
    *,
    filename: str = "",
    delimiter: str | None = None,
    encoding: str | None = None,
    sheet: str | None = None,
    max_bytes: int | None = None,
) -> Table:
    """Read a CSV or XLSX file (path or bytes) into a :class:`Table`."""
    if isinstance(source, bytes):
        data = source
    else:
        path = Path(source)
        filename = filename or path.name
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise TabularError(_("Cannot read the file: %(err)s") % {"err": exc}) from None
    if max_bytes is not None and len(data) > max_bytes:
        raise TabularError(
            _("The file is %(size)d MB; the largest accepted is %(max)d MB.")
            % {"size": len(data) // 1_000_000, "max": max_bytes // 1_000_000}
        )
    if is_xlsx(data, filename):
        if data[:2] != b"PK":
            raise TabularError(_("The file is named .xlsx but is not an Excel workbook."))
        return read_xlsx(data, sheet)
    text, used = detect_encoding(data, encoding)
    return read_csv_text(text, delimiter, used)


def preview(table: Table, rows: int = 10) -> dict[str, object]:
    return {
        "columns": table.columns,
        "rows": table.rows[:rows],
        "total_rows": len(table.rows),
        "encoding": table.encoding,
        "delimiter": table.delimiter,
        "sheet": table.sheet,
    }
