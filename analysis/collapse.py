"""Does the recursion collapse the collection? The verdicts on what `analysis.collection` measured,
and their section of the report.

C1   the diversity (mean pairwise distance among a configuration's generations) averaged over the
     checkpoints from 50 %, over the originals' diversity: < 1 − min_effect;
C2a  the cross-run distance over the second half of the checkpoints from 50 % over the first half,
     a ratio of means over images: < 1 − min_effect (the runs converge to a common image);
C2b  the same for the SD over runs of the distance to the original (only the distance converges,
     as finding 6b reads it, when C2b holds and C2a does not);
C3a  KID (the unbiased MMD² of the full sets) at the last checkpoint minus at 50 %: > 0;
C3b  recall minus precision at every checkpoint from 50 %: > min_effect at each (quality falls
     before diversity and stays below it; an intersection-union test: the row is the checkpoint with
     the largest p, so precision and recall falling together, or recall first at any checkpoint,
     cannot make it hold).
C1, C3a and C3b are per configuration run (its images are the collection), with jackknife
intervals over JACKKNIFE_GROUPS groups of images (each left out of both sets and of every pair);
C2a and C2b per condition, mask and metric over the images with runs in several configurations, with
Fieller intervals (a run that meets the others exactly gives 0, which a ratio of means keeps).
The rows form a family of their own: Holm over them (`analysis.findings.decide`).
"""

import math

import numpy as np
import pandas as pd
from scipy import special

from analysis import distribution
from analysis.collapse_figures import SHOWN_PERCENTS, diversity_figure, distribution_figure, embedding_figure
from analysis.collection import Collection
from analysis.convergence import convergence_figure, convergence_table, late_over_early
from analysis.document import Section, Table, Text
from analysis.effects import CONFIDENCE, Effect, ratio_of_means
from analysis.findings import decide, effect_row
from analysis.frames import condition_keys, groups, metric_key
from analysis.rules import Rules

JACKKNIFE_GROUPS = 20
CLAIMS = {
    "C1": "recursion makes the images of a collection alike (their diversity falls)",
    "C2a": "the runs of one image converge to a common image",
    "C2b": "the runs of one image converge in their distance to the original (finding 6b's reading)",
    "C3a": "the generations drift from the originals' distribution (KID grows with percent)",
    "C3b": "quality falls before diversity (precision below recall at every checkpoint from 50 %)",
}


def collapse_verdicts(frame: pd.DataFrame, collection: Collection, rules: Rules = Rules()) -> pd.DataFrame:
    """Findings C1–C3b for every configuration (C1, C3) and condition (C2) of `frame`, one Holm family."""
    configurations = _configurations(frame)
    rows = []
    for parent, info in configurations.items():
        rows += diversity_rows(collection.diversity[collection.diversity["parent_run_id"] == parent], info, rules)
        vectors = collection.vectors.get(parent)
        if vectors is not None:
            rows += distribution_rows(vectors, info, rules)
    rows += convergence_rows(convergence_table(frame, collection.cross_run), frame, rules)
    return decide(rows, rules)


def _configurations(frame: pd.DataFrame) -> dict[str, dict]:
    """Per configuration run: its context, mask and a scope naming its seed when a mask has several."""
    keys = condition_keys(frame)
    runs = frame.drop_duplicates("parent_run_id")
    several = runs.groupby([*keys, "mask"], dropna=False)["seed"].transform("nunique") > 1 if keys else \
        runs.groupby("mask")["seed"].transform("nunique") > 1
    return {row.parent_run_id: {"context": ", ".join(f"{k}={getattr(row, k)}" for k in keys), "mask": row.mask,
                                "compared": f"seed {row.seed}" if many else ""}
            for row, many in zip(runs.itertuples(index=False), several)}


def jackknife(full: float, parts: np.ndarray, bound: float, side: str, n: int) -> Effect:
    """The estimate `full` with the t interval of the grouped jackknife over `parts` (the estimate
    without each group), and the one-sided p of the null that it is not beyond `bound` on `side`."""
    parts = np.asarray(parts, dtype=float)
    g = len(parts)
    if g < 3 or not np.isfinite(full) or not np.isfinite(parts).all():
        return Effect(full, np.nan, np.nan, np.nan, n)
    pseudo = g * full - (g - 1) * parts
    se = pseudo.std(ddof=1) / math.sqrt(g)
    half = special.stdtrit(g - 1, 0.5 + CONFIDENCE / 2) * se
    if se == 0:
        beyond = full > bound if side == "greater" else full < bound
        return Effect(full, full, full, 0.0 if beyond else 1.0, n)
    z = (full - bound) / se * (1 if side == "greater" else -1)
    return Effect(full, full - half, full + half, float(special.stdtr(g - 1, -z)), n)


def groups_kept(n: int) -> np.ndarray:
    """Boolean (groups, n): the images kept when each of min(n, JACKKNIFE_GROUPS) groups is left out."""
    g = min(n, JACKKNIFE_GROUPS)
    return np.arange(n)[None, :] % g != np.arange(g)[:, None]


def diversity_rows(pairs: pd.DataFrame, info: dict, rules: Rules) -> list[dict]:
    rows = []
    bound = 1 - rules.min_effect
    for metric, here in pairs.groupby("metric", sort=True):
        percents = sorted(p for p in here["percent"].unique() if p >= 50)
        scope = dict(mask=info["mask"], metric=metric_key(metric), compared=info["compared"])
        rule = (f"diversity from 50 % (mean over checkpoints) / diversity at 0 %, jackknife over images, t 95 %: holds "
                f"when below {bound:g} and Holm p < {rules.alpha}")
        statistic = "diversity / diversity at 0 %"
        if 0 not in set(here["percent"]) or not percents:
            rows.append(effect_row("C1", CLAIMS["C1"], info["context"], None, statistic=statistic, side="less",
                                   bound=bound, rule=rule, note="no checkpoint at 0 % or from 50 %", **scope))
            continue
        images = sorted(set(here["image_a"]) | set(here["image_b"]))
        index = {image: i for i, image in enumerate(images)}
        a, b = here["image_a"].map(index).to_numpy(), here["image_b"].map(index).to_numpy()
        kept = groups_kept(len(images))

        def ratio(keep: np.ndarray) -> float:
            use = keep[a] & keep[b]
            means = here.loc[use].groupby("percent")["distance"].mean()
            return float(means.reindex(percents).mean() / means.get(0, np.nan))

        effect = jackknife(ratio(np.ones(len(images), bool)), np.array([ratio(k) for k in kept]), bound, "less",
                           len(images))
        rows.append(effect_row("C1", CLAIMS["C1"], info["context"], effect, statistic=statistic, side="less",
                               bound=bound, rule=rule, checkpoints=f"{percents[0]}–{percents[-1]} %", **scope))
    return rows


def distribution_rows(vectors, info: dict, rules: Rules) -> list[dict]:
    scope = dict(mask=info["mask"], metric="", compared=info["compared"])
    percents = [p for p in vectors.percents if p >= 50]
    common = np.isfinite(vectors.generations[:, [vectors.percents.index(p) for p in percents]]).all(axis=(1, 2)) \
        if percents else np.zeros(len(vectors.image_ids), bool)
    n = int(common.sum())
    kid_rule = (f"unbiased MMD² (KID's kernel) of the full sets at the last checkpoint minus at 50 %, jackknife over "
                f"images, t 95 %: holds when above 0 and Holm p < {rules.alpha}")
    prdc_rule = (f"recall − precision (k = {distribution.PRDC_K}) at every checkpoint from 50 %, jackknife over "
                 f"images, t 95 %: holds when above {rules.min_effect:g} at each (the row: the checkpoint with the "
                 f"largest p) and Holm p < {rules.alpha}")
    why = distribution.too_few(n) if len(percents) >= 2 else "fewer than two checkpoints from 50 %"
    if why:
        return [effect_row(f, CLAIMS[f], info["context"], None, statistic=s, side="greater", bound=b, rule=r,
                           note=why, **scope)
                for f, s, r, b in (("C3a", "KID at the last − at the first checkpoint", kid_rule, 0),
                                   ("C3b", "recall − precision", prdc_rule, rules.min_effect))]
    originals = vectors.originals[common]
    generations = vectors.generations[common]
    kept = groups_kept(n)
    first, last = (generations[:, vectors.percents.index(p)] for p in (percents[0], percents[-1]))
    kid_first, parts_first = distribution.mmd2_left_out(originals, first, kept)
    kid_last, parts_last = distribution.mmd2_left_out(originals, last, kept)
    kid = jackknife(kid_last - kid_first, parts_last - parts_first, 0.0, "greater", n)
    gaps, falls = {}, {}
    for p in percents:
        full, parts = distribution.prdc_left_out(originals, generations[:, vectors.percents.index(p)], kept)
        gaps[p] = jackknife(full["recall"] - full["precision"],
                            np.array([part["recall"] - part["precision"] for part in parts]), rules.min_effect,
                            "greater", n)
        for name in ("precision", "recall"):
            if full[name] < 1 - rules.min_effect:
                falls.setdefault(name, p)
    weakest = max(percents, key=lambda p: gaps[p].p_value if np.isfinite(gaps[p].p_value) else np.inf)
    first_fall = "; ".join(f"{name} first below {1 - rules.min_effect:g} at {falls[name]} %" if name in falls else
                           f"{name} never below {1 - rules.min_effect:g}" for name in ("precision", "recall"))
    span = f"{percents[0]}–{percents[-1]} %"
    return [effect_row("C3a", CLAIMS["C3a"], info["context"], kid, statistic=f"KID at {percents[-1]} % − at "
                       f"{percents[0]} %", side="greater", bound=0, rule=kid_rule, checkpoints=span, **scope),
            effect_row("C3b", CLAIMS["C3b"], info["context"], gaps[weakest],
                       statistic=f"recall − precision at {weakest} % (the weakest checkpoint)", side="greater",
                       bound=rules.min_effect, rule=prdc_rule, checkpoints=span, note=first_fall, **scope)]


def convergence_rows(table: pd.DataFrame, frame: pd.DataFrame, rules: Rules) -> list[dict]:
    if table.empty:
        return []
    keys = condition_keys(frame)
    bound = 1 - rules.min_effect
    rows = []
    for values, here in table.groupby([*keys, "mask", "metric"], sort=True):
        values = values if isinstance(values, tuple) else (values,)
        context = ", ".join(f"{k}={v}" for k, v in zip(keys, values))
        for finding, column, what in (("C2a", "cross_run", "cross-run distance"),
                                      ("C2b", "to_original_sd", "SD over runs of the distance to the original")):
            late, early, span = late_over_early(here, column)
            rule = (f"{what}, mean over images over the second half / over the first half of the checkpoints from "
                    f"50 %, Fieller 95 %: holds when below {bound:g} and Holm p < {rules.alpha}")
            effect = ratio_of_means(late, early, bound, "less") if span else None
            rows.append(effect_row(finding, CLAIMS[finding], context, effect, statistic=f"{what}: late / early",
                                   side="less", bound=bound, rule=rule, mask=values[-2], metric=values[-1],
                                   checkpoints=span, note="" if span else "fewer than two checkpoints from 50 %"))
    return rows


def collapse_section(frame: pd.DataFrame, collection: Collection, out, metric: str | None = None) -> Section:
    """The report's section: what was measured and with what, the figures, the tables, what is missing.
    `out` is the report's writer (`figure(figure, stem, caption)`, `table(data, name)`)."""
    configurations = frame.drop_duplicates("parent_run_id").set_index("parent_run_id")
    names = configurations["parent_name"] if "parent_name" in configurations else configurations.index.to_series()
    blocks = [Text(
        "What recursion does to the collection as a whole (docs/collapse.md). Diversity: the mean pairwise distance "
        "among a configuration's generations at each checkpoint, under each distance the runs logged; at 0 % it is "
        "the originals' diversity, and the ratio to it is the collapse curve. The generations against the originals "
        f"as distributions in the `{collection.features}` feature space: KID (unbiased, subsets of up to "
        f"{distribution.KID_SUBSET_SIZE}), FID (biased upward at small n: for comparison only), precision, recall, "
        f"density and coverage (k = {distribution.PRDC_K}). Logged on each configuration run as `set-*` metrics at "
        "step = percent. Their verdicts (C1–C3b) are in the verdict table above, Holm-adjusted as a family of their "
        "own.")]
    series = collection.series.assign(configuration=lambda s: s["parent_run_id"].map(names),
                                      mask=lambda s: s["parent_run_id"].map(configurations["mask"]))
    out.table(series, "statistics/set_measures.csv")
    diversity = series[series["key"].str.startswith("set-diversity-") & ~series["key"].str.endswith("-se")].copy()
    if not diversity.empty:
        diversity["metric"] = diversity["key"].str.removeprefix("set-diversity-")
        base = diversity[diversity["percent"] == 0].set_index(["parent_run_id", "metric"])["value"]
        diversity["ratio"] = diversity["value"] / [base.get(key, np.nan) for key in
                                                   zip(diversity["parent_run_id"], diversity["metric"])]
        blocks.append(out.figure(diversity_figure(diversity), "figures/collection_diversity",
                                 "The diversity ratio versus percent, a line per configuration"))
        last = diversity[diversity["percent"] == diversity["percent"].max()]
        blocks.append(Table(last[["configuration", "mask", "metric", "percent", "value", "ratio"]],
                            "Diversity at the last checkpoint and its ratio to 0 % (every checkpoint in the file):",
                            "statistics/set_measures.csv"))
    suffix = f"-{collection.features}"
    measured = series[series["key"].str.endswith(suffix) & ~series["key"].str.startswith("set-diversity-")].copy()
    if not measured.empty:
        measured["measure"] = measured["key"].str.removeprefix("set-").str.removesuffix(suffix)
        blocks.append(out.figure(distribution_figure(measured, collection.features), "figures/collection_distribution",
                                 "KID, FID, precision, recall, density and coverage versus percent"))
    panels = _embedding_panels(frame, collection)
    if panels:
        blocks.append(out.figure(embedding_figure(panels, collection.features), "figures/collection_embedding",
                                 f"Originals and generations at {', '.join(map(str, SHOWN_PERCENTS))} % (PCA)"))
    table = convergence_table(frame, collection.cross_run)
    if not table.empty:
        out.table(table, "statistics/convergence.csv")
        shown = metric_key(metric) if metric and metric_key(metric) in set(table["metric"]) else table["metric"].iloc[0]
        shown_rows = table[table["metric"] == shown]
        for name, rows in groups(shown_rows if "experiment" in shown_rows else shown_rows.assign(experiment="")):
            blocks.append(out.figure(convergence_figure(rows), "figures/convergence" + (f"-{name}" if name else ""),
                                     "Between runs versus to the original, per image and pooled"))
        final = table[table["percent"] == table["percent"].max()]
        blocks.append(Table(final, "Cross-run distance beside the distance to the original and its SD over runs, at "
                            "the last checkpoint (every checkpoint in the file):", "statistics/convergence.csv"))
    if collection.notes:
        blocks.append(Text("Not measured: " + "; ".join(collection.notes) + "."))
    return Section("Does the recursion collapse the collection?", blocks)


def _embedding_panels(frame: pd.DataFrame, collection: Collection) -> list:
    """The first configuration of each mask (by seed) with features."""
    runs = frame.drop_duplicates("parent_run_id").sort_values(["mask", "seed", "parent_run_id"])
    panels, seen = [], set()
    for row in runs.itertuples(index=False):
        vectors = collection.vectors.get(row.parent_run_id)
        if row.mask in seen or vectors is None or len(vectors.image_ids) < 3:
            continue
        seen.add(row.mask)
        panels.append((f"mask {row.mask} px, seed {row.seed}", vectors.originals, vectors.generations,
                       vectors.percents))
    return panels
