"""The study's figures, each a pure function from the tidy frame to a matplotlib Figure.

Figures are built without pyplot (no global state, no display needed) in one style (see
`analysis.style`); `save` writes PNG, SVG and PDF. Every function plots exactly the numbers it is
given: mean ± SD pool all runs in the frame, so split the frame first (see
`analysis.frames.groups`) when it mixes conditions.
"""

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from analysis.frames import default_metric
from analysis.style import X_LABEL, colours, count_text, jitter, mask_label, metric_label, save, styled, title

__all__ = ["filmstrip_figure", "label_figure", "mean_std_figure", "properties_figure", "save", "scatter_figure",
           "variability_figure"]
PROPERTY_LABELS = {"edge_density": "edge density (share of pixels on a Canny edge)",
                   "colour_entropy": "colour entropy (bits)"}
FILMSTRIP_COLUMNS = 9  # panels per row


def mean_std_figure(frame: pd.DataFrame) -> Figure:
    """Mean ± sample SD over image runs versus percent: a panel per metric, a line and band per mask."""
    metrics = sorted(frame["metric"].unique())
    palette = colours(frame["mask"])
    with styled():
        figure = Figure(figsize=(0.6 + 3.0 * len(metrics), 3.1), layout="constrained")
        axes = figure.subplots(1, len(metrics), squeeze=False)[0]
        counts = []
        for ax, metric in zip(axes, metrics):
            for mask, rows in mean_std(frame[frame["metric"] == metric], ["mask"]).groupby("mask", sort=True):
                x, y, sd = (rows[c].to_numpy(dtype=float) for c in ("percent", "mean", "std"))
                n = count_text(rows["count"])
                ax.plot(x, y, marker="o", color=palette[mask], label=f"{mask_label(mask)} (n = {n})")
                ax.fill_between(x, y - sd, y + sd, color=palette[mask], alpha=0.18, linewidth=0)
                counts += list(rows["count"])
            _axes(ax, metric)
        axes[0].legend(title="mask (image runs)", loc="best")
        title(figure, "Distance from the original", frame,
              f"lines: mean; bands: ± SD over n = {count_text(counts)} image runs")
    return figure


def scatter_figure(frame: pd.DataFrame) -> Figure:
    """Every image run's value at every checkpoint: a panel per metric, masks side by side in colour."""
    metrics = sorted(frame["metric"].unique())
    masks = sorted(frame["mask"].unique())
    palette = colours(masks)
    percents = np.sort(frame["percent"].unique()).astype(float)
    step = float(np.min(np.diff(percents))) if len(percents) > 1 else 50.0
    width = 0.7 * step / len(masks)  # each mask's strip of the space between checkpoints
    with styled():
        figure = Figure(figsize=(0.6 + 3.0 * len(metrics), 3.1), layout="constrained")
        axes = figure.subplots(1, len(metrics), squeeze=False)[0]
        for ax, metric in zip(axes, metrics):
            for i, mask in enumerate(masks):
                rows = frame[(frame["metric"] == metric) & (frame["mask"] == mask)]
                offset = (i - (len(masks) - 1) / 2) * width
                x = rows["percent"].to_numpy(dtype=float) + offset + jitter(len(rows), 0.8 * width, seed=i)
                ax.scatter(x, rows["value"].to_numpy(dtype=float), s=7, alpha=0.45, linewidths=0,
                           color=palette[mask], label=f"{mask_label(mask)} (n = {rows['run_id'].nunique()})")
            ax.set_xticks(percents)
            _axes(ax, metric)
        legend = axes[0].legend(title="mask (image runs)", loc="best", markerscale=2)
        for handle in legend.legend_handles:
            handle.set_alpha(1)
        title(figure, "Every image run at every checkpoint", frame,
              "one point per image run; masks side by side around each checkpoint, jittered")
    return figure


def variability_figure(
    frame: pd.DataFrame, metric: str | None = None, images: Sequence[str] | None = None, max_images: int = 3
) -> Figure:
    """Run-to-run variability: a panel per (image, mask), a line per run (labelled by seed).

    `images` defaults to the first `max_images` images (by id) with runs of several seeds.
    """
    metric = metric or default_metric(frame)
    rows = frame[frame["metric"] == metric]
    images = list(images) if images else repeated_images(rows)[:max_images]
    if not images:
        raise ValueError("no image has runs with more than one seed: nothing to compare run to run")
    masks = sorted(rows["mask"].unique())
    palette = colours(rows["seed"])
    with styled():
        figure = Figure(figsize=(0.8 + 2.6 * len(masks), 0.9 + 2.1 * len(images)), layout="constrained")
        axes = figure.subplots(len(images), len(masks), squeeze=False, sharex=True, sharey=True)
        for i, image in enumerate(images):
            for j, mask in enumerate(masks):
                ax = axes[i][j]
                here = rows[(rows["image_id"] == image) & (rows["mask"] == mask)]
                for (seed, _), run in here.sort_values("percent").groupby(["seed", "run_id"], sort=True):
                    ax.plot(run["percent"].to_numpy(dtype=float), run["value"].to_numpy(dtype=float), marker="o",
                            markersize=2, linewidth=1, color=palette[seed], label=f"seed {seed}")
                ax.set_title(f"{image} · mask {mask_label(mask)}")
                ax.set_xlabel(X_LABEL if i == len(images) - 1 else "")
                ax.set_ylabel(metric_label(metric) if j == 0 else "")
        handles, labels = _unique_legend(axes)
        figure.legend(handles, labels, title="run", loc="outside right upper")
        title(figure, "Run to run: the same image, several seeds", rows, "one line per run")
    return figure


def filmstrip_figure(
    original: np.ndarray,
    generations: Mapping[int, np.ndarray],
    title_text: str = "",
    values: Mapping[int, float] | None = None,
    metric: str = "",
) -> Figure:
    """The original, then the generation at every checkpoint (percent -> image), left to right.

    The 0 % generation is the original itself and is shown once, as the original (if it differs
    from `original`, it gets its own panel). `values` (percent -> distance) go under each panel.
    """
    percents = [p for p in sorted(generations) if p != 0 or not np.array_equal(generations[p], original)]
    panels = [("original", original, 0)] + [(f"{p} %", generations[p], p) for p in percents]
    columns = min(FILMSTRIP_COLUMNS, len(panels))
    rows = -(-len(panels) // columns)
    with styled():
        figure = Figure(figsize=(1.45 * columns, 0.45 + 1.75 * rows), layout="constrained")
        axes = figure.subplots(rows, columns, squeeze=False).ravel()
        for ax, (label, image, percent) in zip(axes, panels):
            ax.imshow(image, interpolation="nearest")
            ax.set_title(label)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            for spine in ax.spines.values():
                spine.set_visible(False)
            if values is not None and percent in values:
                ax.set_xlabel(f"{metric_label(metric)} {values[percent]:.3f}")
        for ax in axes[len(panels):]:
            ax.set_axis_off()
        if title_text:
            figure.suptitle(title_text)
    return figure


def properties_figure(
    stability: pd.DataFrame, properties: Sequence[str] = ("edge_density", "colour_entropy"),
    frame: pd.DataFrame | None = None,
) -> Figure:
    """Final distance of each image versus each image property: a panel per property, a colour per
    mask, Spearman's ρ per mask in the legend. `frame` (the runs) names model, images and size."""
    distance = stability["distance_name"].iloc[0] if len(stability) else ""
    palette = colours(stability["mask"])
    with styled():
        figure = Figure(figsize=(0.6 + 3.2 * len(properties), 3.1), layout="constrained")
        axes = figure.subplots(1, len(properties), squeeze=False)[0]
        for ax, prop in zip(axes, properties):
            for mask, rows in stability.groupby("mask", sort=True):
                pairs = rows[[prop, "final"]].dropna()
                rho = stats.spearmanr(pairs[prop], pairs["final"]).statistic if len(pairs) >= 3 else np.nan
                ax.scatter(rows[prop], rows["final"], s=14, alpha=0.75, linewidths=0, color=palette[mask],
                           label=f"{mask_label(mask)}: ρ = {rho:.2f} (n = {len(pairs)})")
            ax.set_xlabel(PROPERTY_LABELS.get(prop, prop.replace("_", " ")))
            ax.set_ylabel(f"{metric_label(distance)} at {stability['percent'].max()} %")
            ax.legend(title="mask: Spearman ρ", loc="best")
        title(figure, "Which images drift further", frame,
              "one point per image (mean over its runs); ρ: Spearman rank correlation")
    return figure


def label_figure(breakdown: pd.DataFrame, label: str, frame: pd.DataFrame | None = None) -> Figure:
    """Final distance per group of one image label (e.g. style): dodged bars per mask, ± SD, n above.

    `breakdown` is `analysis.labels.label_breakdown`'s table; `frame` (the runs) names model,
    images and size.
    """
    rows = breakdown[breakdown["label"] == label]
    if rows.duplicated(["mask", "group"]).any():
        raise ValueError("the breakdown holds several conditions or experiments: draw one figure per condition "
                         "(analysis.frames.groups)")
    groups = sorted(rows["group"].unique(), key=str)
    masks = sorted(rows["mask"].unique())
    palette = colours(masks)
    width = 0.8 / len(masks)
    distance = rows["distance"].iloc[0]
    with styled():
        figure = Figure(figsize=(max(5.8, 1.2 + 0.5 * len(groups) * len(masks)), 3.4), layout="constrained")
        ax = figure.subplots()
        for i, mask in enumerate(masks):
            here = rows[rows["mask"] == mask].set_index("group").reindex(groups)
            x = np.arange(len(groups)) + (i - (len(masks) - 1) / 2) * width
            bars = ax.bar(x, here["mean"], width, yerr=here["std"].fillna(0), capsize=2, color=palette[mask],
                          label=mask_label(mask), error_kw={"linewidth": 0.8})
            ax.bar_label(bars, labels=[f"n={int(n)}" if pd.notna(n) else "" for n in here["n"]], padding=6,
                         fontsize=6)
        ax.set_xticks(np.arange(len(groups)), groups, rotation=30 if len(groups) > 4 else 0, ha="right"
                      if len(groups) > 4 else "center")
        ax.set_xlabel(label.removeprefix("label_"))
        ax.set_ylabel(f"{metric_label(distance)} at {rows['percent'].max()} %")
        ax.legend(title="mask", loc="best")
        title(figure, f"Final distance by {label.removeprefix('label_')}", frame,
              "bars: mean over images; error bars: ± SD over the n images above each bar")
    return figure


def mean_std(frame: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Mean, sample std (0 for a single run) and count of `value` per `by` and percent."""
    stats_ = frame.groupby([*by, "percent"], sort=True, dropna=False)["value"].agg(["mean", "std", "count"])
    return stats_.fillna({"std": 0.0}).reset_index()


def repeated_images(frame: pd.DataFrame) -> list[str]:
    """Image ids with runs of more than one seed under some mask, sorted."""
    seeds = frame.groupby(["image_id", "mask"])["seed"].nunique()
    return sorted(seeds[seeds > 1].index.get_level_values("image_id").unique())


def _axes(ax, metric: str) -> None:
    ax.set_title(metric_label(metric))
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel(metric_label(metric))


def _unique_legend(axes) -> tuple[list, list]:
    """Handles and labels of every panel, each label once, in first-seen order."""
    seen = {}
    for ax in np.ravel(axes):
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    return list(seen.values()), list(seen)
