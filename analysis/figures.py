"""The study's figures, each a pure function from the tidy frame to a matplotlib Figure.

Figures are built without pyplot (no global state, no display needed); `save` writes a PNG.
Every function plots exactly the numbers it is given: mean ± std pool all runs in the frame,
so split the frame first (see `analysis.frames.groups`) when it mixes conditions.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.frames import default_metric, is_similarity

X_LABEL = "percent inpainted"


def mean_std_figure(frame: pd.DataFrame, hue: str = "mask") -> Figure:
    """Mean ± sample std over runs of each metric versus percent: a panel per metric, a line per `hue`."""
    metrics = sorted(frame["metric"].unique())
    figure = Figure(figsize=(4.2 * len(metrics), 3.6), layout="constrained")
    axes = figure.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        stats = mean_std(frame[frame["metric"] == metric], [hue])
        for level, rows in stats.groupby(hue, sort=True):
            x, y, err = (rows[c].to_numpy(dtype=float) for c in ("percent", "mean", "std"))
            ax.errorbar(x, y, yerr=err, label=f"{hue} {level}",
                        marker="o", markersize=3, capsize=3)
        _label(ax, metric)
        ax.legend(fontsize="small")
    return figure


def scatter_figure(frame: pd.DataFrame) -> Figure:
    """Every run's value at every checkpoint: a row of panels per metric, a column per mask."""
    metrics = sorted(frame["metric"].unique())
    masks = sorted(frame["mask"].unique())
    figure = Figure(figsize=(3.6 * len(masks), 3.0 * len(metrics)), layout="constrained")
    axes = figure.subplots(len(metrics), len(masks), squeeze=False, sharex=True, sharey="row")
    for row, metric in enumerate(metrics):
        for col, mask in enumerate(masks):
            ax = axes[row][col]
            rows = frame[(frame["metric"] == metric) & (frame["mask"] == mask)]
            ax.scatter(rows["percent"].to_numpy(dtype=float), rows["value"].to_numpy(dtype=float), s=8, alpha=0.5, linewidths=0)
            _label(ax, metric, title=f"{metric}, mask {mask}")
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
    figure = Figure(figsize=(3.6 * len(masks), 2.8 * len(images)), layout="constrained")
    axes = figure.subplots(len(images), len(masks), squeeze=False, sharex=True, sharey=True)
    for i, image in enumerate(images):
        for j, mask in enumerate(masks):
            ax = axes[i][j]
            here = rows[(rows["image_id"] == image) & (rows["mask"] == mask)]
            for (seed, _), run in here.sort_values("percent").groupby(["seed", "run_id"], sort=True):
                ax.plot(run["percent"].to_numpy(dtype=float), run["value"].to_numpy(dtype=float), marker="o", markersize=2, linewidth=1, label=f"seed {seed}")
            _label(ax, metric, title=f"{image}, mask {mask}")
    axes[0][0].legend(fontsize="x-small")
    return figure


def filmstrip_figure(
    original: np.ndarray,
    generations: Mapping[int, np.ndarray],
    title: str = "",
    values: Mapping[int, float] | None = None,
    metric: str = "",
) -> Figure:
    """The original and the generation at every checkpoint (percent -> image), left to right."""
    percents = sorted(generations)
    figure = Figure(figsize=(1.7 * (len(percents) + 1), 2.2), layout="constrained")
    axes = figure.subplots(1, len(percents) + 1, squeeze=False)[0]
    panels = [("original", original)] + [(f"{p}%", generations[p]) for p in percents]
    for ax, (label, image), percent in zip(axes, panels, [None] + percents):
        ax.imshow(image, interpolation="nearest")
        if values is not None and percent in values:
            label += f"\n{metric} {values[percent]:.3g}"
        ax.set_title(label, fontsize="small")
        ax.set_axis_off()
    if title:
        figure.suptitle(title, fontsize="small")
    return figure


def properties_figure(stability: pd.DataFrame, properties: Sequence[str] = ("edge_density", "colour_entropy")) -> Figure:
    """Final distance of each image versus each image property: a panel per property, a colour per mask."""
    figure = Figure(figsize=(4.2 * len(properties), 3.4), layout="constrained")
    axes = figure.subplots(1, len(properties), squeeze=False)[0]
    metric = stability["metric"].iloc[0] if len(stability) else ""
    for ax, prop in zip(axes, properties):
        for mask, rows in stability.groupby("mask", sort=True):
            ax.scatter(rows[prop], rows["final"], s=12, alpha=0.7, label=f"mask {mask}")
        ax.set_xlabel(prop.replace("_", " "))
        ax.set_ylabel(f"{metric} at the last checkpoint")
        ax.legend(fontsize="small")
    return figure


def mean_std(frame: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Mean, sample std (0 for a single run) and count of `value` per `by` and percent."""
    stats = frame.groupby([*by, "percent"], sort=True, dropna=False)["value"].agg(["mean", "std", "count"])
    return stats.fillna({"std": 0.0}).reset_index()


def repeated_images(frame: pd.DataFrame) -> list[str]:
    """Image ids with runs of more than one seed under some mask, sorted."""
    seeds = frame.groupby(["image_id", "mask"])["seed"].nunique()
    return sorted(seeds[seeds > 1].index.get_level_values("image_id").unique())


def save(figure: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write `figure` as PNG, creating folders as needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi, format="png")
    return path


def _label(ax, metric: str, title: str | None = None) -> None:
    ax.set_title(title or metric, fontsize="medium")
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel(f"{metric} (similarity)" if is_similarity(metric) else f"{metric} (distance)")
    ax.grid(alpha=0.3)
