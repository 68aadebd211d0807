"""Which inpainting model is most stable under recursion: the comparison across models.

When the analysed runs span several models (the `model` parameter), every other varying
parameter (`analysis.frames.condition_keys`) stays a condition of its own and the models are
compared inside it, per mask and distance, and pooled:

- the distance versus percent, one line per model: mean ± SD over images (each image's runs
  averaged first);
- finding M1, in the study's verdicts' terms (`analysis.findings`): each image's level (its mean
  distance over the checkpoints from 50 % to the last every run reached, mean over its runs)
  under each model, paired by image (the images with a level under every model). The claim is
  that some model's mean level exceeds another's by more than min_effect: every ordered pair of
  models is tested (the ratio of their mean levels above 1 + min_effect, one-sided paired t-test
  with Fieller's interval, as `analysis.effects.ratio_of_means`), Bonferroni over the pairs
  (their intervals at 1 − 5 %/pairs), and the models must differ at all (Friedman's test across
  them, Wilcoxon's signed-rank test for two): the row's p is the larger of the two
  (intersection–union), its effect the pair with the smallest p, usually the least over the most
  stable model. M1 holds when that pair's interval lies above 1 + min_effect and the
  Holm-adjusted p (over M1's rows) is below alpha. Testing every pair, not the pair the data
  picked, keeps a false "holds" rare where the models differ by no more than min_effect.
  Pooled: each image's levels over its scope's mean level, averaged over masks and distances;
- the ranking: each model's mean rank over images (1 = stays closest to its original) with its
  bootstrap 95 % interval over images, seeded by the scope, so the same runs give the same
  intervals;
- the saturation fit of each model's mean curve and the chosen drift model side by side, and
  the complexity of the generations per model where runs logged it.
"""

import os
import zlib

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from analysis import statistics
from analysis.complexity import MEASURE_LABELS, complexity_table
from analysis.document import Section, Table, Text
from analysis.drift_model import model_table, run_fits
from analysis.effects import CONFIDENCE, Effect, ratios_of_means
from analysis.findings import decide, effect_row
from analysis.frames import condition_keys, distances, groups, last_common_percent, varying
from analysis.rules import Rules
from analysis.style import X_LABEL, colours, count_text, mask_label, metric_label, styled, title
from analysis.verdicts import COLUMNS, POOLED

FINDING = "M1"
CLAIMS = {FINDING: "the inpainting models differ in stability (how far the images drift from their originals)"}
MODEL_KEYS = ("model", "model_revision")  # what tells models apart; the other varying parameters are conditions
FIRST_PERCENT = 50  # as the study's verdicts: checkpoints from 50 % on
RESAMPLES = 2000  # bootstrap resamples of the images per scope
STATISTIC = "mean level, model / model"


def compares_models(frame: pd.DataFrame) -> bool:
    """Whether `frame` holds runs of more than one model."""
    return "model" in varying(frame)


def model_verdicts(frame: pd.DataFrame, rules: Rules = Rules()) -> pd.DataFrame:
    """Finding M1 per condition, mask and distance, and pooled, decided as one family (Holm over its
    rows), in `analysis.verdicts.COLUMNS`; empty when the runs hold one model. FINISHED runs only."""
    if not compares_models(frame):
        return pd.DataFrame(columns=COLUMNS)
    rows, _ = _compare(_finished(frame), rules)
    return decide(rows, rules)


def model_ranking(frame: pd.DataFrame, rules: Rules = Rules()) -> pd.DataFrame:
    """Per condition, mask and distance (and pooled), each model's mean level, mean rank over images
    (1 = most stable) with its bootstrap 95 % interval, its place and n images. FINISHED runs only."""
    if not compares_models(frame):
        return pd.DataFrame()
    _, ranking = _compare(_finished(frame), rules)
    return pd.DataFrame(ranking)


def compare_levels(levels: pd.DataFrame, rules: Rules = Rules(), seed: int = 0
                   ) -> tuple[Effect | None, str, pd.DataFrame, str]:
    """M1 on one scope: `levels` is images × models (one level each, no gaps).

    Returns the effect of the pair of models with the smallest p (None with fewer than 3 images or a
    model at level 0) with its p-value replaced by the row's (see the module docstring), that pair
    as "model / model", the ranking (a row per model, most stable first) and a note. `seed` seeds
    the ranking's bootstrap.
    """
    values = levels.to_numpy(dtype=float)
    n, k = values.shape
    ranking = _ranking(levels, seed)
    if k < 2 or n < 3 or not np.all(values.mean(axis=0) > 0):
        why = ("one model in this condition" if k < 2 else f"{n} image(s) with a level under every model" if n < 3
               else "a model at level 0: no ratio")
        return None, "", ranking, why
    pairs = [(i, j) for i in range(k) for j in range(k) if i != j]
    bound = 1 + rules.min_effect
    tested = ratios_of_means(values[:, [i for i, _ in pairs]], values[:, [j for _, j in pairs]], bound, "greater",
                             confidence=1 - (1 - CONFIDENCE) / len(pairs))
    best = int(np.nanargmin([effect.p_value for effect in tested]))
    across, test = _test(values)
    pair_p = min(1.0, len(pairs) * tested[best].p_value)
    effect = Effect(tested[best].value, tested[best].low, tested[best].high, max(across, pair_p), n)
    i, j = pairs[best]
    note = f"{test}; the pair's p × {len(pairs)} pairs = {pair_p:.3g}"
    return effect, f"{levels.columns[i]} / {levels.columns[j]}", ranking, note


def _ranking(levels: pd.DataFrame, seed: int) -> pd.DataFrame:
    """A row per model, most stable first: mean level, mean rank over images with its bootstrap 95 % interval."""
    values = levels.to_numpy(dtype=float)
    n, k = values.shape
    if n == 0:
        return pd.DataFrame({"model": levels.columns, "place": np.arange(1, k + 1), "mean_level": np.nan,
                             "mean_rank": np.nan, "rank_low": np.nan, "rank_high": np.nan, "n": 0})
    ranks = stats.rankdata(values, axis=1)
    draws = ranks[np.random.default_rng(seed).integers(0, n, (RESAMPLES, n))].mean(axis=1)
    ranking = pd.DataFrame({"model": levels.columns, "mean_level": values.mean(axis=0), "mean_rank": ranks.mean(axis=0),
                            "rank_low": np.percentile(draws, 2.5, axis=0),
                            "rank_high": np.percentile(draws, 97.5, axis=0), "n": n})
    ranking = ranking.sort_values(["mean_rank", "mean_level"], kind="stable").reset_index(drop=True)
    ranking.insert(1, "place", np.arange(1, k + 1))
    return ranking


def _test(values: np.ndarray) -> tuple[float, str]:
    """The p-value that the models' levels differ, paired by image, and the test's name and statistic."""
    n, k = values.shape
    if np.all(np.ptp(values, axis=1) == 0):
        return 1.0, "every image at the same level under every model"
    if k == 2:
        result = stats.wilcoxon(values[:, 0], values[:, 1])
        return float(result.pvalue), f"Wilcoxon signed-rank W = {result.statistic:.3g}"
    result = stats.friedmanchisquare(*values.T)
    return float(result.pvalue), f"Friedman χ² = {result.statistic:.3g} ({k - 1} df)"


def _compare(frame: pd.DataFrame, rules: Rules) -> tuple[list[dict], list[dict]]:
    """M1's undecided rows and the ranking records of every condition, mask and distance, and pooled."""
    d = distances(frame)
    d = d.assign(model=model_names(d))
    keys = [key for key in condition_keys(frame) if key not in MODEL_KEYS]
    rows, ranking = [], []
    rule = (f"each image's mean distance from {FIRST_PERCENT} % to the last checkpoint, paired by image: every "
            "ordered pair of models' ratio of mean levels (one-sided paired t, Fieller, Bonferroni over the pairs) and "
            "Friedman across the models (Wilcoxon for two), the larger p: holds when the pair's interval lies above "
            f"{1 + rules.min_effect:g} and Holm p < {rules.alpha} (Holm over M1's rows)")
    for values, group in (d.groupby(keys, sort=True, dropna=False) if keys else [((), d)]):
        values = values if isinstance(values, tuple) else (values,)
        context = ", ".join(f"{k}={v}" for k, v in zip(keys, values))
        scopes = {}
        for (mask, metric), curve in group.groupby(["mask", "distance_name"], sort=True):
            last = last_common_percent(curve)
            scopes[mask, metric] = (_levels(curve, last), f"{FIRST_PERCENT}–{last} %")
        for (mask, metric), (levels, checkpoints) in scopes.items():
            rows.append(_row(levels, rules, rule, context, ranking, mask=mask, metric=metric, checkpoints=checkpoints))
        if len(scopes) > 1:
            pooled = _pooled([levels for levels, _ in scopes.values()])
            rows.append(_row(pooled, rules, rule, context, ranking, mask=POOLED, metric=POOLED, checkpoints="",
                             statistic="mean relative level, model / model"))
    return rows, ranking


def _row(levels: pd.DataFrame, rules: Rules, rule: str, context: str, ranking: list, *, mask, metric,
         checkpoints: str, statistic: str = STATISTIC) -> dict:
    """M1's row for one scope; its ranking's records are appended to `ranking`."""
    seed = zlib.crc32(f"{context}|{mask}|{metric}".encode())
    complete = levels.dropna()
    effect, pair, ranked, note = compare_levels(complete, rules, seed)
    ranking += [{"context": context, "mask": mask, "metric": metric, **record} for record in ranked.to_dict("records")]
    left_out = len(levels) - len(complete)
    if left_out:
        note += f"; {left_out} image(s) without a level under every model left out"
    if effect is not None:
        note = "; ".join([f"{pair}", note] + [f"{r.model} {r.mean_level:.4g} (rank {r.mean_rank:.2f} [{r.rank_low:.2f}, "
                                              f"{r.rank_high:.2f}])" for r in ranked.itertuples()])
    return effect_row(FINDING, CLAIMS[FINDING], context, effect, statistic=statistic, side="greater",
                      bound=1 + rules.min_effect, rule=rule, mask=mask, metric=metric,
                      compared=" < ".join(ranked["model"]), checkpoints=checkpoints, note=note)


def _levels(curve: pd.DataFrame, last: int) -> pd.DataFrame:
    """Images × models: each image's mean distance over the checkpoints from FIRST_PERCENT to `last`,
    the mean over its runs (NaN where a model has no run of the image)."""
    kept = curve[(curve["percent"] >= FIRST_PERCENT) & (curve["percent"] <= last)]
    per_run = kept.groupby(["model", "image_id", "run_id"])["distance"].mean()
    return per_run.groupby(["image_id", "model"]).mean().unstack("model")


def _pooled(scopes: list[pd.DataFrame]) -> pd.DataFrame:
    """Each image's levels over its scope's mean level, averaged over the scopes that hold every model
    (the images in every one)."""
    models = set().union(*(levels.columns for levels in scopes))
    relative = [levels.dropna() / levels.dropna().to_numpy().mean() for levels in scopes if set(levels.columns) == models]
    if not relative:
        return pd.DataFrame(columns=sorted(models), dtype=float)
    return pd.concat(relative, keys=range(len(relative))).groupby(level=1).mean().reindex(
        sorted(set.intersection(*(set(levels.index) for levels in relative))))


def _finished(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["status"] == "FINISHED"] if "status" in frame else frame


def model_names(frame: pd.DataFrame) -> pd.Series:
    """Each row's model as readers see it: a folder's last component, a hub id as it is, with @revision
    (12 digits) when one model was run at several revisions."""
    names = frame["model"].astype(str).map(lambda m: os.path.basename(m.rstrip("/")) if os.path.isabs(m) else m)
    if "model_revision" in frame:
        revisions = frame["model_revision"].fillna("").astype(str)
        several = revisions.groupby(names).transform("nunique") > 1
        names = names.where(~several, names + "@" + revisions.str[:12])
    return names


def model_curves_figure(frame: pd.DataFrame) -> Figure:
    """Distance versus percent, a panel per distance (rows) and mask (columns), a line per model:
    mean ± SD over images, each image's runs averaged first."""
    d = distances(frame)
    if d.empty:
        raise ValueError("no distances in this frame")
    d = d.assign(model=model_names(d))
    per_image = d.groupby(["distance_name", "mask", "model", "image_id", "percent"])["distance"].mean().reset_index()
    curves = (per_image.groupby(["distance_name", "mask", "model", "percent"])["distance"]
              .agg(["mean", "std", "count"]).fillna({"std": 0.0}).reset_index())
    metrics, masks = sorted(curves["distance_name"].unique()), sorted(curves["mask"].unique())
    palette = colours(curves["model"])
    with styled():
        figure = Figure(figsize=(1.6 + 2.8 * len(masks), 0.9 + 2.3 * len(metrics)), layout="constrained")
        axes = figure.subplots(len(metrics), len(masks), squeeze=False, sharex=True)
        counts = []
        for i, metric in enumerate(metrics):
            for j, mask in enumerate(masks):
                ax = axes[i][j]
                here = curves[(curves["distance_name"] == metric) & (curves["mask"] == mask)]
                for model, curve in here.groupby("model", sort=True):
                    x, y, sd = (curve[c].to_numpy(dtype=float) for c in ("percent", "mean", "std"))
                    ax.plot(x, y, marker="o", color=palette[model], label=f"{model} (n = {count_text(curve['count'])})")
                    ax.fill_between(x, y - sd, y + sd, color=palette[model], alpha=0.15, linewidth=0)
                    counts += list(curve["count"])
                ax.set_title(f"mask {mask_label(mask)}")
                ax.set_xlabel(X_LABEL if i == len(metrics) - 1 else "")
                ax.set_ylabel(metric_label(metric) if j == 0 else "")
                ax.legend(title="model (images)", loc="best")
        title(figure, "Distance from the original, per model", frame,
              f"lines: mean over images; bands: ± SD over n = {count_text(counts)} images")
    return figure


def saturation_side_by_side(frame: pd.DataFrame) -> pd.DataFrame:
    """The saturation fit of each model's mean curve (`analysis.statistics.saturation_fits`), a row
    per condition, mask and distance and a column per model: a, τ, b with b's interval and whether
    the distance levels off."""
    fits = statistics.saturation_fits(frame, on="means")
    if fits.empty or "model" not in fits:
        return pd.DataFrame()
    fits = fits.assign(model=model_names(fits))
    keys = [key for key in fits.columns[: list(fits.columns).index("n")] if key not in (*MODEL_KEYS, "metric")]
    fits["fit_text"] = [_fit_text(row) for row in fits.itertuples()]
    return fits.pivot_table(index=keys, columns="model", values="fit_text", aggfunc="first").reset_index()


def _fit_text(row) -> str:
    if not row.identifiable:
        return row.fit
    verdict = "levels off" if row.levels_off else "keeps rising"
    return f"a {row.a:.3g}, τ {row.tau:.3g}, b {row.b:.2g} [{row.b_low:.2g}, {row.b_high:.2g}]: {verdict}"


def drift_side_by_side(frame: pd.DataFrame) -> pd.DataFrame:
    """The chosen drift model (`analysis.drift_model`) of each model, a row per condition, mask and
    distance and a column per model: its form and the share of the final distance due to recursion."""
    fits = run_fits(frame)
    if fits.empty or "model" not in fits:
        return pd.DataFrame()
    chosen = model_table(fits)
    chosen = chosen[chosen["chosen"]].assign(model=lambda t: model_names(t))
    keys = [key for key in chosen.columns[: list(chosen.columns).index("form")] if key not in MODEL_KEYS]
    chosen["text"] = [f"{row.form} (recursion {row.share_recursion:.0%})" for row in chosen.itertuples()]
    return chosen.pivot_table(index=keys, columns="model", values="text", aggfunc="first").reset_index()


def complexity_side_by_side(frame: pd.DataFrame) -> pd.DataFrame:
    """Each complexity measure's mean ratio to the original at the last checkpoint, a row per
    condition, mask and measure and a column per model (empty when no run logged complexity)."""
    table = complexity_table(frame)
    if table.empty or "model" not in table:
        return pd.DataFrame()
    table = table[table["percent"] == table["percent"].max()].assign(model=lambda t: model_names(t))
    table["metric"] = table["metric"].map(lambda key: MEASURE_LABELS.get(key, key))
    keys = [key for key in table.columns[: list(table.columns).index("percent")] if key not in MODEL_KEYS]
    return table.pivot_table(index=keys + ["percent"], columns="model", values="mean", aggfunc="first").reset_index()


def models_section(frame: pd.DataFrame, out, rules: Rules = Rules()) -> Section | None:
    """The report's comparison of the models, its figures and tables written by `out` (the report's
    writer: `figure(figure, stem, caption)`, `table(data, name)`); None when the runs hold one model."""
    frame = _finished(frame)
    if not compares_models(frame):
        return None
    blocks = [Text(
        "The models compared on the same images, masks and distances. Finding M1 (in the verdict table above, "
        "Holm-adjusted as a family of its own) tests whether they differ: each image's level (its mean distance from "
        f"{FIRST_PERCENT} % to the last checkpoint) paired across the models, Friedman's test (Wilcoxon's for two "
        "models) and every pair of models' ratio of mean levels, Bonferroni over the pairs. The "
        "ranking gives each model's mean rank over images (1: stays closest to its original) with its bootstrap "
        "95 % interval.")]
    for label, rows in groups(frame, together=MODEL_KEYS):
        if distances(rows).empty:
            continue
        suffix, where = (f"-{label}", f" ({label})") if label else ("", "")
        blocks.append(out.figure(model_curves_figure(rows), f"figures/models{suffix}",
                                 f"Distance versus percent per model, mean ± SD over images{where}"))
    ranking = model_ranking(frame, rules)
    if not ranking.empty:
        out.table(ranking, "statistics/model_ranking.csv")
        blocks.append(Table(ranking, "Ranking per scope (most stable first):", "statistics/model_ranking.csv"))
    for name, table, caption in (
            ("model_saturation", saturation_side_by_side(frame),
             "Saturation fit d(p) = a·(1 − e^(−p/τ)) + b·p of each model's mean curve (b's 95 % interval):"),
            ("model_drift", drift_side_by_side(frame),
             "The drift model chosen for each model (lowest BIC) and the share of the final distance due to recursion:"),
            ("model_complexity", complexity_side_by_side(frame),
             "Complexity relative to the original at the last checkpoint, mean over image runs:")):
        if not table.empty:
            out.table(table, f"statistics/{name}.csv")
            blocks.append(Table(table, caption, f"statistics/{name}.csv"))
    return Section("Models compared", blocks)
