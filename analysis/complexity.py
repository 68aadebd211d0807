"""Do images become simpler? The complexity of each generation relative to its original.

Runs log the complexity of every generation inside the picture's area (`rip.metrics.complexity`;
keys `complexity_*`), the original's at 0 %. Here each value becomes a ratio to the original's,
and two findings are tested in the study's verdicts' terms (`analysis.findings`), per condition,
mask and measure, over the checkpoints from 50 % on and the images with finished runs:

Q1a. Images become simpler: each image's complexity at the last checkpoint over its complexity at
     the first (from 50 %), geometric mean over images with a t interval on the log scale; holds
     when the interval lies below 1 − min_effect and the Holm-adjusted p is below alpha.
Q1b. Images that drift further lose more complexity: Spearman's rho across images between the
     final distance and the final loss of complexity (1 − ratio to the original); holds when the
     interval lies above 0 and the Holm-adjusted p is below alpha.
"""

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis import effects
from analysis.findings import decide, effect_row
from analysis.frames import condition_keys, default_metric, distances, last_common_percent
from analysis.rules import Rules
from analysis.style import X_LABEL, colours, count_text, mask_label, styled, title
from rip.metrics.complexity import COMPLEXITY_KEYS

FIRST_PERCENT = 50  # as the study's verdicts: checkpoints from 50 % on
CLAIMS = {"Q1a": "the images become simpler and less intricate",
          "Q1b": "images that drift further from the original lose more complexity"}
MEASURE_LABELS = {
    "complexity_png_bpp": "PNG size (bits per pixel)",
    "complexity_edges": "edge density (Canny)",
    "complexity_entropy": "colour entropy (bits)",
    "complexity_hf": "high-frequency energy share",
    "complexity_colourfulness": "colourfulness (Hasler–Süsstrunk)",
}


def complexity_ratios(frame: pd.DataFrame) -> pd.DataFrame:
    """The complexity rows of `frame` with column `ratio`: each value over the same run's value at
    0 % (its original); NaN where the original's value is 0 or missing."""
    rows = frame[frame["metric"].isin(COMPLEXITY_KEYS)].copy()
    originals = rows[rows["percent"] == 0].groupby(["run_id", "metric"])["value"].first()
    base = pd.Series(list(zip(rows["run_id"], rows["metric"])), index=rows.index).map(originals)
    rows["ratio"] = rows["value"] / base.where(base > 0)
    return rows


def complexity_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean, SD (ddof=1) and n over image runs of each measure's ratio to the original, per
    condition, mask and percent."""
    rows = complexity_ratios(frame)
    keys = condition_keys(frame) + ["mask", "metric", "percent"]
    if rows.empty:
        return pd.DataFrame(columns=[*keys, "mean", "std", "n"])
    table = rows.dropna(subset=["ratio"]).groupby(keys, sort=True, dropna=False)["ratio"].agg(["mean", "std", "count"])
    return table.rename(columns={"count": "n"}).reset_index()


def complexity_figure(frame: pd.DataFrame) -> Figure:
    """Complexity relative to the original versus percent: a panel per measure, mean ± SD over
    image runs per mask (a line style per mask order when the frame holds several)."""
    rows = complexity_ratios(frame).dropna(subset=["ratio"])
    if rows.empty:
        raise ValueError("no complexity values: runs log them with `complexity` on (rip run --complexity true)")
    measures = [key for key in COMPLEXITY_KEYS if key in set(rows["metric"])]
    orders = sorted(rows["mask_order"].unique()) if "mask_order" in rows else [None]
    styles = dict(zip(orders, ("-", "--", ":", "-.")))
    palette = colours(rows["mask"])
    with styled():
        figure = Figure(figsize=(0.6 + 2.6 * len(measures), 3.2), layout="constrained")
        axes = figure.subplots(1, len(measures), squeeze=False, sharey=True)[0]
        counts = []
        for ax, measure in zip(axes, measures):
            here = rows[rows["metric"] == measure]
            by = ["mask"] + (["mask_order"] if len(orders) > 1 else [])
            stats_ = here.groupby([*by, "percent"])["ratio"].agg(["mean", "std", "count"]).fillna({"std": 0.0})
            for level, curve in stats_.reset_index().groupby(by, sort=True):
                level = level if isinstance(level, tuple) else (level,)
                mask, order = level[0], level[1] if len(level) > 1 else None
                x, y, sd = (curve[c].to_numpy(dtype=float) for c in ("percent", "mean", "std"))
                label = mask_label(mask) + (f", {order}" if order else "") + f" (n = {count_text(curve['count'])})"
                ax.plot(x, y, marker="o", color=palette[mask], linestyle=styles.get(order, "-"), label=label)
                ax.fill_between(x, y - sd, y + sd, color=palette[mask], alpha=0.12, linewidth=0)
                counts += list(curve["count"])
            ax.axhline(1.0, color="0.4", linewidth=0.7, linestyle=":")
            ax.set_title(MEASURE_LABELS.get(measure, measure))
            ax.set_xlabel(X_LABEL)
        axes[0].set_ylabel("ratio to the original")
        axes[0].legend(title="mask" + (", order" if len(orders) > 1 else "") + " (image runs)", loc="lower left")
        title(figure, "Complexity of the generations, relative to the original", frame,
              f"inside the picture's area; lines: mean; bands: ± SD over n = {count_text(counts)} image runs")
    return figure


def complexity_verdicts(frame: pd.DataFrame, metric: str | None = None, rules: Rules = Rules()) -> pd.DataFrame:
    """Findings Q1a and Q1b for every condition of `frame`, decided as one family (Holm over their rows)."""
    return decide(complexity_rows(frame, metric, rules), rules)


def complexity_rows(frame: pd.DataFrame, metric: str | None = None, rules: Rules = Rules()) -> list[dict]:
    """The rows of findings Q1a and Q1b (see the module docstring), undecided (`analysis.findings`).
    `metric`: the distance of Q1b (default: lpips_vgg, else the first distance)."""
    ratios = complexity_ratios(frame)
    if ratios.empty:
        return [_row("Q1a", "", None, bound=1 - rules.min_effect,
                     note="no complexity measured (runs recorded before it was, or with it off)")]
    d = distances(frame)
    metric = metric or (default_metric(d) if not d.empty else None)
    keys = condition_keys(frame)
    rows = []
    for values, group in (ratios.groupby(keys, sort=True, dropna=False) if keys else [((), ratios)]):
        values = values if isinstance(values, tuple) else (values,)
        context = ", ".join(f"{k}={v}" for k, v in zip(keys, values))
        for mask, by_mask in group.groupby("mask", sort=True):
            drift = d[(d["metric"] == metric) & (d["mask"] == mask)] if metric else d.iloc[:0]
            for k, v in zip(keys, values):
                drift = drift[drift[k].astype(str) == str(v)]
            for measure in [key for key in COMPLEXITY_KEYS if key in set(by_mask["metric"])]:
                curve = by_mask[by_mask["metric"] == measure]
                rows.append(simpler(curve, rules, context=context, mask=mask, metric=measure))
                rows.append(drift_and_loss(curve, drift, rules, context=context, mask=mask, measure=measure))
    return rows


def simpler(curve: pd.DataFrame, rules: Rules = Rules(), *, context: str = "", **scope) -> dict:
    """Finding Q1a for one condition, mask and measure (`curve`: its rows, as `complexity_ratios`)."""
    last = last_common_percent(curve)
    matrix = (curve[(curve["percent"] >= FIRST_PERCENT) & (curve["percent"] <= last)]
              .groupby(["image_id", "percent"])["value"].mean().unstack("percent").dropna().sort_index(axis=1))
    bound = 1 - rules.min_effect
    if matrix.shape[1] < 2:
        return _row("Q1a", context, None, side="less", bound=bound, n=len(matrix), **scope,
                    note=f"{matrix.shape[1]} checkpoint(s) from {FIRST_PERCENT} %")
    first, final = matrix.columns[0], matrix.columns[-1]
    effect = effects.geometric_ratios(matrix[[final]].to_numpy(), matrix[[first]].to_numpy(), bound, "less")[0]
    rule = (f"each image's complexity at {final} % / at {first} %, geometric mean, t 95 % on logs: holds when below "
            f"{bound:g} and Holm p < {rules.alpha} (Holm over the open questions' rows)")
    ratio = curve[curve["percent"].isin([first, final])].groupby("percent")["ratio"].mean()
    return _row("Q1a", context, effect, statistic=f"complexity at {final} % / at {first} %", side="less", bound=bound,
                rule=rule, checkpoints=f"{first}–{final} %", **scope,
                note=f"mean ratio to the original {ratio.iloc[0]:.3g} at {first} % -> {ratio.iloc[-1]:.3g} at {final} %")


def drift_and_loss(curve: pd.DataFrame, drift: pd.DataFrame, rules: Rules = Rules(), *, measure: str,
                   context: str = "", **scope) -> dict:
    """Finding Q1b for one condition, mask and measure: the final distance (`drift`: rows of
    `distances` for one metric) against the final loss of complexity, across images."""
    rule = (f"Spearman rho across images of the final distance and the loss of complexity (1 − ratio to the original), "
            f"Fisher z 95 %: holds when above 0 and Holm p < {rules.alpha} (Holm over the open questions' rows)")
    name = drift["distance_name"].iloc[0] if len(drift) else ""
    out = dict(metric=name, compared=f"{measure} loss", statistic="Spearman rho", side="greater", bound=0.0, rule=rule)
    if drift.empty:
        return _row("Q1b", context, None, **out, **scope, note="no distance measured")
    percent = min(last_common_percent(curve), last_common_percent(drift))
    loss = 1 - curve[curve["percent"] == percent].groupby("image_id")["ratio"].mean()
    final = drift[drift["percent"] == percent].groupby("image_id")["distance"].mean()
    pairs = pd.concat([final.rename("distance"), loss.rename("loss")], axis=1).dropna()
    effect = effects.spearman_above(pairs["distance"].to_numpy(), pairs["loss"].to_numpy(), 0.0)
    note = f"mean loss {pairs['loss'].mean():.3g}, mean distance {pairs['distance'].mean():.3g}" if len(pairs) else ""
    if not np.isfinite(effect.p_value):
        note = f"{len(pairs)} image(s) with distinct values in both: no correlation"
    return _row("Q1b", context, effect, **out, checkpoints=f"{percent} %", **scope, note=note)


def _row(finding: str, context: str, effect, *, side: str = "less", bound: float = np.nan, statistic: str = "",
         rule: str = "", note: str = "", **scope) -> dict:
    row = effect_row(finding, CLAIMS[finding], context, effect, statistic=statistic, side=side, bound=bound, rule=rule,
                     **scope)
    if note:
        row["note"] = note + ("; " + row["note"] if row["note"] else "")
    return row
