"""Every output of an analysis, written to one folder: tables, figures, statistics, verdicts, report.

Layout: results.csv (the tidy frame), summary.csv/.md, verdicts.csv, completeness.csv, figures/*.{png,svg,pdf},
figures/filmstrips/* (each filmstrip's image run's animation.webp beside it), statistics/*.csv, and report.md (links by relative paths) and report.html
(self-contained) tying them together. A frame mixing experiments or conditions (model,
paste_back, ...) gets one set of figures per group, the group in the file name.
"""

from pathlib import Path

import logging

import numpy as np
import pandas as pd
from mlflow import MlflowClient

from analysis import figures, statistics
from analysis.artifacts import originals, run_animation, run_images
from analysis.document import Animation, Document, Image, Links, Section, Table, Text, to_html, to_markdown_text
from analysis.frames import comparisons, default_metric, distances, groups, slug
from analysis.image_properties import image_properties
from analysis.labels import label_breakdown, label_tests
from analysis.links import experiment_url, run_url
from analysis.models import model_verdicts, models_section
from analysis.questions import question_verdicts, questions_section
from analysis.style import FORMATS, metric_label
from analysis.summary import summary_table, to_markdown
from analysis.collapse import collapse_section, collapse_verdicts
from analysis.collection import Collection
from analysis.cubes import completeness
from analysis.load import finished_runs
from analysis.rules import Rules
from analysis.verdicts import FAILS, HOLDS, POOLED, UNKNOWN, changed, verdicts

TITLE = "Recursive inpainting: analysis"
SHOWN_CHANGES = 3  # verdicts changed by the incomplete images, listed in the report (all: verdicts.csv)
logger = logging.getLogger(__name__)


def write_report(
    frame: pd.DataFrame,
    folder: str | Path,
    client: MlflowClient | None = None,
    *,
    filmstrips: int = 3,
    metric: str | None = None,
    dpi: int = 300,
    tracking_uri: str | None = None,
    rules: Rules = Rules(),
    include_unfinished: bool = False,
    collection: Collection | None = None,
) -> list[Path]:
    """Write every output for `frame` into `folder`; return the files written.

    The verdicts (decided by `rules`) read every run of `frame` and count the images whose runs
    are unfinished or missing; the figures and tables leave unfinished runs out unless
    `include_unfinished`.

    With a `client`, images are read from the runs' artifacts: filmstrips (`filmstrips` images
    per group and mask, spread from the most to the least stable) and the image properties
    related to stability. `metric` picks the metric of the variability figure, the stability
    ranking, the label breakdown and the filmstrip captions (default: lpips_vgg, else the first
    distance). With a `collection` (`analysis.collection.collect`), its verdicts join the table and
    its section the report. Figures are written as PNG (at `dpi`), SVG and PDF. Run links open the MLflow UI
    of `tracking_uri` (default: the client's) when it is an http(s) server.
    """
    out = _Outputs(Path(folder), dpi)
    uri = tracking_uri or (client.tracking_uri if client is not None else None)
    document = Document(TITLE)
    # 1. The verdicts, on every run
    tables = [verdicts(frame, rules), question_verdicts(frame, rules, metric), model_verdicts(frame, rules)]
    if collection is not None:
        tables.append(collapse_verdicts(frame, collection, rules))
    findings = pd.concat([table for table in tables if not table.empty], ignore_index=True)
    counts = completeness(frame)
    out.table(findings, "verdicts.csv")
    out.table(counts, "completeness.csv")
    document.sections.append(_verdict_section(findings, counts, rules))
    # 2. The data and the runs
    if not include_unfinished and (frame["status"] != "FINISHED").any():
        unfinished = frame.loc[frame["status"] != "FINISHED", "run_id"].nunique()
        logger.warning("figures and tables leave out the %d unfinished image runs (--include-unfinished true keeps "
                       "them); the verdicts count their images as incomplete", unfinished)
        frame = finished_runs(frame)
    metric = metric or default_metric(frame)
    out.table(frame, "results.csv")
    measured, frame = frame, comparisons(frame)  # coverage, depth and complexity have their own section
    document.sections.append(_overview(frame, uri))
    # 3. The summary table
    summary = summary_table(frame)
    out.table(summary, "summary.csv")
    out.text(to_markdown(summary), "summary.md")
    final = frame["percent"].max()
    document.sections.append(Section(f"Summary at {final} % inpainted", [
        Table(summary_table(frame[frame["percent"] == final]), "Mean, SD (ddof=1), min, max and n over image runs.",
              "summary.csv")]))
    # 4. The study's figures, per group of runs
    document.sections.append(_figures(frame, out, metric))
    # 5. The final distance by image label
    labels = _labels(frame, out, metric)
    if labels is not None:
        document.sections.append(labels)
    # 6. Statistics: saturation, paired comparisons, stability and image properties
    section, stability = _statistics(frame, out, client, metric)
    document.sections.append(section)
    questions = questions_section(measured, out, metric)
    if questions is not None:
        document.sections.append(questions)
    models = models_section(measured, out, rules)
    if models is not None:
        document.sections.append(models)
    if collection is not None:
        document.sections.append(collapse_section(frame, collection, out, metric))
    # 7. Filmstrips from the logged generations
    if client is not None and filmstrips > 0 and stability is not None:
        document.sections.append(_filmstrips(client, frame, stability, out, filmstrips, uri))
    out.text(to_markdown_text(document), "report.md")
    out.text(to_html(document, out.folder), "report.html")
    return out.written


class _Outputs:
    """Writes files under one folder and remembers them."""

    def __init__(self, folder: Path, dpi: int):
        self.folder = folder
        self.dpi = dpi
        self.written: list[Path] = []

    def table(self, data: pd.DataFrame, name: str) -> None:
        data.to_csv(self._path(name), index=False)

    def text(self, text: str, name: str) -> None:
        self._path(name).write_text(text, encoding="utf-8")

    def animation(self, data: bytes, name: str, caption: str) -> Animation:
        """Write an animated WebP as NAME; the report's block for it."""
        self._path(name).write_bytes(data)
        return Animation(name, caption)

    def figure(self, figure, stem: str, caption: str) -> Image:
        """Write `figure` as figures/STEM.png, .svg and .pdf; the report's block for it."""
        files = figures.save(figure, self._path(stem + ".png"), dpi=self.dpi, formats=FORMATS)
        self.written += [f for f in files if f not in self.written]
        names = [str(f.relative_to(self.folder)) for f in files]
        return Image(names[0], caption, tuple(names[1:]))

    def _path(self, name: str) -> Path:
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if path not in self.written:
            self.written.append(path)
        return path


def _overview(frame: pd.DataFrame, uri: str | None) -> Section:
    runs = frame.drop_duplicates("run_id")
    text = Text(
        f"{runs['run_id'].nunique()} image runs in {runs['parent_run_id'].nunique()} configurations, "
        f"{runs['image_id'].nunique()} images; experiments {', '.join(sorted(runs['experiment'].unique()))}; "
        f"masks {', '.join(map(str, sorted(runs['mask'].unique())))} px; "
        f"seeds {', '.join(map(str, sorted(runs['seed'].unique())))}; "
        f"metrics {', '.join(metric_label(m) for m in sorted(frame['metric'].unique()))}. "
        "Every value: `results.csv`.")
    blocks = [text]
    if "experiment_id" in frame and experiment_url(uri, "0"):
        items = [(f"experiment {name}", experiment_url(uri, eid)) for eid, name in
                 runs[["experiment_id", "experiment"]].drop_duplicates().itertuples(index=False)]
        configurations = runs.drop_duplicates("parent_run_id").sort_values(["experiment", "mask", "seed"])
        name = configurations["parent_name"] if "parent_name" in configurations else configurations["parent_run_id"]
        items += [(f"configuration {label or parent}", run_url(uri, eid, parent)) for label, parent, eid in
                  zip(name, configurations["parent_run_id"], configurations["experiment_id"])]
        blocks += [Text("In the MLflow UI:"), Links(items)]
    return Section("Runs", blocks)


def _verdict_section(findings: pd.DataFrame, counts: pd.DataFrame, rules: Rules) -> Section:
    """The verdicts: how to read them, one line per finding, the images used, then every row by finding."""
    intro = Text(
        "Each of the study's observations, tested per condition, mask and metric, and pooled over them (distances "
        f"from 50 % on). “holds”: the adjusted p (pooled rows first, a mask's or network's own row only under its pooled row) is below {rules.alpha} and the effect's interval lies on the "
        "claim's side of its threshold; “does not hold”: tested, and that is not so (`contradicted`: the interval "
        "lies on the other side); “not enough data”: too few images, checkpoints, masks, networks or runs. Effects "
        "are relative, so masks and networks compare; thresholds and their reasons: `rip analyze --help` and "
        "docs/verdicts.md. Every column: `verdicts.csv`.")
    overview = pd.DataFrame([
        {"finding": finding, "claim (the study's words)": rows["claim"].iloc[0],
         "verdicts": _counts_text(rows), "pooled": _counts_text(rows[(rows["mask"] == POOLED) | (rows["metric"] == POOLED)]),
         "rule": _rule(rows)}
        for finding, rows in findings.groupby("finding", sort=False)])
    blocks = [intro, Table(overview, "Per finding:", "verdicts.csv"), _images_used(findings, counts)]
    if (counts[["failed", "unfinished", "short", "missing"]].to_numpy().sum()) > 0:
        blocks.append(Table(counts, "Images per configuration:", "completeness.csv"))
    for finding, rows in findings.groupby("finding", sort=False):
        shown = pd.DataFrame({
            "context": rows["context"], "scope": [_scope(row) for row in rows.itertuples()],
            "verdict": rows["verdict"], "effect [95 % interval]": [_effect(row) for row in rows.itertuples()],
            "threshold": rows["threshold"], "n": rows["n"], "p (adjusted)": rows["p_adjusted"], "note": rows["note"]})
        shown = shown[[c for c in shown.columns if not _empty(shown[c])]]
        blocks.append(Table(shown, f"{finding}. “{rows['claim'].iloc[0]}” — {_rule(rows)}"))
    return Section("The study's findings", blocks)


def _images_used(findings: pd.DataFrame, counts: pd.DataFrame) -> Text:
    """Which images the verdicts use, and whether including the incomplete ones changes any verdict."""
    per_context = counts.drop_duplicates("context")
    used, images = int(per_context["used"].sum()), int(per_context["images"].sum())
    if used == images:
        return Text(f"Every one of the {images} images has a finished run with every value in every configuration; "
                    "the verdicts use them all.")
    moved = changed(findings)
    listed = "; ".join(f"{row.finding} ({_scope(row)}{', ' + row.context if row.context else ''}): {row.verdict} → "
                       f"{row.verdict_with_incomplete}" for row in moved.head(SHOWN_CHANGES).itertuples())
    more = f"; {len(moved) - SHOWN_CHANGES} more" if len(moved) > SHOWN_CHANGES else ""
    sensitivity = ("changes no verdict" if moved.empty else
                   f"changes {len(moved)} verdict(s) (column `verdict_with_incomplete`): {listed}{more}")
    return Text(f"The verdicts use the {used} of {images} images complete in every configuration of their condition; "
                f"{images - used} are incomplete (failed, unfinished, short or missing runs: `completeness.csv`). "
                f"Including them up to their last checkpoint {sensitivity}.")


def _rule(rows: pd.DataFrame) -> str:
    """The finding's rule in one line, or why it could not be tested."""
    rules = rows.loc[rows["rule"] != "", "rule"]
    return rules.iloc[0] if len(rules) else f"not tested: {rows['note'].iloc[0]}"


def _counts_text(rows: pd.DataFrame) -> str:
    counts = rows["verdict"].value_counts()
    return ", ".join(f"{counts[v]} {v}" for v in (HOLDS, FAILS, UNKNOWN) if counts.get(v, 0))


def _scope(row) -> str:
    parts = [f"mask {row.mask}" if row.mask not in ("", POOLED) else "masks pooled" if row.mask == POOLED else "",
             "metrics pooled" if row.metric == POOLED else row.metric, row.compared]
    return " · ".join(p for p in parts if p)


def _effect(row) -> str:
    if pd.isna(row.value):
        return ""
    return f"{row.statistic} {row.value:.3g} [{row.low:.3g}, {row.high:.3g}]"


def _figures(frame: pd.DataFrame, out: _Outputs, metric: str) -> Section:
    """Mean ± SD, scatter and (with several seeds) variability figures per group."""
    blocks = []
    for label, rows in groups(frame):
        suffix = f"-{label}" if label else ""
        where = f" ({label})" if label else ""
        made = {
            "mean_std": (f"Mean ± SD of every metric per mask{where}", figures.mean_std_figure(rows)),
            "scatter": (f"Every image run per checkpoint{where}", figures.scatter_figure(rows)),
        }
        if figures.repeated_images(rows[rows["metric"] == metric]):
            made["variability"] = (f"Run-to-run variability, {metric_label(metric)}{where}",
                                   figures.variability_figure(rows, metric))
        blocks += [out.figure(figure, f"figures/{stem}{suffix}", caption) for stem, (caption, figure) in made.items()]
    return Section("Figures", blocks)


def _labels(frame: pd.DataFrame, out: _Outputs, metric: str) -> Section | None:
    """The final distance by each image label with two or more groups, or None without labels."""
    breakdown = label_breakdown(frame, metric)
    if breakdown.empty:
        return None
    tests = label_tests(breakdown, frame)
    out.table(breakdown, "statistics/labels.csv")
    out.table(tests, "statistics/label_tests.csv")
    blocks = [Text("Final distance of each image (mean over its runs) per group of each label; n: images. "
                   "Kruskal–Wallis tests whether the groups differ.")]
    for group, rows in groups(frame):  # a figure per condition: its bars are one per mask and label group
        here = label_breakdown(rows, metric)
        for label in sorted(here["label"].unique()):
            name = label.removeprefix("label_")
            caption = f"{metric_label(here['distance'].iloc[0])} by {name}" + (f" ({group})" if group else "")
            stem = f"figures/label_{slug(name)}" + (f"-{group}" if group else "")
            blocks.append(out.figure(figures.label_figure(here, label, rows), stem, caption))
    blocks += [Table(breakdown, "Per group:", "statistics/labels.csv"),
               Table(tests, "Kruskal–Wallis across groups:", "statistics/label_tests.csv")]
    return Section("By image label", blocks)


def _statistics(frame: pd.DataFrame, out: _Outputs, client: MlflowClient | None, metric: str):
    """The statistics tables and their section; also the stability ranking (or None)."""
    blocks = []
    fits = statistics.saturation_fits(frame, on="runs")
    if not fits.empty:
        means = statistics.saturation_fits(frame, on="means")
        out.table(fits, "statistics/saturation_runs.csv")
        out.table(means, "statistics/saturation_means.csv")
        blocks += _saturation_blocks(fits, means)
    paired = statistics.paired_tests(frame)
    if not paired.empty:
        out.table(paired, "statistics/paired_tests.csv")
        blocks.append(Table(paired.drop(columns=["t_stat"]), "Paired comparisons over the same images "
                            "(Wilcoxon signed-rank, Holm-adjusted, and paired t):", "statistics/paired_tests.csv"))
    distance_metrics = set(distances(frame)["metric"])
    stability = None
    if distance_metrics:
        stability = statistics.stability_ranking(frame, metric if metric in distance_metrics else None)
        if client is not None:
            stability = _with_properties(client, frame, stability)
            correlations = statistics.property_correlations(stability)
            out.table(correlations, "statistics/property_correlations.csv")
            blocks.append(out.figure(figures.properties_figure(stability, frame=frame), "figures/properties",
                                     "Final distance versus image properties, Spearman ρ per mask"))
            blocks.append(Table(correlations, "Spearman correlation of the final distance with each property "
                                "(positive: more of it, further from the original):",
                                "statistics/property_correlations.csv"))
        out.table(stability, "statistics/stability.csv")
        blocks.append(Table(_ends(stability), "Stability ranking (rank 1 stays closest to its original), the ends:",
                            "statistics/stability.csv"))
    return Section("Statistics", blocks), stability


def _saturation_blocks(fits: pd.DataFrame, means: pd.DataFrame) -> list:
    keys = list(means.columns[: list(means.columns).index("n")])
    columns = keys + ["n", "a", "tau", "b", "b_low", "b_high", "identifiable", "levels_off", "fit"]
    by = [k for k in keys if k != "distance_name"]
    counts = fits.groupby(by, sort=True, dropna=False).agg(
        fits=("fit", "size"), identifiable=("identifiable", "sum"),
        levels_off=("levels_off", lambda s: int(s.eq(True).sum()))).reset_index()
    counts["not_identifiable"] = counts["fits"] - counts["identifiable"]
    return [
        Text("Saturation: d(p) = a·(1 − e^(−p/τ)) + b·p fitted to the mean distance per mask. A fit is "
             "identifiable when it has at least five checkpoints (two more than its parameters), τ lies inside its "
             "bounds (at the upper bound, the largest percent, there is no plateau within the data), and its standard "
             "errors are finite and positive, τ's smaller than τ. Only an identifiable fit says whether the distance "
             "levels off (b's 95 % interval holds 0); the others are reported as not identifiable."),
        Table(means[columns], "Fits of the mean curves:", "statistics/saturation_means.csv"),
        Table(counts, "Fits per image run: how many are identifiable, and how many of those level off:",
              "statistics/saturation_runs.csv"),
    ]


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


def _filmstrips(client: MlflowClient, frame: pd.DataFrame, stability: pd.DataFrame, out: _Outputs, count: int,
                uri: str | None) -> Section:
    """Filmstrips of `count` images per condition and mask, from most to least stable."""
    metric = stability["metric"].iloc[0]
    keys = _conditions(stability)
    blocks, links = [], []
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
            caption = (f"{image['image_id']} · model {run['model']} · size {run['size']} px · mask {run['mask']} px · "
                       f"seed {run['seed']} · stability rank {image['rank']} of {len(ranked)}")
            figure = figures.filmstrip_figure(original, generations, caption,
                                              dict(zip(run_rows["percent"], run_rows["value"])), metric)
            where = "_".join(f"mask{v}" if k == "mask" else f"{k}-{v}" for k, v in zip(keys, values))
            name = f"{where}_rank{image['rank']}_{image['image_id']}_seed{run['seed']}"
            blocks.append(out.figure(figure, f"figures/filmstrips/{slug(name)}", caption))
            animation = run_animation(client, run["run_id"])
            if animation is not None:
                blocks.append(out.animation(animation, f"figures/filmstrips/{slug(name)}.webp",
                                            f"{caption} · animation.webp of its image run"))
            url = run_url(uri, run["experiment_id"], run["run_id"]) if "experiment_id" in run else None
            if url:
                links.append((caption, url))
    intro = Text("From the most to the least stable image of each mask: the original, then every checkpoint; "
                 "below each, its image run's animation, where it logged one.")
    return Section("Filmstrips", [intro, *blocks] + ([Text("Their image runs:"), Links(links)] if links else []))


def _conditions(stability: pd.DataFrame) -> list[str]:
    """The condition columns of a stability table: those before its rank."""
    return list(stability.columns[: list(stability.columns).index("rank")])


def _empty(column: pd.Series) -> bool:
    return column.isna().all() or column.astype(str).eq("").all()
