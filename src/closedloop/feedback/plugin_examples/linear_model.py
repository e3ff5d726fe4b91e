"""Ordinary least squares: predict one numeric column from other numeric columns."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

class_name = "LinearModel"


class LinearModel:
    name = "Linear model"
    description = (
        "Fits an ordinary least squares model of the target column on the other chosen "
        "numeric columns (with an intercept) and adds the prediction and the residual "
        "(target - prediction). Rows with an empty predictor get no prediction; rows "
        "with an empty target are not used to fit but are still predicted."
    )
    input_column_names: list[str] = []
    output_column_names = ["prediction", "residual"]
    output_suffix = "_lm"
    parameters: list[tuple[str, str, list[Any], Any, str]] = [
        ("target", "string", [], "", "The chosen column to predict; the others are predictors."),
        ("intercept", "boolean", [], True, "Fit an intercept."),
    ]

    def run(self, frame: pl.DataFrame, parameters: dict[str, Any]) -> pl.DataFrame:
        target = parameters.get("target") or ""
        if target not in frame.columns:
            raise ValueError(f"the target {target!r} must be one of the chosen columns")
        predictors = [c for c in frame.columns if c != target]
        if not predictors:
            raise ValueError("choose at least one predictor column besides the target")
        for name in frame.columns:
            if not frame.schema[name].is_numeric():
                raise ValueError(f"column {name!r} is not numeric")
        numeric = frame.select(pl.all().cast(pl.Float64).fill_nan(None))
        x_all = numeric.select(predictors).to_numpy()
        y_all = numeric.get_column(target).to_numpy()
        usable_x = ~np.isnan(x_all).any(axis=1)
        fit_rows = usable_x & ~np.isnan(y_all)
        width = len(predictors) + (1 if parameters.get("intercept", True) else 0)
        if int(fit_rows.sum()) < width:
            raise ValueError(
                f"only {int(fit_rows.sum())} complete rows: at least {width} are needed to fit"
            )

        def design(x: np.ndarray) -> np.ndarray:
            if parameters.get("intercept", True):
                return np.column_stack([np.ones(len(x)), x])
            return x

        coefficients, *_rest = np.linalg.lstsq(design(x_all[fit_rows]), y_all[fit_rows], rcond=None)
        prediction = np.full(len(y_all), np.nan)
        prediction[usable_x] = design(x_all[usable_x]) @ coefficients
        residual = y_all - prediction
        return pl.DataFrame({"prediction": prediction, "residual": residual}).with_columns(
            pl.all().fill_nan(None)
        )
