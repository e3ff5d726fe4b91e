"""Typing text columns, vectorised: every source ends up as text columns that are typed
here, so a CSV, a JSON body and a spreadsheet give the same types for the same values.

Inference is conservative: a column gets a type only if *every* non-empty value fits it.
Booleans are only ``true``/``false`` (also ``True``/``TRUE``...); ``1``/``0``/``yes`` stay
numbers or text. Integers with a leading zero (``007``, phone numbers, codes) stay text.
Datetimes are ISO 8601 with or without a zone; values without a zone are taken in the
account's time zone and stored in UTC.
"""

from __future__ import annotations

import re
from typing import Any

import polars as pl

TYPES = ("string", "integer", "double", "boolean", "datetime")
DTYPES: dict[str, pl.DataType] = {
    "string": pl.String(),
    "integer": pl.Int64(),
    "double": pl.Float64(),
    "boolean": pl.Boolean(),
    "datetime": pl.Datetime("us", "UTC"),
}

INT_RE = r"^[+-]?\d+$"
LEADING_ZERO_RE = r"^[+-]?0\d"
DOUBLE_RE = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
DATE_PREFIX_RE = r"^\d{4}-\d{2}-\d{2}"
ZONE_SUFFIX_RE = r"[+-]\d{2}:?\d{2}$"
TRUE_VALUES = ["true", "True", "TRUE"]
FALSE_VALUES = ["false", "False", "FALSE"]
ZONE_FORMATS = ["%Y-%m-%d %H:%M:%S%.f%z", "%Y-%m-%d %H:%M%z"]
NAIVE_FORMATS = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%d"]

_first_checks = [
    ("integer", re.compile(INT_RE)),
    ("double", re.compile(DOUBLE_RE)),
    ("datetime", re.compile(DATE_PREFIX_RE)),
]


def dtype_of(data_type: str) -> pl.DataType:
    return DTYPES[data_type]


def type_of_dtype(dtype: pl.DataType) -> str | None:
    """The column type of a Polars dtype, or None if it has none."""
    if dtype == pl.String:
        return "string"
    if dtype == pl.Boolean:
        return "boolean"
    if dtype.is_integer():
        return "integer"
    if dtype.is_float() or dtype.is_decimal():
        return "double"
    if dtype == pl.Datetime or dtype == pl.Date:
        return "datetime"
    return None


def clean_text(series: pl.Series) -> pl.Series:
    """Strip every value; empty strings become null."""
    stripped = series.cast(pl.String).str.strip_chars()
    return stripped.set(stripped.str.len_bytes() == 0, None)  # type: ignore[arg-type]


def parse_datetime(series: pl.Series, time_zone: str) -> pl.Series:
    """ISO 8601 text → ``Datetime("us", "UTC")``; values that do not parse become null."""
    norm = series.str.replace("T", " ", literal=True).str.replace(r"[zZ]$", "+00:00")
    frame = pl.DataFrame({"v": norm})
    aware = pl.coalesce(
        [
            pl.col("v").str.to_datetime(f, strict=False, time_zone="UTC", time_unit="us")
            for f in ZONE_FORMATS
        ]
    )
    naive = (
        pl.coalesce(
            [pl.col("v").str.to_datetime(f, strict=False, time_unit="us") for f in NAIVE_FORMATS]
        )
        .dt.replace_time_zone(time_zone, ambiguous="earliest", non_existent="null")
        .dt.convert_time_zone("UTC")
    )
    has_zone = pl.col("v").str.contains(ZONE_SUFFIX_RE)
    out = frame.select(pl.when(has_zone).then(aware).otherwise(naive).alias(series.name))
    return out.to_series()


def convert_text(series: pl.Series, data_type: str, time_zone: str = "UTC") -> pl.Series:
    """Text (already cleaned) → ``data_type``; values that do not convert become null.

    Compare the null counts before and after (:func:`bad_rows`) to find the failures."""
    if data_type == "string":
        return series
    if data_type == "integer":
        exact = series.str.contains(INT_RE)
        converted = series.str.to_integer(strict=False)
        # "3.0" is accepted as an integer (spreadsheets write integers so)
        as_float = series.cast(pl.Float64, strict=False)
        integral = as_float.is_finite() & (as_float == as_float.floor()) & (as_float.abs() < 2**53)
        from_float = as_float.cast(pl.Int64, strict=False)
        return (
            pl.DataFrame({"e": exact, "i": converted, "g": integral, "f": from_float})
            .select(
                pl.when(pl.col("e"))
                .then(pl.col("i"))
                .when(pl.col("g"))
                .then(pl.col("f"))
                .otherwise(None)
                .alias(series.name)
            )
            .to_series()
        )
    if data_type == "double":
        ok = series.str.contains(DOUBLE_RE)
        return series.set(~ok.fill_null(False), None).cast(pl.Float64, strict=False)  # type: ignore[arg-type]
    if data_type == "boolean":
        return series.replace_strict(
            [*TRUE_VALUES, *FALSE_VALUES],
            [True] * len(TRUE_VALUES) + [False] * len(FALSE_VALUES),
            default=None,
            return_dtype=pl.Boolean,
        )
    if data_type == "datetime":
        return parse_datetime(series, time_zone)
    raise ValueError(f"unknown type {data_type!r}")


def failed_mask(before: pl.Series, after: pl.Series) -> pl.Series:
    """True where a value was present before a conversion and is missing after it."""
    return before.is_not_null() & after.is_null()


def infer_type(series: pl.Series, time_zone: str = "UTC") -> tuple[str, pl.Series]:
    """The narrowest type every value fits, and the column converted to it."""
    values = series.drop_nulls()
    if values.is_empty():
        return "string", series
    first = str(values[0])
    if first in TRUE_VALUES or first in FALSE_VALUES:
        if values.is_in([*TRUE_VALUES, *FALSE_VALUES]).all():
            return "boolean", convert_text(series, "boolean")
        return "string", series
    for data_type, pattern in _first_checks:
        if not pattern.match(first):
            continue
        if data_type == "integer":
            if values.str.contains(INT_RE).all():
                if values.str.contains(LEADING_ZERO_RE).any():
                    return "string", series
                converted = series.str.to_integer(strict=False)
                if converted.null_count() == series.null_count():
                    return "integer", converted
                return "string", series  # beyond 64 bits: keep every digit
            continue  # a decimal point somewhere further down: try double
        if data_type == "double":
            if (
                values.str.contains(DOUBLE_RE).all()
                and not values.str.contains(r"^[+-]?0\d+$").any()
            ):
                return "double", series.cast(pl.Float64, strict=False)
            return "string", series
        if data_type == "datetime":
            if values.str.contains(DATE_PREFIX_RE).all():
                converted = parse_datetime(series, time_zone)
                if converted.null_count() == series.null_count():
                    return "datetime", converted
            return "string", series
    return "string", series


def type_text_frame(
    frame: pl.DataFrame, time_zone: str = "UTC", types: dict[str, str] | None = None
) -> tuple[pl.DataFrame, dict[str, str]]:
    """Clean and type every column of an all-text frame. ``types`` forces some columns."""
    forced = types or {}
    columns: list[pl.Series] = []
    found: dict[str, str] = {}
    for name in frame.columns:
        series = frame.get_column(name)
        if series.dtype != pl.String:
            data_type = type_of_dtype(series.dtype) or "string"
            columns.append(coerce_series(series, data_type, time_zone))
            found[name] = data_type
            continue
        text = clean_text(series)
        if name in forced:
            columns.append(convert_text(text, forced[name], time_zone))
            found[name] = forced[name]
            continue
        data_type, converted = infer_type(text, time_zone)
        columns.append(converted)
        found[name] = data_type
    return (pl.DataFrame(columns) if columns else frame), found


def coerce_series(series: pl.Series, data_type: str, time_zone: str = "UTC") -> pl.Series:
    """A typed (non-text or text) column → ``data_type``; failures become null.

    Native dtypes map directly (Date and naive Datetime are localised to ``time_zone``);
    anything else goes through its text form, so the rules are those of text columns."""
    dtype = series.dtype
    if data_type == "datetime" and (dtype == pl.Date or dtype == pl.Datetime):
        out = series.cast(pl.Datetime("us", getattr(dtype, "time_zone", None)))
        if getattr(out.dtype, "time_zone", None) is None:
            out = out.dt.replace_time_zone(time_zone, ambiguous="earliest", non_existent="null")
        return out.dt.convert_time_zone("UTC")
    current = type_of_dtype(dtype)
    if current == data_type:
        return series.cast(DTYPES[data_type])
    if current == "integer" and data_type == "double":
        return series.cast(pl.Float64)
    if current == "double" and data_type == "integer":
        integral = series.is_finite() & (series == series.floor())
        return series.set(~integral.fill_null(False), None).cast(pl.Int64, strict=False)  # type: ignore[arg-type]
    return convert_text(clean_text(as_text(series)), data_type, time_zone)


def as_text(series: pl.Series) -> pl.Series:
    """A column as the text a person would type for it (datetimes in ISO 8601)."""
    dtype = series.dtype
    if dtype == pl.String:
        return series
    if dtype == pl.Boolean:
        return series.replace_strict([True, False], ["true", "false"], return_dtype=pl.String)
    if dtype == pl.Datetime:
        return series.dt.to_string("%Y-%m-%dT%H:%M:%S%.f%:z")
    if dtype.is_float():
        integral = series.is_finite() & (series == series.floor()) & (series.abs() < 2**53)
        return (
            pl.DataFrame({"v": series, "g": integral})
            .select(
                pl.when(pl.col("g"))
                .then(pl.col("v").cast(pl.Int64, strict=False).cast(pl.String))
                .otherwise(pl.col("v").cast(pl.String))
                .alias(series.name)
            )
            .to_series()
        )
    return series.cast(pl.String)


def python_value_text(value: Any) -> str | None:
    """One value from JSON / a spreadsheet / a driver, as text for typing."""
    if value is None:
        return None
    if value is True:
        return "true"
    if value is False:
        return "false"
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    if isinstance(value, dict | list):
        import json

        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)
