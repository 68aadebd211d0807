"""Every output of an analysis, written to one folder: tables, figures, statistics, report.md.

Layout: results.csv (the tidy frame), summary.csv/.md, figures/*.png, figures/filmstrips/*.png,
statistics/*.csv and report.md tying them together. A frame mixing experiments or conditions
(model, paste_back, ...) gets one set of figures per group, the group in the file name.
"""

from pathlib import Path

import numpy as np
import pandas as pd
from mlflow import MlflowClient

from analysis import figures, statistics
from analysis.artifacts import originals, run_images
from analysis.frames import default_metric, distances, groups, slug
from analysis.image_properties import image_properties
from analysis.summary import summary_table, to_markdown


def write_report(
    frame: pd.DataFrame,
    folder: str | Path,
    client: MlflowClient | None = None,
    *,
    filmstrips: int = 3,
    metric: str | None = None,
) -> list[Path]:
    """Write every output for `frame` into `folder`; return the files written.

    With a `client`, images are read from the runs' artifacts: filmstrips (`filmstrips` images
    per group and mask, spread from the most to the least stable) and the image properties
    related to stability. `metric` picks the metric of the variability figure, the stability
    ranking and the filmstrip captions (default: lpips_vgg, else the first distance).
    """
    out = _Outputs(Path(folder))
    # 1. The data and the summary table
    out.table(frame, "results.csv")
    summary = summary_table(frame)
    out.table(summary, "summary.csv")
    out.text(to_markdown(summary), "summary.md")
    sections = [_overview(frame)]
    # 2. The study's figures, per group of runs
    sections.append(_figures(frame, out, metric or default_metric(frame)))
    # 3. Statistics: saturation, paired comparisons, stability and image properties
    text, stability = _statistics(frame, out, client, metric)
    sections.append(text)
    # 4. Filmstrips from the logged generations
    if client is not None and filmstrips > 0 and stability is not None:
        strips = _filmstrips(client, frame, stability, out, filmstrips)
        links = [f"- [{path}]({path})" for path in strips]
        sections.append("## Filmstrips\n\nFrom the most to the least stable image of each mask.\n\n" + "\n".join(links))
    out.text("# Recursive inpainting: analysis\n\n" + "\n\n".join(sections) + "\n", "report.md")
    return out.written


class _Outputs:
    """Writes files under one folder and remembers them."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.written: list[Path] = []

    def table(self, data: pd.DataFrame, name: str) -> None:
        data.to_csv(self._path(name), index=False)

    def text(self, text: str, name: str) -> None:
        self._path(name).write_text(text)

    def figure(self, figure, name: str) -> str:
        figures.save(figure, self._path(name))
        return name

    def _path(self, name: str) -> Path:
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        self.written.append(path)
        return path


def _figures(frame: pd.DataFrame, out: _Outputs, metric: str) -> str:
    """Mean ± std, scatter and (with several seeds) variability figures per group."""
    lines = []
    for label, rows in groups(frame):
        suffix = f"-{label}" if label else ""
        made = {
            "mean_std": ("mean ± std", figures.mean_std_figure(rows)),
            "scatter": ("per-image scatter", figures.scatter_figure(rows)),
        }
        if figures.repeated_images(rows[rows["metric"] == metric]):
            made["variability"] = ("run-to-run variability", figures.variability_figure(rows, metric))
        for stem, (title, figure) in made.items():
            name = out.figure(figure, f"figures/{stem}{suffix}.png")
            lines.append(f"- {title}{f' ({label})' if label else ''}: [{name}]({name})")
    return "## Figures\n\n" + "\n".join(lines)


def _statistics(frame: pd.DataFrame, out: _Outputs, client: MlflowClient | None, metric: str | None):
    """The statistics tables and their report section; also the stability ranking (or None)."""
    parts = []
    fits = statistics.saturation_fits(frame, on="runs")
    if not fits.empty:
        means = statistics.saturation_fits(frame, on="means")
        out.table(fits, "statistics/saturation_runs.csv")
        out.table(means, "statistics/saturation_means.csv")
        parts.append(_saturation_section(fits, means))
    paired = statistics.paired_tests(frame)
    if not paired.empty:
        out.table(paired, "statistics/paired_tests.csv")
        parts.append("### Paired comparisons (same images)\n\n" + to_markdown(paired.drop(columns=["t_stat"])))
    distance_metrics = set(distances(frame)["metric"])
    stability = None
    if distance_metrics:
        stability = statistics.stability_ranking(frame, metric if metric in distance_metrics else None)
        if client is not None:
            stability = _with_properties(client, frame, stability)
            correlations = statistics.property_correlations(stability)
            out.table(correlations, "statistics/property_correlations.csv")
            name = out.figure(figures.properties_figure(stability), "figures/properties.png")
            parts.append(
                "### Stability and image properties\n\nSpearman correlation of the final distance with each "
                f"property (positive: more of it, further from the original). Figure: [{name}]({name})\n\n"
                + to_markdown(correlations)
            )
        out.table(stability, "statistics/stability.csv")
        parts.append("### Stability ranking\n\nRank 1 stays closest to its original; full table: "
                     "statistics/stability.csv\n\n" + to_markdown(_ends(stability)))
    return "## Statistics\n\n" + "\n\n".join(parts), stability


def _overview(frame: pd.DataFrame) -> str:
    runs = frame.drop_duplicates("run_id")
    final = frame["percent"].max()
    headline = summary_table(frame[frame["percent"] == final])
    return (
        f"{runs['run_id'].nunique()} image runs in {runs['parent_run_id'].nunique()} configurations, "
        f"{runs['image_id'].nunique()} images, experiments: {', '.join(sorted(runs['experiment'].unique()))}; "
        f"masks {', '.join(map(str, sorted(runs['mask'].unique())))}, "
        f"seeds {', '.join(map(str, sorted(runs['seed'].unique())))}, metrics {', '.join(sorted(frame['metric'].unique()))}.\n\n"
        f"## Summary at {final}% inpainted\n\nAll checkpoints: summary.csv, summary.md.\n\n" + to_markdown(headline)
    )


def _saturation_section(fits: pd.DataFrame, means: pd.DataFrame) -> str:
    keys = list(means.columns[: list(means.columns).index("n")])
    columns = keys + ["a", "tau", "b", "b_low", "b_high", "levels_off", "linear_share", "rmse"]
    by = [k for k in keys if k != "distance_name"]
    share = fits.groupby(by, sort=True, dropna=False)["levels_off"].apply(
        lambda s: f"{int(s.fillna(False).astype(bool).sum())}/{int(s.notna().sum())}")
    return (
        "### Saturation: d(p) = a·(1 − e^(−p/τ)) + b·p\n\n"
        "Fitted to the mean distance per mask (b ≈ 0: the distance levels off; b's 95 % interval holding 0 "
        "sets levels_off). Per-run fits: statistics/saturation_runs.csv.\n\n"
        + to_markdown(means[columns])
        + f"\n\nRuns whose distance levels off (per {', '.join(by)}): "
        + ", ".join(f"{' '.join(map(str, k if isinstance(k, tuple) else (k,)))}: {v}" for k, v in share.items())
    )


def _ends(stability: pd.DataFrame, n: int = 3) -> pd.DataFrame:
    """The `n` most and least stable images of each condition and mask."""
    keys = _conditions(stability)
    parts = [rows if len(rows) <= 2 * n else pd.concat([rows.head(n), rows.tail(n)])
             for _, rows in stability.groupby(keys, sort=True, dropna=False)]
    return pd.concat(parts)[keys + ["rank", "image_id", "final", "n_runs"]]


def _with_properties(client: MlflowClient, frame: pd.DataFrame, stability: pd.DataFrame) -> pd.DataFrame:
    """`stability` with each image's properties, computed on its logged original."""
    runs = frame.drop_duplicates("run_id")[["run_id", "image_id", "size"]]
    images = originals(client, runs)
    props = pd.DataFrame([{"image_id": image_id, "size": size, **image_properties(array)}
                          for (image_id, size), array in images.items()])
    if "size" in stability:
        return stability.merge(props, on=["image_id", "size"], how="left")
    return stability.merge(props.drop_duplicates("image_id").drop(columns="size"), on="image_id", how="left")


def _filmstrips(client: MlflowClient, frame: pd.DataFrame, stability: pd.DataFrame, out: _Outputs, count: int) -> list[str]:
    """Filmstrips of `count` images per condition and mask, from most to least stable."""
    metric = stability["metric"].iloc[0]
    keys = _conditions(stability)
    written = []
    for values, ranked in stability.groupby(keys, sort=True, dropna=False):
        values = values if isinstance(values, tuple) else (values,)
        ranked = ranked.sort_values("rank", kind="stable")
        picks = sorted(set(np.linspace(0, len(ranked) - 1, min(count, len(ranked))).round().astype(int)))
        for index in picks:
            image = ranked.iloc[index]
            rows = frame[(frame["image_id"] == image["image_id"]) & (frame["metric"] == metric)]
            for key, value in zip(keys, values):
                rows = rows[rows[key].astype(str) == str(value)]
            run = rows.sort_values(["seed", "run_id"]).iloc[0]
            run_rows = rows[rows["run_id"] == run["run_id"]]
            original, generations = run_images(client, run["run_id"])
            title = (f"{image['image_id']} · mask {run['mask']} · seed {run['seed']} · "
                     f"stability rank {image['rank']} of {len(ranked)}")
            figure = figures.filmstrip_figure(original, generations, title,
                                              dict(zip(run_rows["percent"], run_rows["value"])), metric)
            where = "_".join(f"mask{v}" if k == "mask" else f"{k}-{v}" for k, v in zip(keys, values))
            name = f"{where}_rank{image['rank']}_{image['image_id']}_seed{run['seed']}.png"
            written.append(out.figure(figure, f"figures/filmstrips/{slug(name)}"))
    return written


def _conditions(stability: pd.DataFrame) -> list[str]:
    """The condition columns of a stability table: those before its rank."""
    return list(stability.columns[: list(stability.columns).index("rank")])
