"""The summary table: mean, std, min, max and count per (mask, metric, percent)."""

import pandas as pd

from analysis.frames import varying


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (conditions that vary, mask, metric, percent) with statistics over runs.

    std is the sample standard deviation (ddof=1), NaN for a single run. Conditions that vary
    in `frame` (experiment, model, paste_back, ...) come first so no two conditions are pooled.
    """
    keys = (["experiment"] if frame["experiment"].nunique() > 1 else []) + varying(frame) + ["mask", "metric", "percent"]
    table = frame.groupby(keys, sort=True, dropna=False)["value"].agg(["mean", "std", "min", "max", "count"])
    return table.rename(columns={"count": "n"}).reset_index()


def to_markdown(table: pd.DataFrame, digits: int = 4) -> str:
    """`table` as a GitHub-flavoured Markdown table, floats to `digits` significant digits."""

    def cell(value) -> str:
        if value is pd.NA or value is None:
            return ""
        if isinstance(value, float):
            return "" if pd.isna(value) else f"{value:.{digits}g}"
        return str(value).replace("|", "\\|")

    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "|".join("---:" if pd.api.types.is_numeric_dtype(table[c]) else "---" for c in table.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"
