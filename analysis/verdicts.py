"""The study's observations, tested on the analysed runs: one verdict per observation and scope.

Each row tests one observation (its `claim`, in the study's words) on one scope: a condition
(`context`), a mask and a metric, or `pooled` over them. Distances only (LPIPS-style metrics,
1 − SSIM); each image counts once (the mean over its runs) except where runs are compared. Only
checkpoints from 50 % on enter (at 0 % every distance is 0 by construction), up to the last one
every finished run reached. Every row states its effect with a 95 % interval (90 % for the
equivalence of 4b), its threshold, n images, the p-value of the null that the claim is false,
that p-value adjusted over the table (`analysis.hierarchy`: pooled rows first, a per-scope row
only under its pooled row), and the rule in one line.

holds: the adjusted p is below `alpha` and the interval lies on the claim's side of its threshold.
does not hold: it was tested and that is not so (`contradicted`: the interval lies on the other side).
not enough data: too few images (3; 4 for a rank correlation), checkpoints, masks, networks or runs.

Relative effects are scale-free, so networks and masks can be compared and pooled (a pooled row
averages each image's values over the scopes, each divided by its scope's mean distance):
1.  growth from 50 % to the last checkpoint (OLS slope per image × span) / the distance at 50 %: > min_effect
2a. the late rate / the early rate (OLS slopes over the second and first half of the checkpoints): < 1 − min_effect
2b. growth over the second half / the distance where it starts: > min_effect
3.  distance with the larger / the smaller of two adjacent masks, at every checkpoint: > 1 + min_effect
    (intersection–union: p is the largest over checkpoints; the row shows the weakest checkpoint)
4a. Spearman's rho of the images' relative levels under two networks: > agreement_rho
4b. ratio of two networks' relative growth (as in 1) inside `equivalence` (two one-sided tests)
5.  CV (SD / mean) of the images' relative levels: > large_cv
6a. run-to-run SD / image-to-image SD of the runs' relative levels (random-effects ANOVA): < 1
6b. run-to-run SD over the second half / over the first half of the checkpoints: < 1 − min_effect
6c. run-to-run SD with the larger / the smaller of two adjacent masks: > 1 + min_effect
7a. share of images with a point outside Tukey's fences (1.5 IQR per checkpoint), VGG / another network: < 1 − min_effect
7b. VGG's run-to-run CV / another network's: < 1 − min_effect
8a. share of images whose own growth (as in 1; its lower 95 % bound from the image's OLS fit) exceeds min_effect: > 1/2
8b. share of images whose own relative distance rises by more than min_effect with the larger mask: > 1/2
An image's relative level: its distance over the mean of all images at each checkpoint,
averaged over the checkpoints. Ratios of means (1, 2a, 2b, 4b, 7a) have Fieller intervals and
one-sided t-tests; ratios taken per image (3, 6b, 6c, 7b: its own scale cancels) are summarised by
their geometric mean over images, with a t interval of the mean log ratio.

By default only images complete in every configuration of their condition are used (see
`analysis.cubes`); `incomplete` counts the others and `verdict_with_incomplete` gives each
verdict with them included up to their last checkpoint.
"""

import itertools
import math
import warnings

import numpy as np
import pandas as pd
from scipy import special

from analysis import effects, hierarchy
from analysis.cubes import Cube, cubes, nanmean
from analysis.rules import Rules

HOLDS, FAILS, UNKNOWN = "holds", "does not hold", "not enough data"
POOLED = "pooled"


CLAIMS = {
    "1": "As the recursive inpainting progresses, the distance from the original image increases",
    "2a": "The rate at which the distance increases tends to decrease",
    "2b": "it does not appear to stabilize even when the distance becomes substantial",
    "3": "The discrepancy with the original image is more pronounced when larger masks are used",
    "4a": "The three networks used for computing the LPIPS yield comparable results (they rank the images alike)",
    "4b": "The three networks used for computing the LPIPS yield comparable results (their curves grow alike)",
    "5": "The significant standard deviation indicates that different images will exhibit varying behaviors",
    "6a": "the degradation is consistent across different runs (runs of an image differ less than images do)",
    "6b": "The variations also decrease as the percentage of inpainting increases",
    "6c": "variations are more significant with larger masks",
    "7a": "Among the three networks, VGG shows the fewest outliers",
    "7b": "the VGG network, which generally exhibits the lowest deviations",
    "8a": "the general trends are consistent with those observed in the mean: the distance increases with more "
          "inpainting (per image)",
    "8b": "the general trends are consistent with those observed in the mean: the distance increases with "
          "larger masks (per image)",
}
COLUMNS = ["finding", "claim", "context", "mask", "metric", "compared", "checkpoints", "statistic", "value", "low",
           "high", "threshold", "n", "incomplete", "p_value", "p_adjusted", "verdict", "contradicted",
           "verdict_with_incomplete", "rule", "note"]
KEYS = ["finding", "context", "mask", "metric", "compared"]


def verdicts(frame: pd.DataFrame, rules: Rules = Rules()) -> pd.DataFrame:
    """Every observation's verdict for every condition of `frame` (see the module docstring)."""
    contexts = cubes(frame)
    if not contexts:
        rows = [_row(f, "", verdict=UNKNOWN, note="no distance metric (LPIPS, ST-LPIPS or SSIM) measured") for f in CLAIMS]
        return pd.DataFrame(rows, columns=COLUMNS)
    table = _table([(context, cube.only(cube.complete)) for context, cube in contexts], rules)
    table["incomplete"] = table["context"].map({context: int((~cube.complete).sum()) for context, cube in contexts})
    if table["incomplete"].sum():
        everything = _table(contexts, rules).set_index(KEYS)["verdict"]
        table["verdict_with_incomplete"] = [everything.get(key, UNKNOWN) for key in table[KEYS].itertuples(index=False)]
    else:
        table["verdict_with_incomplete"] = table["verdict"]
    return table[COLUMNS]


def changed(table: pd.DataFrame) -> pd.DataFrame:
    """The rows whose verdict changes when incomplete images are included."""
    return table[table["verdict"] != table["verdict_with_incomplete"]]


def tally(table: pd.DataFrame) -> pd.DataFrame:
    """Per finding: its claim and how many scopes hold, do not hold, lack data."""
    counts = table.groupby("finding", sort=False)["verdict"].value_counts().unstack(fill_value=0)
    counts = counts.reindex(columns=[HOLDS, FAILS, UNKNOWN], fill_value=0).reset_index()
    counts.insert(1, "claim", counts["finding"].map(table.groupby("finding")["claim"].first()))
    return counts


def _table(contexts: list[tuple[str, Cube]], rules: Rules) -> pd.DataFrame:
    """The rows of every finding for every context, adjusted as one table (`analysis.hierarchy`), with verdicts."""
    rows = []
    for context, cube in contexts:
        for finding in FINDINGS:
            rows += finding(cube, rules, context)
    table = pd.DataFrame(rows)
    table["p_adjusted"] = hierarchy.adjusted(table["p_value"].to_numpy(dtype=float), _parents(table))
    tested = table["p_value"].notna()
    holds = tested & table["supports"] & (table["p_adjusted"] < rules.alpha)
    table["verdict"] = np.where(holds, HOLDS, np.where(tested, FAILS, UNKNOWN))
    table["contradicted"] = tested & table["against"]
    return table


# -- the findings: each returns its rows for one context ---------------------------------------


def growth(cube: Cube, rules: Rules, context: str) -> list[dict]:
    """1. The distance grows from 50 % to the last checkpoint."""
    p = cube.percents
    if len(p) < 2:
        return [_lacking("1", context, f"{len(p)} checkpoint(s) from 50 %")]
    curves = cube.curves
    rule = (f"growth {_span(p)} (per-image OLS slope × span) / distance at {p[0]} %, Fieller 95 %: holds when above "
            f"{rules.min_effect} and adjusted p < {rules.alpha}")
    return _ratios("1", cube, context, _slopes(curves, p) * (p[-1] - p[0]), curves[..., 0], rules.min_effect,
                   "greater", f"growth / distance at {p[0]} %", _span(p), rule)


def slows(cube: Cube, rules: Rules, context: str) -> list[dict]:
    """2a. The growth rate falls: late slope / early slope < 1 − min_effect."""
    p = cube.percents
    if len(p) < 3:
        return [_lacking("2a", context, f"{len(p)} checkpoint(s) from 50 %: no two halves")]
    early, late = _halves(p)
    curves = cube.curves
    bound = 1 - rules.min_effect
    rule = (f"late / early OLS slope ({_span(p[late])} vs {_span(p[early])}), Fieller 95 %: holds when below {bound:g}, "
            f"the early slope above 0 and adjusted p < {rules.alpha}")
    return _ratios("2a", cube, context, _slopes(curves[..., late], p[late]), _slopes(curves[..., early], p[early]),
                   bound, "less", "late rate / early rate", _span(p), rule)


def keeps_growing(cube: Cube, rules: Rules, context: str) -> list[dict]:
    """2b. The distance still grows over the second half of the checkpoints."""
    p = cube.percents
    if len(p) < 3:
        return [_lacking("2b", context, f"{len(p)} checkpoint(s) from 50 %: no second half")]
    _, late = _halves(p)
    curves = cube.curves
    start = p[late][0]
    rule = (f"growth {_span(p[late])} (OLS) / distance at {start} %, Fieller 95 %: holds when above {rules.min_effect} "
            f"and adjusted p < {rules.alpha}")
    return _ratios("2b", cube, context, _slopes(curves[..., late], p[late]) * (p[-1] - start), curves[..., late][..., 0],
                   rules.min_effect, "greater", f"growth / distance at {start} %", _span(p[late]), rule)


def masks_drift(cube: Cube, rules: Rules, context: str) -> list[dict]:
    """3. Larger masks drift further, at every checkpoint: each pair of adjacent masks."""
    if len(cube.masks) < 2 or len(cube.percents) < 1:
        return [_lacking("3", context, f"{len(cube.masks)} mask size(s)")]
    curves, p = cube.curves, cube.percents
    bound = 1 + rules.min_effect
    rule = (f"distance with the larger / the smaller mask at each checkpoint, geometric mean over images, t 95 %: "
            f"holds when above {bound:g} at every one (p: the largest) and adjusted p < {rules.alpha}")
    rows = []
    for j in range(len(cube.masks) - 1):
        large, small = curves[:, j + 1], curves[:, j]  # (images, metrics, checkpoints)
        compared = f"mask {cube.masks[j + 1]} vs {cube.masks[j]}"
        scopes = [(name, large[:, k], small[:, k]) for k, name in enumerate(cube.metrics)]
        if len(cube.metrics) > 1:  # each image's ratio over the metrics: the geometric mean of theirs
            scopes.append((POOLED, _geometric_mean(large / small, 1), np.ones_like(small[:, 0])))
        for metric, a, b in scopes:
            each = effects.geometric_ratios(a, b, bound, "greater")  # a column per checkpoint
            worst = int(np.argmax([e.p_value if np.isfinite(e.p_value) else np.inf for e in each]))
            held = sum(e.p_value < rules.alpha and e.low > bound for e in each)
            row = _effect_row("3", context, each[worst], f"ratio at {p[worst]} % (the weakest checkpoint)", f"> {bound:g}",
                              rule, metric=metric, compared=compared, checkpoints=_span(p),
                              note=f"above {bound:g} at {held} of {len(p)} checkpoints")
            if any(not np.isfinite(e.p_value) for e in each):
                row.update(p_value=np.nan)
            row["supports"] = all(e.low > bound for e in each)
            row["against"] = any(e.high < bound for e in each)
            rows.append(row)
    return rows


def networks_rank_alike(cube: Cube, rules: Rules, context: str) -> list[dict]:
    """4a. Two networks order the images alike: Spearman's rho of their relative levels."""
    pairs = _network_pairs(cube)
    if not pairs:
        return [_lacking("4a", context, "needs two LPIPS-family networks")]
    levels = _relative_levels(cube.curves)
    rule = (f"Spearman rho of the images' relative levels ({_span(cube.percents)}), Fisher-z 95 %: holds when above "
            f"{rules.agreement_rho} and adjusted p < {rules.alpha}")
    rows = []
    for k1, k2 in pairs:
        for mask, x, y in _over_masks(cube, levels[..., k1], levels[..., k2]):
            effect = effects.spearman_above(x, y, rules.agreement_rho)
            rows.append(_effect_row("4a", context, effect, "Spearman rho", f"> {rules.agreement_rho}", rule, mask=mask,
                                    compared=f"{cube.metrics[k1]} vs {cube.metrics[k2]}",
                                    checkpoints=_span(cube.percents), side="greater", bound=rules.agreement_rho))
    return rows


def networks_grow_alike(cube: Cube, rules: Rules, context: str) -> list[dict]:
    """4b. Two networks' curves grow alike: the ratio of their relative growth inside the margins."""
    pairs = _network_pairs(cube)
    if not pairs or len(cube.percents) < 2:
        return [_lacking("4b", context, "needs two LPIPS-family networks and two checkpoints")]
    growth_ = _relative_growth(cube)
    low, high = rules.equivalence
    rule = (f"ratio of two networks' growth / distance at {cube.percents[0]} %, Fieller 90 %: holds when inside "
            f"[{low:g}, {high:g}] (two one-sided tests) and adjusted p < {rules.alpha}")
    rows = []
    for k1, k2 in pairs:
        for mask, x, y in _over_masks(cube, growth_[..., k1], growth_[..., k2]):
            effect = effects.equivalent_ratio(x, y, rules.equivalence)
            row = _effect_row("4b", context, effect, "ratio of relative growth", f"in [{low:g}, {high:g}]", rule,
                              mask=mask, compared=f"{cube.metrics[k1]} vs {cube.metrics[k2]}",
                              checkpoints=_span(cube.percents))
            row["supports"] = effect.low > low and effect.high < high
            row["against"] = effect.high < low or effect.low > high
            rows.append(row)
    return rows


def spread(cube: Cube, rules: Rules, context: str) -> list[dict]:
    """5. The images' levels spread widely: CV of their relative levels."""
    if len(cube.percents) < 1:
        return [_lacking("5", context, "no checkpoint from 50 %")]
    levels = _relative_levels(cube.curves)
    rule = (f"CV of the images' relative levels ({_span(cube.percents)}), delta-method 95 %: holds when above "
            f"{rules.large_cv} and adjusted p < {rules.alpha}")
    return [_effect_row("5", context, effects.cv_above(x, rules.large_cv), "CV", f"> {rules.large_cv}", rule,
                        mask=mask, metric=metric, checkpoints=_span(cube.percents), side="greater",
                        bound=rules.large_cv)
            for mask, metric, x in _scopes(cube, levels)]


def run_to_run(cube: Cube, rules: Rules, context: str) -> list[dict]:
    """6a. Runs of an image differ less than images do."""
    if cube.values.shape[3] < 2 or len(cube.percents) < 1:
        return [_lacking("6a", context, "no image has several runs")]
    levels = _run_levels(cube)  # (images, masks, metrics, runs)
    rule = ("run-to-run SD / image-to-image SD of the runs' relative levels, random-effects ANOVA, F-based 95 %: holds "
            f"when below 1 and adjusted p < {rules.alpha}")
    scopes = [(str(mask), name, levels[:, j, k]) for j, mask in enumerate(cube.masks) for k, name in enumerate(cube.metrics)]
    if len(cube.metrics) > 1:
        scopes += [(str(mask), POOLED, nanmean(levels[:, j], 1)) for j, mask in enumerate(cube.masks)]
    return [_effect_row("6a", context, effects.run_to_image_sd(list(runs)), "run SD / image SD", "< 1", rule, mask=mask,
                        metric=metric, checkpoints=_span(cube.percents), side="less", bound=1.0,
                        note="n: images with several runs")
            for mask, metric, runs in scopes]


def shrinking(cube: Cube, rules: Rules, context: str) -> list[dict]:
    """6b. The run-to-run SD falls from the first to the second half of the checkpoints."""
    p = cube.percents
    if cube.values.shape[3] < 2 or len(p) < 2:
        return [_lacking("6b", context, "no image has several runs" if cube.values.shape[3] < 2 else "one checkpoint")]
    early, late = _halves(p)
    sd = _run_sd(cube.values)
    bound = 1 - rules.min_effect
    rule = (f"run-to-run SD over {_span(p[late])} / over {_span(p[early])}, geometric mean over images, t 95 %: holds "
            f"when below {bound:g} and adjusted p < {rules.alpha}")
    return _geometric("6b", cube, context, nanmean(sd[..., late], -1) / nanmean(sd[..., early], -1), bound, "less",
                      "late run SD / early run SD", rule)


def runs_vary_with_mask(cube: Cube, rules: Rules, context: str) -> list[dict]:
    """6c. The run-to-run SD is larger with the larger of two adjacent masks."""
    if cube.values.shape[3] < 2 or len(cube.masks) < 2 or len(cube.percents) < 1:
        return [_lacking("6c", context, "no image has several runs" if cube.values.shape[3] < 2 else "one mask size")]
    sd = nanmean(_run_sd(cube.values), -1)  # (images, masks, metrics)
    bound = 1 + rules.min_effect
    rule = (f"run-to-run SD with the larger / the smaller mask ({_span(cube.percents)}), geometric mean over images, "
            f"t 95 %: holds when above {bound:g} and adjusted p < {rules.alpha}")
    rows = []
    for j in range(len(cube.masks) - 1):
        ratio = sd[:, j + 1] / sd[:, j]  # (images, metrics)
        scopes = [(name, ratio[:, k]) for k, name in enumerate(cube.metrics)]
        if len(cube.metrics) > 1:
            scopes.append((POOLED, _geometric_mean(ratio, 1)))
        found = effects.geometric_ratios(np.stack([x for _, x in scopes], 1), np.ones((len(ratio), len(scopes))),
                                         bound, "greater")
        rows += [_effect_row("6c", context, effect, "run SD ratio", f"> {bound:g}", rule, metric=metric,
                             compared=f"mask {cube.masks[j + 1]} vs {cube.masks[j]}", checkpoints=_span(cube.percents),
                             side="greater", bound=bound)
                 for (metric, _), effect in zip(scopes, found)]
    return rows


def vgg_fewest_outliers(cube: Cube, rules: Rules, context: str) -> list[dict]:
    """7a. Fewer images have a point outside Tukey's fences under VGG than under each other network of its family."""
    pairs = _vgg_pairs(cube)
    if not pairs or len(cube.percents) < 1:
        return [_lacking("7a", context, "needs VGG and another network of its family")]
    curves = cube.curves
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a checkpoint no image reached
        if not len(curves):
            q1 = q3 = np.full(curves.shape[1:], np.nan)
        else:
            q1, q3 = (np.percentile if np.isfinite(curves).all() else np.nanpercentile)(curves, [25, 75], axis=0)
    fence = 1.5 * (q3 - q1)
    outside = (curves < q1 - fence) | (curves > q3 + fence)
    flagged = np.where(np.isfinite(curves).any(-1), outside.any(-1), np.nan)  # (images, masks, metrics)
    bound = 1 - rules.min_effect
    rule = (f"share of images with a point outside Tukey's fences (1.5 IQR per checkpoint, {_span(cube.percents)}), "
            f"VGG / other, Fieller 95 %: holds when below {bound:g} and adjusted p < {rules.alpha}")
    return _pair_rows("7a", cube, context, pairs, flagged, bound, "outlier image share ratio", rule)


def vgg_lowest_deviations(cube: Cube, rules: Rules, context: str) -> list[dict]:
    """7b. VGG's runs of an image deviate less (relative to their mean) than each other network's."""
    pairs = _vgg_pairs(cube)
    if not pairs or cube.values.shape[3] < 2 or len(cube.percents) < 1:
        return [_lacking("7b", context, "needs VGG, another network of its family and images with several runs")]
    with np.errstate(invalid="ignore", divide="ignore"):
        cv = nanmean(_run_sd(cube.values) / cube.curves, -1)  # (images, masks, metrics)
    bound = 1 - rules.min_effect
    rule = (f"run-to-run CV ({_span(cube.percents)}), VGG / other, geometric mean over images, t 95 %: holds when "
            f"below {bound:g} and adjusted p < {rules.alpha}")
    rows = []
    for vgg, other in pairs:
        scopes = _over_masks(cube, cv[..., vgg] / cv[..., other], np.ones_like(cv[..., vgg]), geometric=True)
        found = effects.geometric_ratios(np.stack([x for _, x, _ in scopes], 1), np.stack([y for *_, y in scopes], 1),
                                         bound, "less")
        rows += [_effect_row("7b", context, effect, "run CV ratio", f"< {bound:g}", rule, mask=mask,
                             compared=f"{cube.metrics[vgg]} vs {cube.metrics[other]}",
                             checkpoints=_span(cube.percents), side="less", bound=bound)
                 for (mask, _, _), effect in zip(scopes, found)]
    return rows


def images_grow(cube: Cube, rules: Rules, context: str) -> list[dict]:
    """8a. Most images' own curves grow by more than min_effect, beyond their own noise: the lower
    95 % bound of each image's OLS growth."""
    p = cube.percents
    if len(p) < 3:
        return [_lacking("8a", context, f"{len(p)} checkpoint(s) from 50 %: no image's own interval")]
    curves = cube.curves
    low = _ols(curves, p)[1] * (p[-1] - p[0]) / nanmean(curves[..., 0], 0)
    rule = (f"share of images whose own growth {_span(p)} (OLS, lower 95 % bound) / mean distance at {p[0]} % exceeds "
            f"{rules.min_effect}, Clopper–Pearson 95 %: holds when above 0.5 and adjusted p < {rules.alpha}")
    return [_effect_row("8a", context, effects.share_above(x, rules.min_effect), "share of images", "> 0.5", rule,
                        mask=mask, metric=metric, checkpoints=_span(p), side="greater", bound=0.5)
            for mask, metric, x in _scopes(cube, low)]


def images_drift_with_mask(cube: Cube, rules: Rules, context: str) -> list[dict]:
    """8b. Most images' own distance rises by more than min_effect with the larger of two adjacent masks."""
    if len(cube.masks) < 2 or len(cube.percents) < 1:
        return [_lacking("8b", context, f"{len(cube.masks)} mask size(s)")]
    levels = nanmean(cube.curves, -1)  # (images, masks, metrics)
    rule = (f"share of images whose distance ({_span(cube.percents)}) with the larger mask exceeds the smaller's by "
            f"more than {rules.min_effect} of its mean, Clopper–Pearson 95 %: holds when above 0.5 and adjusted p < {rules.alpha}")
    rows = []
    for j in range(len(cube.masks) - 1):
        rise = (levels[:, j + 1] - levels[:, j]) / nanmean(levels[:, j], 0)  # (images, metrics)
        scopes = [(name, rise[:, k]) for k, name in enumerate(cube.metrics)]
        if len(cube.metrics) > 1:
            scopes.append((POOLED, nanmean(rise, 1)))
        for metric, x in scopes:
            rows.append(_effect_row("8b", context, effects.share_above(x, rules.min_effect), "share of images", "> 0.5",
                                    rule, metric=metric, compared=f"mask {cube.masks[j + 1]} vs {cube.masks[j]}",
                                    checkpoints=_span(cube.percents), side="greater", bound=0.5))
    return rows


FINDINGS = (growth, slows, keeps_growing, masks_drift, networks_rank_alike, networks_grow_alike, spread, run_to_run,
            shrinking, runs_vary_with_mask, vgg_fewest_outliers, vgg_lowest_deviations, images_grow,
            images_drift_with_mask)


# -- shared pieces -----------------------------------------------------------------------------


def _ratios(finding, cube, context, a, b, bound, side, statistic, checkpoints, rule) -> list[dict]:
    """Rows of a ratio of means per mask and metric, and pooled over all (a, b: images × masks × metrics)."""
    scale = nanmean(cube.curves, axis=(0, 3))  # (masks, metrics)
    scopes = [(str(mask), name, a[:, j, k], b[:, j, k])
              for j, mask in enumerate(cube.masks) for k, name in enumerate(cube.metrics)]
    if len(scopes) > 1:
        scopes.append((POOLED, POOLED, nanmean(a / scale, (1, 2)), nanmean(b / scale, (1, 2))))
    found = effects.ratios_of_means(np.stack([x for *_, x, _ in scopes], 1), np.stack([y for *_, y in scopes], 1),
                                    bound, side)
    return [_effect_row(finding, context, effect, statistic, f"{'>' if side == 'greater' else '<'} {bound:g}", rule,
                        mask=mask, metric=metric, checkpoints=checkpoints, side=side, bound=bound)
            for (mask, metric, _, _), effect in zip(scopes, found)]


def _geometric(finding, cube, context, ratio, bound, side, statistic, rule) -> list[dict]:
    """Rows of the geometric mean of per-image ratios (images × masks × metrics) per mask and metric,
    and pooled over all (each image's geometric mean over the scopes)."""
    scopes = _scopes(cube, ratio, geometric=True)
    found = effects.geometric_ratios(np.stack([x for *_, x in scopes], 1), np.ones((len(ratio), len(scopes))), bound,
                                     side)
    return [_effect_row(finding, context, effect, statistic, f"{'>' if side == 'greater' else '<'} {bound:g}", rule,
                        mask=mask, metric=metric, checkpoints=_span(cube.percents), side=side, bound=bound)
            for (mask, metric, _), effect in zip(scopes, found)]


def _pair_rows(finding, cube, context, pairs, values, bound, statistic, rule) -> list[dict]:
    """Rows of VGG / other network ratios of means per mask and pooled over masks."""
    rows = []
    for vgg, other in pairs:
        for mask, x, y in _over_masks(cube, values[..., vgg], values[..., other]):
            rows.append(_effect_row(finding, context, effects.ratio_of_means(x, y, bound, "less"), statistic,
                                    f"< {bound:g}", rule, mask=mask,
                                    compared=f"{cube.metrics[vgg]} vs {cube.metrics[other]}",
                                    checkpoints=_span(cube.percents), side="less", bound=bound))
    return rows


def _scopes(cube: Cube, values: np.ndarray, geometric: bool = False) -> list[tuple[str, str, np.ndarray]]:
    """(mask, metric, per-image values) per mask and metric, and pooled: each image's mean (geometric
    mean for ratios) over them (values: images × masks × metrics, scale-free)."""
    scopes = [(str(mask), name, values[:, j, k]) for j, mask in enumerate(cube.masks) for k, name in enumerate(cube.metrics)]
    if len(scopes) > 1:
        scopes.append((POOLED, POOLED, (_geometric_mean if geometric else nanmean)(values, (1, 2))))
    return scopes


def _over_masks(cube: Cube, x: np.ndarray, y: np.ndarray,
                geometric: bool = False) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(mask, x, y) per mask and pooled over masks (x, y: images × masks, scale-free)."""
    scopes = [(str(mask), x[:, j], y[:, j]) for j, mask in enumerate(cube.masks)]
    if len(scopes) > 1:
        mean = _geometric_mean if geometric else nanmean
        scopes.append((POOLED, mean(x, 1), mean(y, 1)))
    return scopes


def _geometric_mean(values: np.ndarray, axis) -> np.ndarray:
    """Geometric mean over `axis` of the positive finite values; NaN where there are none."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.exp(nanmean(np.where(values > 0, np.log(values), np.nan), axis))


def _network_pairs(cube: Cube) -> list[tuple[int, int]]:
    nets = [k for k, name in enumerate(cube.metrics) if "lpips" in name]
    return list(itertools.combinations(nets, 2))


def _vgg_pairs(cube: Cube) -> list[tuple[int, int]]:
    """(VGG, other) index pairs within each LPIPS family (lpips_*, stlpips_*)."""
    family = {k: name.rsplit("_", 1) for k, name in enumerate(cube.metrics) if "lpips" in name and "_" in name}
    return [(v, o) for v, (fv, nv) in family.items() if nv == "vgg" for o, (fo, no) in family.items()
            if fo == fv and o != v]


def _relative_levels(curves: np.ndarray) -> np.ndarray:
    """Each image's distance over the mean of the images at each checkpoint, averaged over checkpoints."""
    return nanmean(curves / nanmean(curves, 0), -1)


def _relative_growth(cube: Cube) -> np.ndarray:
    """Each image's growth over the checkpoints (OLS slope × span) / the images' mean distance at the first."""
    p, curves = cube.percents, cube.curves
    return _slopes(curves, p) * (p[-1] - p[0]) / nanmean(curves[..., 0], 0)


def _run_levels(cube: Cube) -> np.ndarray:
    """Each run's distance over the mean of all runs at each checkpoint, averaged over checkpoints."""
    values = cube.values
    return nanmean(values / nanmean(values, (0, 3))[None, :, :, None, :], -1)


def _run_sd(values: np.ndarray) -> np.ndarray:
    """SD (ddof=1) over runs (axis 3); NaN with fewer than two."""
    count = np.sum(np.isfinite(values), axis=3)
    mean = nanmean(values, 3)
    squares = np.nansum((values - mean[:, :, :, None]) ** 2, axis=3)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 1, np.sqrt(squares / (count - 1)), np.nan)


def _slopes(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """OLS slope of y on x along the last axis over the finite points; NaN with fewer than two."""
    return _ols(y, x)[0]


def _ols(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OLS slope of y on x along the last axis over the finite points, and its lower 95 % bound (t
    with n − 2 degrees of freedom; NaN with fewer than three points)."""
    finite = np.isfinite(y)
    count = finite.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        xm = np.where(finite, x, 0).sum(-1) / count
        ym = np.where(finite, y, 0).sum(-1) / count
        dx = np.where(finite, x - xm[..., None], 0)
        dy = np.where(finite, y - ym[..., None], 0)
        sxx = (dx**2).sum(-1)
        slope = (dx * dy).sum(-1) / sxx
        residual = ((dy - slope[..., None] * dx) ** 2).sum(-1) / (count - 2)
        low = slope - special.stdtrit(np.maximum(count - 2, 1), 0.5 + effects.CONFIDENCE / 2) * np.sqrt(residual / sxx)
    slope = np.where((count >= 2) & (sxx > 0), slope, np.nan)
    return slope, np.where(count >= 3, low, np.nan)


def _parents(table: pd.DataFrame) -> np.ndarray:
    """Each row's pooled row (the one with its finding, context and comparison whose mask and
    network are the row's own or pooled), or -1: pooled rows and rows with none above them."""
    keys = table[["finding", "context", "compared", "mask", "metric"]].to_numpy(dtype=object)
    pooled = {}
    for i, (finding, context, compared, mask, metric) in enumerate(keys):
        if POOLED in (mask, metric):
            pooled.setdefault((finding, context, compared), []).append((i, mask, metric))
    parents = np.full(len(keys), -1)
    for i, (finding, context, compared, mask, metric) in enumerate(keys):
        if POOLED not in (mask, metric):
            above = [j for j, m, n in pooled.get((finding, context, compared), ())
                     if m in (mask, POOLED) and n in (metric, POOLED)]
            parents[i] = above[0] if above else -1
    return parents


def _halves(p: np.ndarray) -> tuple[slice, slice]:
    """The first and the second half of the checkpoints (sharing the middle one when their number is odd)."""
    half = math.ceil(len(p) / 2)
    return slice(0, half), slice(len(p) - half, len(p))


def _span(p) -> str:
    return f"{p[0]}–{p[-1]} %" if len(p) > 1 else f"{p[0]} %"


def _effect_row(finding, context, effect, statistic, threshold, rule, *, side="", bound=np.nan, **scope) -> dict:
    row = _row(finding, context, statistic=statistic, value=effect.value, low=effect.low, high=effect.high,
               threshold=threshold, n=effect.n, p_value=effect.p_value, rule=rule, **scope)
    if side == "greater":
        row.update(supports=effect.low > bound, against=effect.high < bound)
    elif side == "less":
        row.update(supports=effect.high < bound, against=effect.low > bound)
    if effect.n < 3 or not np.isfinite(effect.p_value):
        row.update(p_value=np.nan, note=(row["note"] + "; " if row["note"] else "") + f"{effect.n} image(s) usable")
    return row


def _lacking(finding: str, context: str, why: str) -> dict:
    return _row(finding, context, note=why)


def _row(finding: str, context: str, **values) -> dict:
    row = dict.fromkeys(COLUMNS, np.nan) | {"context": context, "mask": "", "metric": "", "compared": "",
                                            "checkpoints": "", "statistic": "", "threshold": "", "rule": "", "note": "",
                                            "n": 0, "supports": False, "against": False}
    row.update(values, finding=finding, claim=CLAIMS[finding])
    return row
