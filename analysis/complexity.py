"""Do images become simpler? The complexity of each generation relative to its original.

Runs log the complexity of every generation inside the picture's area (`rip.metrics.complexity`;
keys `complexity_*`), the original's at 0 %. Here each value becomes a ratio to the original's,
and two findings are tested, with the study's verdicts' conventions (`analysis.verdicts`):

7a. Images become simpler: per measure, the complexity falls as the percent grows, over the
    checkpoints after 0 % (Page's trend test, images × checkpoints, decreasing order
    predicted); effect size: the mean relative change from the first to the last of them, with
    a 95 % BCa bootstrap interval over images. Holds when p < ALPHA and the interval lies below 0.
7b. Images that drift further lose more complexity: Spearman's rho across images between the
    final distance and the final loss of complexity (1 − ratio); holds when p < ALPHA and rho > 0.
"""

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from analysis.findings import page_min_p, verdict_row
from analysis.frames import condition_keys, default_metric, distances, last_common_percent
from analysis.statistics import EXACT_SPEARMAN_MAX, bootstrap_mean_interval, spearman, spearman_interval
from analysis.style import X_LABEL, colours, count_text, mask_label, styled, title
from analysis.verdicts import ALPHA, COLUMNS, FAILS, HOLDS, UNKNOWN
from rip.metrics.complexity import COMPLEXITY_KEYS

CLAIMS = {"7a": "images become simpler", "7b": "images that drift further lose more complexity"}
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


def complexity_verdicts(frame: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """Findings 7a and 7b (see the module docstring) per condition, mask and measure, in
    `analysis.verdicts.COLUMNS`. `metric`: the distance of 7b (default: lpips_vgg, else the first)."""
    ratios = complexity_ratios(frame)
    if ratios.empty:
        return pd.DataFrame([_row("7a", verdict=UNKNOWN, note="no complexity measured (runs before it was logged, "
                                  "or run with complexity off)")], columns=COLUMNS)
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
                rows.append(simpler(curve, context=context, mask=mask, metric=measure))
                rows.append(drift_and_loss(curve, drift, context=context, mask=mask, measure=measure))
    return pd.DataFrame(rows, columns=COLUMNS).astype({"mask": "Int64", "percent": "Int64", "n": "Int64"})


def simpler(curve: pd.DataFrame, **scope) -> dict:
    """Finding 7a for one condition, mask and measure (`curve`: its rows, as `complexity_ratios`)."""
    last = last_common_percent(curve)
    matrix = (curve[(curve["percent"] > 0) & (curve["percent"] <= last)]
              .groupby(["image_id", "percent"])["value"].mean().unstack("percent").dropna().sort_index(axis=1))
    n, k = matrix.shape
    rule = (f"Page's trend test over the checkpoints after 0 %, decreasing order predicted: holds when p < {ALPHA} "
            "and the mean relative change's 95 % interval lies below 0")
    if k < 3 or n < 1 or page_min_p(n, k) >= ALPHA:
        return _row("7a", **scope, n=n, rule=rule, verdict=UNKNOWN,
                    note=f"{n} image(s) x {k} checkpoint(s) after 0%: the test cannot reach p < {ALPHA}")
    first, final = matrix.iloc[:, 0], matrix.iloc[:, -1]
    change = (final / first.where(first > 0) - 1).dropna().to_numpy()
    low, high = bootstrap_mean_interval(change)
    result = stats.page_trend_test(matrix.to_numpy(), predicted_ranks=np.arange(k, 0, -1))
    p_value = float(result.pvalue)
    verdict = HOLDS if p_value < ALPHA and high < 0 else FAILS
    ratio = curve[curve["percent"].isin([matrix.columns[0], matrix.columns[-1]])].groupby("percent")["ratio"].mean()
    return _row("7a", **scope, percent=int(matrix.columns[-1]),
                statistic=f"mean relative change {matrix.columns[0]}→{matrix.columns[-1]}%",
                value=float(change.mean()) if len(change) else np.nan, low=low, high=high, p_value=p_value, n=n,
                rule=rule, verdict=verdict,
                note=f"Page's L {result.statistic:.4g}; mean ratio to the original {ratio.iloc[0]:.3g} at "
                     f"{matrix.columns[0]}% -> {ratio.iloc[-1]:.3g} at {matrix.columns[-1]}%")


def drift_and_loss(curve: pd.DataFrame, drift: pd.DataFrame, *, measure: str, **scope) -> dict:
    """Finding 7b for one condition, mask and measure: the final distance (`drift`: rows of
    `distances` for one metric) against the final loss of complexity, across images."""
    rule = f"Spearman rho across images, final distance vs loss of complexity (1 − ratio): holds when p < {ALPHA} and rho > 0"
    name = drift["distance_name"].iloc[0] if len(drift) else ""
    out = dict(**scope, metric=name, compared=f"{measure} loss", rule=rule)
    if drift.empty:
        return _row("7b", **out, verdict=UNKNOWN, note="no distance measured")
    percent = min(last_common_percent(curve), last_common_percent(drift))
    loss = 1 - curve[curve["percent"] == percent].groupby("image_id")["ratio"].mean()
    final = drift[drift["percent"] == percent].groupby("image_id")["distance"].mean()
    pairs = pd.concat([final.rename("distance"), loss.rename("loss")], axis=1).dropna()
    n = len(pairs)
    out.update(percent=percent, n=n)
    if n < 4 or pairs["distance"].nunique() < 2 or pairs["loss"].nunique() < 2:
        return _row("7b", **out, verdict=UNKNOWN, note=f"{n} image(s), distinct values needed in both: no correlation")
    if n <= EXACT_SPEARMAN_MAX and 2 / math.factorial(n) >= ALPHA:  # the exact test's smallest two-sided p
        return _row("7b", **out, verdict=UNKNOWN, note=f"{n} images: the exact test cannot reach p < {ALPHA}")
    rho, p_value = spearman(pairs["distance"].to_numpy(), pairs["loss"].to_numpy())
    low, high = spearman_interval(rho, n)
    return _row("7b", **out, statistic="Spearman rho", value=rho, low=low, high=high, p_value=p_value,
                verdict=HOLDS if p_value < ALPHA and rho > 0 else FAILS,
                note=f"mean loss {pairs['loss'].mean():.3g}, mean distance {pairs['distance'].mean():.3g}")


def _row(finding: str, **values) -> dict:
    return verdict_row(finding, CLAIMS[finding], **values)
