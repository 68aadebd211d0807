"""Figures of what recursion does to a collection: its diversity, its distance from the originals as
a distribution, and an embedding of originals and generations. Pure functions of frames and arrays."""

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.style import X_LABEL, colours, mask_label, metric_label, styled, title

SHOWN_PERCENTS = (0, 100, 200, 400)  # the embedding's checkpoints
DISTRIBUTION_PANELS = ("kid", "fid", "precision", "recall", "density", "coverage")


def diversity_figure(ratios: pd.DataFrame) -> Figure:
    """The diversity over the originals' diversity versus percent: a panel per metric, a line per
    configuration coloured by mask (columns metric, mask, parent_run_id, percent, ratio)."""
    metrics = sorted(ratios["metric"].unique())
    palette = colours(ratios["mask"])
    with styled():
        figure = Figure(figsize=(1.0 + 3.2 * len(metrics), 3.2), layout="constrained")
        axes = figure.subplots(1, len(metrics), squeeze=False)[0]
        for ax, metric in zip(axes, metrics):
            seen = set()
            for (mask, _), rows in ratios[ratios["metric"] == metric].groupby(["mask", "parent_run_id"], sort=True):
                rows = rows.sort_values("percent")
                ax.plot(rows["percent"], rows["ratio"], marker="o", color=palette[mask], alpha=0.8,
                        label=None if mask in seen else mask_label(mask))
                seen.add(mask)
            ax.axhline(1, color="grey", linewidth=0.8)
            ax.set_title(metric_label(metric))
            ax.set_xlabel(X_LABEL)
            ax.set_ylabel("diversity / diversity at 0 %")
        axes[0].legend(title="mask", loc="best")
        title(figure, "Does recursion make the images alike?", None,
              "mean pairwise distance among a configuration's generations over the same among its originals; "
              "below 1: the collection falls together")
    return figure


def distribution_figure(series: pd.DataFrame, features: str) -> Figure:
    """KID (± its SD over subsets), FID, precision, recall, density and coverage versus percent, a line
    per configuration coloured by mask (columns measure, mask, parent_run_id, percent, value)."""
    palette = colours(series["mask"])
    with styled():
        figure = Figure(figsize=(10.5, 4.6), layout="constrained")
        axes = figure.subplots(2, 3).ravel()
        for ax, measure in zip(axes, DISTRIBUTION_PANELS):
            rows = series[series["measure"] == measure]
            seen = set()
            for (mask, parent), here in rows.groupby(["mask", "parent_run_id"], sort=True):
                here = here.sort_values("percent")
                ax.plot(here["percent"], here["value"], marker="o", color=palette[mask], alpha=0.8,
                        label=None if mask in seen else mask_label(mask))
                seen.add(mask)
                if measure == "kid":
                    sd = series[(series["measure"] == "kid-sd") & (series["parent_run_id"] == parent)]
                    sd = sd.set_index("percent")["value"].reindex(here["percent"]).to_numpy(dtype=float)
                    ax.fill_between(here["percent"], here["value"] - sd, here["value"] + sd, color=palette[mask],
                                    alpha=0.15, linewidth=0)
            ax.set_title(measure.upper() if measure in ("kid", "fid") else measure)
            ax.set_xlabel(X_LABEL)
        axes[0].legend(title="mask", loc="best")
        title(figure, f"The generations against the originals as distributions ({features} features)", None,
              "KID band: ± SD over subsets (unbiased, so below 0 where the sets are alike); FID is biased upward at "
              "small n; precision, recall, density, coverage from k-nearest-neighbour balls")
    return figure


def embedding_figure(panels: list[tuple[str, np.ndarray, np.ndarray, list[int]]], features: str) -> Figure:
    """PCA (scikit-learn) of each panel's originals (n, dim) and generations (n, checkpoints, dim) at
    SHOWN_PERCENTS: a star per original, a line per image through its generations."""
    from sklearn.decomposition import PCA

    with styled():
        figure = Figure(figsize=(2.0 + 3.2 * len(panels), 3.4), layout="constrained")
        axes = figure.subplots(1, len(panels), squeeze=False)[0]
        for ax, (name, originals, generations, percents) in zip(axes, panels):
            shown = [j for j, p in enumerate(percents) if p in SHOWN_PERCENTS]
            points = np.concatenate([originals, generations[:, shown].reshape(-1, originals.shape[1])])
            finite = np.isfinite(points).all(axis=1)
            pca = PCA(n_components=2).fit(points[finite])
            ax.scatter(*pca.transform(originals).T, marker="*", s=40, color="black", label="originals", zorder=3)
            shades = colours([percents[j] for j in shown])
            for image in range(len(originals)):
                path = generations[image, shown]
                keep = np.isfinite(path).all(axis=1)
                if not keep.any():
                    continue
                xy = pca.transform(path[keep])
                ax.plot(xy[:, 0], xy[:, 1], color="grey", linewidth=0.6, alpha=0.6)
                for (x, y), j in zip(xy, np.asarray(shown)[keep]):
                    ax.scatter(x, y, s=10, color=shades[percents[j]], zorder=2)
            for p in sorted(shades):
                ax.scatter([], [], s=10, color=shades[p], label=f"{p} %")
            ratio = pca.explained_variance_ratio_
            ax.set_title(name)
            ax.set_xlabel(f"PC 1 ({ratio[0]:.0%})")
            ax.set_ylabel(f"PC 2 ({ratio[1]:.0%})")
        figure.legend(*axes[0].get_legend_handles_labels(), loc="outside right center")  # off the points
        title(figure, f"Originals and their generations in {features} feature space (PCA)", None,
              "a line per image through its generations; spreading out: diversity kept, falling together: collapse")
    return figure
