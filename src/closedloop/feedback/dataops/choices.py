"""Step 2 of the wizard: which columns to load, under which name, with which type, and
which ones are keys. Applied to a :class:`ParsedTable`, it gives the frame to merge."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl
from django.utils.translation import gettext as _

from closedloop.feedback.dataops import infer
from closedloop.feedback.dataops.errors import data_error
from closedloop.feedback.dataops.merge import _row_numbers, check_incoming_key, convert_for
from closedloop.feedback.dataops.sources import ParsedTable, check_names


@dataclass
class ColumnChoice:
    name: str
    load: bool = True
    rename: str = ""
    data_type: str = ""
    is_key: bool = False

    @property
    def target(self) -> str:
        return (self.rename or self.name).strip()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Prepared:
    frame: pl.DataFrame
    types: dict[str, str]
    #: new name -> name in the source, for renamed columns
    renames: dict[str, str] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    row_numbers: list[int] | None = None


def default_choices(parsed: ParsedTable) -> list[ColumnChoice]:
    """Everything loaded with its inferred type; the first possible key is the key."""
    candidates = parsed.key_candidates()
    first = candidates[0] if candidates else None
    return [
        ColumnChoice(name=n, data_type=parsed.types[n], is_key=n == first)
        for n in parsed.frame.columns
    ]


def choices_from_dicts(items: Sequence[dict[str, Any]]) -> list[ColumnChoice]:
    return [ColumnChoice(**item) for item in items]


def apply_choices(
    parsed: ParsedTable,
    choices: Sequence[ColumnChoice],
    *,
    time_zone: str = "UTC",
    require_key: bool = True,
) -> Prepared:
    """The frame the choices describe; FeedbackError naming the column (and rows) at fault."""
    by_name = {c.name: c for c in choices}
    loaded = [by_name.get(n, ColumnChoice(n)) for n in parsed.frame.columns]
    loaded = [c for c in loaded if c.load]
    if not loaded:
        raise data_error(_("Choose at least one column to load."))
    names = check_names([c.target for c in loaded])
    rows = _row_numbers(parsed.frame, parsed.row_numbers)
    series: list[pl.Series] = []
    types: dict[str, str] = {}
    renames: dict[str, str] = {}
    for choice, name in zip(loaded, names, strict=True):
        values = parsed.frame.get_column(choice.name)
        data_type = choice.data_type or parsed.types.get(choice.name, "string")
        if data_type not in infer.TYPES:
            raise data_error(
                _("Unknown type “%(type)s” for column “%(col)s”.")
                % {"type": data_type, "col": name},
                column=name,
            )
        if data_type != parsed.types.get(choice.name):
            values = convert_for(values, data_type, name, rows, time_zone)
        series.append(values.alias(name))
        types[name] = data_type
        if name != choice.name:
            renames[name] = choice.name
    frame = pl.DataFrame(series)
    keys = [name for choice, name in zip(loaded, names, strict=True) if choice.is_key]
    for key in keys:
        check_incoming_key(frame, key, rows)
    if require_key and not keys:
        raise data_error(
            _(
                "Keep at least one key column: a column with a value in every row and no "
                "value twice (for example an email or an id)."
            )
        )
    ignored = [n for n in parsed.frame.columns if not by_name.get(n, ColumnChoice(n)).load]
    return Prepared(frame, types, renames, ignored, keys, parsed.row_numbers)
