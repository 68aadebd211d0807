"""The study's findings, tested on the analysed runs: one verdict per finding and scope.

Each row states a finding for one scope (condition, mask, metric or pair compared), the
statistic that decides it, its interval or p-value, n, the rule applied and the verdict:
"holds", "does not hold" or "not enough data". Distances only (LPIPS-style metrics and
1 − SSIM); each image counts once (the mean over its runs, e.g. seeds), except in finding 6.

1. The distance grows with the percent inpainted: Page's trend test (images × checkpoints,
   increasing order predicted); holds when p < ALPHA.
2. Growth slows: per image, the slope over the first half of the checkpoints exceeds the slope
   over the second half (one-sided Wilcoxon signed-rank, p < ALPHA); failing that, an
   identifiable saturation fit of the mean curve whose plateau a has a 95 % interval above 0.
3. Larger masks drift more at equal percent: each pair of adjacent mask sizes at the last
   checkpoint both reached, over the images both measured (one-sided Wilcoxon, p < ALPHA).
4. The networks agree: Spearman ρ of the per-image final distances of two LPIPS-family
   networks, with a 95 % interval (Fisher z, Bonett–Wright standard error); holds when the
   interval lies above AGREEMENT_RHO, does not when it lies below.
5. The spread across images is large: coefficient of variation (SD/mean, ddof=1) of the
   per-image final distances with a 95 % BCa bootstrap interval; holds when the interval lies
   above LARGE_CV, does not when it lies below.
6a. Run-to-run spread is smaller than image-to-image spread: one-way ANOVA of the final
   distances of images with several runs (F = between-image / within-image mean square); the
   statistic is the pooled run-to-run SD over the SD of the image means; holds when p < ALPHA.
6b. Run-to-run spread shrinks as the percent grows: each image's SD over its runs at every
   checkpoint after 0 %, Page's trend test with a decreasing order predicted; holds when p < ALPHA.

"not enough data": too few images, checkpoints, masks, networks or repeated images for the
test to reach p < ALPHA at all, or an interval that straddles its threshold. p-values are per
row, not adjusted for the number of rows.
"""

import itertools
import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from analysis.frames import condition_keys, distances, last_common_percent
from analysis.statistics import fit_saturation

ALPHA = 0.05
AGREEMENT_RHO = 0.7  # a strong rank correlation
LARGE_CV = 0.2  # a spread across images of at least a fifth of the mean
CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000
HOLDS, FAILS, UNKNOWN = "holds", "does not hold", "not enough data"
CLAIMS = {
    "1": "the distance grows with the percent inpainted",
    "2": "growth slows",
    "3": "larger masks drift more at equal percent",
    "4": "the networks agree",
    "5": "the spread across images is large",
    "6a": "run-to-run spread is smaller than image-to-image spread",
    "6b": "run-to-run spread shrinks as the percent grows",
}
COLUMNS = ["finding", "claim", "context", "mask", "metric", "compared", "percent", "statistic", "value", "low",
           "high", "p_value", "n", "rule", "verdict", "note"]


def verdicts(frame: pd.DataFrame) -> pd.DataFrame:
    """Every finding's verdict for every condition of `frame` (see the module docstring)."""
    d = distances(frame)
    if d.empty:
        rows = [_row(finding, "", verdict=UNKNOWN, note="no distance metric (LPIPS, ST-LPIPS or SSIM) measured")
                for finding in CLAIMS]
        return pd.DataFrame(rows, columns=COLUMNS)
    keys = condition_keys(frame)
    rows = []
    for values, group in (d.groupby(keys, sort=True, dropna=False) if keys else [((), d)]):
        values = values if isinstance(values, tuple) else (values,)
        context = ", ".join(f"{k}={v}" for k, v in zip(keys, values))
        for _, rows_m in group.groupby("metric", sort=True):
            metric = rows_m["distance_name"].iloc[0]  # 1-ssim for ssim
            for mask, curve in rows_m.groupby("mask", sort=True):
                scope = dict(context=context, mask=mask, metric=metric)
                rows += [grows(curve, **scope), slows(curve, **scope), spread(curve, **scope),
                         run_to_run(curve, **scope), shrinking(curve, **scope)]
            rows += masks_drift(rows_m, context=context, metric=metric)
        for mask, rows_k in group.groupby("mask", sort=True):
            rows += networks_agree(rows_k, context=context, mask=mask)
    table = pd.DataFrame(rows, columns=COLUMNS)
    table["order"] = table["finding"].map({finding: i for i, finding in enumerate(CLAIMS)})
    table = table.sort_values(["order", "context", "metric", "mask", "compared"], kind="stable")
    table = table.astype({"mask": "Int64", "percent": "Int64", "n": "Int64"})  # empty where a row has none
    return table.drop(columns="order").reset_index(drop=True)


def grows(d: pd.DataFrame, **scope) -> dict:
    """Finding 1 for one mask and metric."""
    matrix = _matrix(d)
    n, k = matrix.shape
    rule = f"Page's trend test, increasing order predicted: holds when p < {ALPHA}"
    if k < 3 or n < 1 or _page_min_p(n, k) >= ALPHA:
        return _row("1", "", **scope, n=n, rule=rule, verdict=UNKNOWN,
                    note=f"{n} image(s) x {k} checkpoint(s): the test cannot reach p < {ALPHA}")
    result = stats.page_trend_test(matrix.to_numpy())
    means = matrix.mean()
    return _row("1", "", **scope, percent=int(matrix.columns[-1]), statistic="Page's L", value=result.statistic,
                p_value=result.pvalue, n=n, rule=rule, verdict=HOLDS if result.pvalue < ALPHA else FAILS,
                note=f"mean {means.iloc[0]:.4g} at {matrix.columns[0]}% -> {means.iloc[-1]:.4g} at {matrix.columns[-1]}%")


def slows(d: pd.DataFrame, **scope) -> dict:
    """Finding 2 for one mask and metric."""
    matrix = _matrix(d)
    n, k = matrix.shape
    rule = (f"one-sided Wilcoxon, early slope > late slope: holds when p < {ALPHA}; else an identifiable "
            "saturation fit of the mean curve with a's 95 % interval above 0")
    if k < 3:
        return _row("2", "", **scope, n=n, rule=rule, verdict=UNKNOWN, note=f"{k} checkpoint(s): no two slopes")
    p = matrix.columns.to_numpy(dtype=float)
    first, middle, last = 0, k // 2, k - 1
    early = (matrix.iloc[:, middle] - matrix.iloc[:, first]) / (p[middle] - p[first])
    late = (matrix.iloc[:, last] - matrix.iloc[:, middle]) / (p[last] - p[middle])
    diff = (early - late).to_numpy()
    span = f"slopes {p[first]:g}-{p[middle]:g}% vs {p[middle]:g}-{p[last]:g}%"
    fit = fit_saturation(p, matrix.mean().to_numpy())
    fit_slows = fit["identifiable"] and fit["a"] - stats.t.ppf(0.975, fit["n"] - 3) * fit["a_se"] > 0
    fit_note = (f"mean-curve fit: a = {fit['a']:.3g} ± {fit['a_se']:.2g}, tau = {fit['tau']:.3g}%"
                if fit["identifiable"] else f"mean-curve fit {fit['fit']}")
    enough = 0.5**n < ALPHA
    p_value = _wilcoxon_greater(diff) if enough else np.nan
    if enough and p_value < ALPHA:
        verdict = HOLDS
    elif fit_slows:
        verdict = HOLDS
    elif not enough and not fit["identifiable"]:
        verdict = UNKNOWN
    else:
        verdict = FAILS
    return _row("2", "", **scope, percent=int(p[last]), statistic="median(early − late slope)",
                value=float(np.median(diff)) if n else np.nan, p_value=p_value, n=n, rule=rule, verdict=verdict,
                note=f"{span}; {fit_note}")


def masks_drift(d: pd.DataFrame, **scope) -> list[dict]:
    """Finding 3 for one metric: each pair of adjacent mask sizes."""
    masks = sorted(d["mask"].unique())
    rule = f"one-sided Wilcoxon over the same images, larger − smaller > 0: holds when p < {ALPHA}"
    if len(masks) < 2:
        return [_row("3", "", **scope, rule=rule, verdict=UNKNOWN, note=f"one mask size ({masks[0]} px)")]
    rows = []
    for small, large in zip(masks, masks[1:]):
        pair = d[d["mask"].isin([small, large])]
        percent = last_common_percent(pair)
        at = pair[pair["percent"] == percent].groupby(["mask", "image_id"])["distance"].mean().unstack("mask").dropna()
        diff = (at[large] - at[small]).to_numpy() if len(at) else np.array([])
        n = len(diff)
        out = dict(**scope, compared=f"mask {large} vs {small}", percent=percent, n=n, rule=rule)
        if percent == 0 or 0.5**n >= ALPHA:
            rows.append(_row("3", "", **out, verdict=UNKNOWN,
                             note=f"{n} image(s) in common at {percent}%: the test cannot reach p < {ALPHA}"))
            continue
        p_value = _wilcoxon_greater(diff)
        rows.append(_row("3", "", **out, statistic="median(larger − smaller)", value=float(np.median(diff)),
                         p_value=p_value, verdict=HOLDS if p_value < ALPHA else FAILS,
                         note=f"mean {at[small].mean():.4g} (mask {small}) vs {at[large].mean():.4g} (mask {large})"))
    return rows


def networks_agree(d: pd.DataFrame, **scope) -> list[dict]:
    """Finding 4 for one mask: each pair of LPIPS-family networks."""
    nets = sorted(m for m in d["metric"].unique() if "lpips" in m)
    rule = f"Spearman rho of final distances per image, 95 % interval: holds above {AGREEMENT_RHO}, fails below"
    if len(nets) < 2:
        return [_row("4", "", **scope, rule=rule, verdict=UNKNOWN,
                     note=f"needs two LPIPS-family networks; measured: {', '.join(nets) or 'none'}")]
    rows = []
    for a, b in itertools.combinations(nets, 2):
        pair = d[d["metric"].isin([a, b])]
        percent = last_common_percent(pair)
        at = pair[pair["percent"] == percent].groupby(["metric", "image_id"])["distance"].mean().unstack("metric").dropna()
        n = len(at)
        out = dict(**scope, metric="", compared=f"{a} vs {b}", percent=percent, n=n, rule=rule)
        if n < 4 or at[a].nunique() < 2 or at[b].nunique() < 2:
            rows.append(_row("4", "", **out, verdict=UNKNOWN, note=f"{n} image(s) with distinct values: no interval"))
            continue
        rho = float(stats.spearmanr(at[a], at[b]).statistic)
        low, high = _spearman_interval(rho, n)
        verdict = HOLDS if low > AGREEMENT_RHO else FAILS if high < AGREEMENT_RHO else UNKNOWN
        rows.append(_row("4", "", **out, statistic="Spearman rho", value=rho, low=low, high=high, verdict=verdict))
    return rows


def spread(d: pd.DataFrame, **scope) -> dict:
    """Finding 5 for one mask and metric."""
    percent = last_common_percent(d)
    finals = d[d["percent"] == percent].groupby("image_id")["distance"].mean().to_numpy()
    n = len(finals)
    rule = f"CV = SD/mean over images, 95 % BCa bootstrap interval: holds above {LARGE_CV}, fails below"
    out = dict(**scope, percent=percent, statistic="CV", n=n, rule=rule)
    if n < 3 or finals.mean() <= 0:
        return _row("5", "", **out, verdict=UNKNOWN, note=f"{n} image(s) with mean {finals.mean() if n else np.nan:.3g}")
    cv = float(_cv(finals))
    low, high = _bootstrap_interval(finals, _cv)
    if not (np.isfinite(low) and np.isfinite(high)):
        return _row("5", "", **out, value=cv, verdict=UNKNOWN, note="no bootstrap interval")
    verdict = HOLDS if low > LARGE_CV else FAILS if high < LARGE_CV else UNKNOWN
    return _row("5", "", **out, value=cv, low=low, high=high, verdict=verdict,
                note=f"mean {finals.mean():.4g}, SD {finals.std(ddof=1):.4g}")


def run_to_run(d: pd.DataFrame, **scope) -> dict:
    """Finding 6a for one mask and metric."""
    percent = last_common_percent(d)
    runs = d[d["percent"] == percent].groupby("image_id")["distance"].apply(list)
    repeated = [np.asarray(values) for values in runs if len(values) > 1]
    n = len(repeated)
    rule = f"one-way ANOVA, images as groups, runs as replicates: holds when p < {ALPHA}"
    out = dict(**scope, percent=percent, statistic="run-to-run SD / image-to-image SD", n=n, rule=rule)
    if n < 2:
        return _row("6a", "", **out, verdict=UNKNOWN, note=f"{n} image(s) with several runs")
    within = math.sqrt(np.mean([values.var(ddof=1) for values in repeated]))
    between = float(np.std([values.mean() for values in repeated], ddof=1))
    ratio = within / between if between > 0 else np.inf
    if within == 0:
        p_value = 0.0 if between > 0 else 1.0
    else:
        p_value = float(stats.f_oneway(*repeated).pvalue)
    return _row("6a", "", **out, value=ratio, p_value=p_value, verdict=HOLDS if p_value < ALPHA else FAILS,
                note=f"run-to-run SD {within:.3g}, image-to-image SD {between:.3g}, "
                     f"{sum(map(len, repeated))} runs")


def shrinking(d: pd.DataFrame, **scope) -> dict:
    """Finding 6b for one mask and metric."""
    last = last_common_percent(d)
    rows = d[(d["percent"] > 0) & (d["percent"] <= last)]
    sd = rows.groupby(["image_id", "percent"])["distance"].agg(["std", "count"])
    sd = sd[sd["count"] > 1]["std"].unstack("percent").dropna()
    n, k = sd.shape
    rule = f"Page's trend test on each image's run-to-run SD, decreasing order predicted: holds when p < {ALPHA}"
    if k < 3 or n < 1 or _page_min_p(n, k) >= ALPHA:
        return _row("6b", "", **scope, n=n, rule=rule, verdict=UNKNOWN,
                    note=f"{n} image(s) with several runs x {k} checkpoint(s) after 0%: "
                         f"the test cannot reach p < {ALPHA}")
    result = stats.page_trend_test(sd.to_numpy(), predicted_ranks=np.arange(k, 0, -1))
    means = sd.mean()
    return _row("6b", "", **scope, percent=int(sd.columns[-1]), statistic="Page's L", value=result.statistic,
                p_value=result.pvalue, n=n, rule=rule, verdict=HOLDS if result.pvalue < ALPHA else FAILS,
                note=f"mean run-to-run SD {means.iloc[0]:.3g} at {sd.columns[0]}% -> "
                     f"{means.iloc[-1]:.3g} at {sd.columns[-1]}%")


def tally(table: pd.DataFrame) -> pd.DataFrame:
    """Per finding: its claim and how many scopes hold, do not hold, lack data."""
    counts = table.groupby("finding", sort=False)["verdict"].value_counts().unstack(fill_value=0)
    counts = counts.reindex(columns=[HOLDS, FAILS, UNKNOWN], fill_value=0).reset_index()
    counts.insert(1, "claim", counts["finding"].map(table.groupby("finding")["claim"].first()))
    return counts


def _matrix(d: pd.DataFrame) -> pd.DataFrame:
    """Images x checkpoints (up to the last every run reached) of per-image mean distances."""
    last = last_common_percent(d)
    rows = d[d["percent"] <= last]
    return rows.groupby(["image_id", "percent"])["distance"].mean().unstack("percent").dropna().sort_index(axis=1)


def _page_min_p(n: int, k: int) -> float:
    """The smallest p-value Page's test can give for n blocks of k treatments: (1/k!)^n."""
    return math.exp(-n * math.lgamma(k + 1))


def _wilcoxon_greater(diff: np.ndarray) -> float:
    """One-sided Wilcoxon signed-rank p-value that `diff` is centred above 0 (1 when all are 0)."""
    if not np.any(diff != 0):
        return 1.0
    return float(stats.wilcoxon(diff, alternative="greater").pvalue)


def _spearman_interval(rho: float, n: int) -> tuple[float, float]:
    """95 % interval of Spearman's rho: Fisher z with the Bonett–Wright standard error."""
    z = math.atanh(min(max(rho, -0.999999), 0.999999))
    half = stats.norm.ppf(0.5 + CONFIDENCE / 2) * math.sqrt((1 + rho**2 / 2) / (n - 3))
    return math.tanh(z - half), math.tanh(z + half)


def _cv(values, axis=-1):
    return np.std(values, ddof=1, axis=axis) / np.mean(values, axis=axis)


def _bootstrap_interval(values: np.ndarray, statistic) -> tuple[float, float]:
    """95 % BCa bootstrap interval of `statistic` (percentile when BCa is undefined), seeded."""
    if np.ptp(values) == 0:
        value = float(statistic(values))
        return value, value
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = stats.bootstrap((values,), statistic, n_resamples=BOOTSTRAP_RESAMPLES, confidence_level=CONFIDENCE,
                                     method=method, rng=np.random.default_rng(0))
        low, high = result.confidence_interval
        if np.isfinite(low) and np.isfinite(high):
            return float(low), float(high)
    return np.nan, np.nan


def _row(finding: str, claim: str = "", **values) -> dict:
    row = dict.fromkeys(COLUMNS, np.nan) | {"context": "", "mask": np.nan, "metric": "", "compared": "",
                                            "statistic": "", "note": ""}
    row.update(values, finding=finding, claim=claim or CLAIMS[finding])
    return row
