"""Round numeric columns to a number of decimals (one output column per chosen column)."""

from __future__ import annotations

from typing import Any

import polars as pl

class_name = "Rounding"


class Rounding:
    name = "Rounding"
    description = (
        "Rounds each chosen numeric column to the given number of decimals. The results "
        "go into new columns named after the inputs with the suffix (e.g. score_rounded)."
    )
    #: empty: the user picks the columns
    input_column_names: list[str] = []
    #: empty: one output per input column, with the input's name
    output_column_names: list[str] = []
    output_suffix = "_rounded"
    parameters = [
        ("decimals", "integer", [], 0, "Number of decimals to keep (0 to 6)."),
        ("mode", "string", ["half_away_from_zero", "half_to_even"], "half_away_from_zero",
         "How halves are rounded: 2.5 -> 3 (away from zero) or 2 (to even, banker's)."),
    ]  # fmt: skip

    def run(self, frame: pl.DataFrame, parameters: dict[str, Any]) -> pl.DataFrame:
        decimals = int(parameters.get("decimals", 0))
        if not 0 <= decimals <= 6:
            raise ValueError("decimals must be between 0 and 6")
        mode = parameters.get("mode", "half_away_from_zero")
        exprs = []
        for name, dtype in frame.schema.items():
            if not dtype.is_numeric():
                raise ValueError(f"column {name!r} is not numeric")
            col = pl.col(name).cast(pl.Float64)
            if mode == "half_to_even":
                exprs.append(col.round(decimals, mode="half_to_even").alias(name))
            else:
                exprs.append(col.round(decimals, mode="half_away_from_zero").alias(name))
        return frame.select(exprs)
