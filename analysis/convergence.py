"""Do the runs of one image converge to the same image, or only to the same distance from the original?

Per image, mask and checkpoint: the cross-run distance (the mean distance between the generations
of its different runs, from `analysis.collection`), beside the runs' mean distance to the original
and that distance's SD over runs (what finding 6b reads). Converging to a common image shows as a
falling cross-run distance; converging only in distance, as a falling SD with a cross-run distance
that stays.
"""

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.frames import condition_keys, distances
from analysis.style import X_LABEL, colours, mask_label, metric_label, styled, title

COLUMNS = ["image_id", "mask", "metric", "percent", "runs", "cross_run", "to_original", "to_original_sd"]


def convergence_table(frame: pd.DataFrame, cross_run: pd.DataFrame) -> pd.DataFrame:
    """One row per condition, image, mask, metric and checkpoint with runs in several configurations."""
    if cross_run.empty:
        return pd.DataFrame(columns=COLUMNS)
    keys = [k for k in condition_keys(frame)]
    runs = frame.drop_duplicates("run_id").set_index("run_id")
    cross = cross_run.copy()
    cross["metric"] = cross["metric"].str.replace("-", "_")
    for column in [*keys, "mask"]:
        cross[column] = cross["run_a"].map(runs[column])
    group = [*keys, "image_id", "mask", "metric", "percent"]
    mean_cross = cross.groupby(group, sort=True)["distance"].mean().rename("cross_run")
    d = distances(frame)
    d = d[d["image_id"].isin(cross["image_id"]) & d["metric"].isin(cross["metric"])]
    spread = d.groupby(group, sort=True)["distance"].agg(runs="count", to_original="mean", to_original_sd="std")
    table = spread.join(mean_cross, how="inner").reset_index()
    return table[[*keys, *COLUMNS]]


def convergence_figure(table: pd.DataFrame, images: list[str] | None = None, max_images: int = 3) -> Figure:
    """Cross-run distance (solid) and distance to the original ± its SD over runs (dashed, band)
    versus percent: a panel per image (`images`, default the first `max_images`) and one pooled."""
    metric = table["metric"].iloc[0]
    images = list(images or sorted(table["image_id"].unique())[:max_images])
    palette = colours(table["mask"])
    panels = [(image, table[table["image_id"] == image]) for image in images] + [("pooled over images", table)]
    with styled():
        figure = Figure(figsize=(0.6 + 2.7 * len(panels), 3.0), layout="constrained")
        axes = figure.subplots(1, len(panels), squeeze=False, sharey=True)[0]
        for ax, (name, rows) in zip(axes, panels):
            for mask, here in rows.groupby("mask", sort=True):
                mean = here.groupby("percent")[["cross_run", "to_original", "to_original_sd"]].mean()
                x = mean.index.to_numpy(dtype=float)
                ax.plot(x, mean["cross_run"], marker="o", color=palette[mask],
                        label=f"{mask_label(mask)}: between runs")
                ax.plot(x, mean["to_original"], linestyle="--", color=palette[mask],
                        label=f"{mask_label(mask)}: to the original")
                sd = mean["to_original_sd"].to_numpy(dtype=float)
                ax.fill_between(x, mean["to_original"] - sd, mean["to_original"] + sd, color=palette[mask],
                                alpha=0.15, linewidth=0)
            ax.set_title(name)
            ax.set_xlabel(X_LABEL)
        axes[0].set_ylabel(metric_label(metric))
        axes[0].legend(loc="best")
        title(figure, "Do the runs of an image converge to one image?", None,
              "solid: mean distance between the generations of its runs; dashed and band: their distance to the "
              "original, mean ± SD over runs")
    return figure


def late_over_early(table: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray, str]:
    """Per image: `column` averaged over the second and over the first half of the checkpoints from
    50 %, and the span they cover ("50–200 % vs 250–400 %")."""
    rows = table[table["percent"] >= 50]
    percents = np.sort(rows["percent"].unique())
    half = len(percents) // 2
    early, late = percents[:half], percents[len(percents) - half:]
    wide = rows.pivot_table(index="image_id", columns="percent", values=column, aggfunc="mean")
    span = f"{late[0]}–{late[-1]} % vs {early[0]}–{early[-1]} %" if half else ""
    return wide[late].mean(axis=1).to_numpy(), wide[early].mean(axis=1).to_numpy(), span
