"""Statistics beyond the study: saturation fits, stability ranking, paired comparisons."""

import itertools
import warnings

import numpy as np
import pandas as pd
from scipy import optimize, stats

from analysis.frames import CONDITIONS, default_metric, distances, is_similarity, varying

EXACT_SPEARMAN_MAX = 7  # up to 7! = 5040 pairings
MIN_DOF = 2  # residual degrees of freedom a saturation fit needs: with one, its errors rest on one residual
FACTORS = ("mask",) + tuple(c for c in CONDITIONS if c != "images")  # what a paired test may compare


def saturation_curve(p, a, tau, b):
    """d(p) = a·(1 − exp(−p/τ)) + b·p: a plateau a reached at rate 1/τ, plus a drift b per percent."""
    return a * (1 - np.exp(-np.asarray(p, dtype=float) / tau)) + b * np.asarray(p, dtype=float)


def fit_saturation(percent, distance) -> dict:
    """Least-squares fit of `saturation_curve` to one distance curve.

    Returns a, tau, b with standard errors (`*_se`), `identifiable`, b's 95 % interval (`b_low`,
    `b_high`, from the t distribution with n − 3 degrees of freedom), `levels_off` (that interval
    holds 0), `linear_share` (b·p_max over the fitted distance at p_max: 0 = all plateau, 1 = all
    drift, negative = the distance turns back down), `rmse`, `n` and `fit` ("ok" or why not).

    A fit is identifiable when it has at least MIN_DOF points more than its 3 parameters, tau
    lies strictly inside its bounds (p_max/1000 .. p_max: at the upper bound there is no plateau
    within the data, at the lower one no rise to fit), every standard error is finite and
    positive, tau's is smaller than tau, and 3·tau reaches the first checkpoint after 0 (a rise
    that ends before it leaves tau free, whatever its standard error says).
    Only an identifiable fit says whether the distance levels off; otherwise `levels_off` is None.
    """
    p = np.asarray(percent, dtype=float)
    d = np.asarray(distance, dtype=float)
    finite = np.isfinite(p) & np.isfinite(d)
    p, d = p[finite], d[finite]
    result = dict(n=len(p), a=np.nan, tau=np.nan, b=np.nan, a_se=np.nan, tau_se=np.nan, b_se=np.nan,
                  identifiable=False, b_low=np.nan, b_high=np.nan, levels_off=None, linear_share=np.nan,
                  tau_at_bound=None, rmse=np.nan, fit="ok")
    if len(p) < 3 or np.ptp(p) == 0:
        return {**result, "fit": "no fit: fewer than 3 checkpoints"}
    span = float(p.max())
    scale = max(float(np.abs(d).max()), 1e-9)
    lower, upper = [0.0, span * 1e-3, -np.inf], [np.inf, span, np.inf]
    start = [scale, span / 4, 0.0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optimize.OptimizeWarning)
        try:
            params, covariance = optimize.curve_fit(
                saturation_curve, p, d, p0=start, bounds=(lower, upper), maxfev=20_000
            )
        except (RuntimeError, ValueError) as error:
            return {**result, "fit": f"no fit: {error}"}
    a, tau, b = (float(v) for v in params)
    residuals = d - saturation_curve(p, a, tau, b)
    dof = len(p) - 3
    errors = np.sqrt(np.diag(covariance)) if dof >= MIN_DOF else np.full(3, np.nan)
    errors = np.where(np.isfinite(errors), errors, np.nan)
    at_upper, at_lower = tau >= upper[1] * (1 - 1e-6), tau <= lower[1] * (1 + 1e-6)
    result.update(a=a, tau=tau, b=b, a_se=float(errors[0]), tau_se=float(errors[1]), b_se=float(errors[2]),
                  tau_at_bound=bool(at_upper or at_lower), rmse=float(np.sqrt(np.mean(residuals**2))))
    end = float(saturation_curve(span, a, tau, b))
    if end > 0:
        result["linear_share"] = b * span / end
    if dof < MIN_DOF:
        return {**result, "fit": f"not identifiable: {len(p)} checkpoints for 3 parameters (at least {3 + MIN_DOF})"}
    if at_upper:
        return {**result, "fit": "not identifiable: tau at its upper bound (no plateau within the data)"}
    if at_lower:
        return {**result, "fit": "not identifiable: tau at its lower bound (no rise to fit)"}
    if 3 * tau < p[p > 0].min():  # 95 % of the rise before the first checkpoint: any smaller tau fits as well
        return {**result, "fit": "not identifiable: the rise ends before the first checkpoint"}
    if not np.all(np.isfinite(errors) & (errors > 0)):  # 0: pinv dropped a direction the data do not constrain
        return {**result, "fit": "not identifiable: undefined standard errors"}
    if errors[1] >= tau:
        return {**result, "fit": "not identifiable: tau's standard error exceeds tau"}
    half = stats.t.ppf(0.975, dof) * errors[2]
    result.update(identifiable=True, b_low=b - half, b_high=b + half, levels_off=bool(b - half <= 0 <= b + half))
    return result


def saturation_fits(frame: pd.DataFrame, on: str = "runs") -> pd.DataFrame:
    """A saturation fit per image run (`on="runs"`) or per mean curve (`on="means"`: the mean
    distance over runs per condition, mask and metric, as in the study's main figure).

    Only distances are fitted (LPIPS-style metrics, and 1 − SSIM for SSIM; PSNR is skipped).
    """
    d = distances(frame)
    conditions = (["experiment"] if frame["experiment"].nunique() > 1 else []) + varying(frame)
    if on == "runs":
        keys = ["experiment", "parent_run_id", "run_id", "image_id", "model", "mask", "seed", "metric", "distance_name"]
        keys += [c for c in conditions if c not in keys]
        curves = d
    elif on == "means":
        keys = conditions + ["mask", "metric", "distance_name"]
        curves = d.groupby(keys + ["percent"], sort=True, dropna=False)["distance"].mean().reset_index()
    else:
        raise ValueError(f"on must be 'runs' or 'means', got {on!r}")
    rows = []
    for values, curve in curves.groupby(keys, sort=True, dropna=False):
        fit = fit_saturation(curve["percent"], curve["distance"])
        rows.append({**dict(zip(keys, values)), **fit})
    return pd.DataFrame(rows)


def stability_ranking(frame: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """Images ranked by how close they stay to their original (rank 1 = most stable).

    Per condition and mask, each image's `final` distance at the last checkpoint every run
    reached (mean over its runs, e.g. seeds; `final_std` across them) and `mean_distance`,
    the distance averaged over the checkpoints up to there.
    """
    d = distances(frame)
    metric = metric or default_metric(d)
    d = d[d["metric"] == metric]
    if d.empty:
        raise ValueError(f"metric {metric!r} has no distance form in this frame")
    keys = (["experiment"] if frame["experiment"].nunique() > 1 else []) + varying(frame) + ["mask"]
    rows = []
    for values, group in d.groupby(keys, sort=True, dropna=False):
        last = group.groupby("run_id")["percent"].max().min()
        upto = group[group["percent"] <= last]
        per_run = upto.groupby(["image_id", "run_id"]).apply(
            lambda run: pd.Series({
                "final": run.loc[run["percent"] == last, "distance"].mean(),
                "mean_distance": run.sort_values("percent")["distance"].mean(),
            }),
            include_groups=False,
        ).reset_index()
        per_image = per_run.groupby("image_id").agg(
            final=("final", "mean"), final_std=("final", "std"), mean_distance=("mean_distance", "mean"),
            n_runs=("run_id", "nunique"),
        ).reset_index()
        per_image["rank"] = per_image["final"].rank(method="min").astype(int)
        for column, value in zip(keys, values):
            per_image[column] = value
        per_image["metric"] = metric
        per_image["distance_name"] = group["distance_name"].iloc[0]
        per_image["percent"] = last
        rows.append(per_image)
    table = pd.concat(rows, ignore_index=True)
    front = keys + ["rank", "image_id", "metric", "distance_name", "percent", "final", "final_std", "mean_distance", "n_runs"]
    return table[front].sort_values(keys + ["rank", "image_id"], kind="stable").reset_index(drop=True)


def property_correlations(
    stability: pd.DataFrame, properties=("edge_density", "colour_entropy")
) -> pd.DataFrame:
    """Spearman correlation of each image property with the final distance, per condition and mask.

    `stability` is `stability_ranking`'s table with the property columns merged in. Positive
    rho: images with more of the property drift further from their original. p-values are
    exact (all pairings) up to EXACT_SPEARMAN_MAX images, from the t approximation above.
    """
    keys = [c for c in stability.columns if c in ("experiment", "mask", *CONDITIONS)]
    rows = []
    for values, group in stability.groupby(keys, sort=True, dropna=False):
        values = values if isinstance(values, tuple) else (values,)
        for prop in properties:
            pairs = group[[prop, "final"]].dropna()
            rho, p = (np.nan, np.nan)
            if len(pairs) >= 3 and pairs[prop].nunique() > 1 and pairs["final"].nunique() > 1:
                rho, p = spearman(pairs[prop].to_numpy(), pairs["final"].to_numpy())
            rows.append({**dict(zip(keys, values)), "metric": group["metric"].iloc[0], "property": prop,
                         "n": len(pairs), "spearman_rho": float(rho), "p_value": float(p)})
    return pd.DataFrame(rows)


def spearman(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Spearman's rho and its two-sided p-value (exact for small samples)."""
    rho = stats.spearmanr(x, y).statistic
    if len(x) > EXACT_SPEARMAN_MAX:
        return float(rho), float(stats.spearmanr(x, y).pvalue)
    y_ranks = stats.rankdata(y)
    y_ranks = y_ranks - y_ranks.mean()

    def rho_of(xs, axis=-1):  # Spearman's rho of every pairing at once: Pearson's r of the ranks
        ranks = stats.rankdata(xs, axis=axis)
        ranks = ranks - ranks.mean(axis=axis, keepdims=True)
        return (ranks * y_ranks).sum(axis=axis) / np.sqrt((ranks**2).sum(axis=axis) * (y_ranks**2).sum())

    exact = stats.permutation_test((x,), rho_of, permutation_type="pairings", n_resamples=np.inf, vectorized=True)
    return float(rho), float(exact.pvalue)


def paired_tests(frame: pd.DataFrame, factors=None, percent: int | None = None) -> pd.DataFrame:
    """Compare each pair of levels of each factor over the same images.

    For every factor that varies (default: mask, model, paste_back, ... that vary), every pair
    of its levels, every metric, with all other conditions held equal: each image's value (mean
    over its runs, e.g. seeds) at `percent` (default: the last checkpoint both levels reached),
    paired by image. Reports the Wilcoxon signed-rank test and the paired t-test of b − a, with
    Holm-adjusted Wilcoxon p-values over all rows, and which level stayed closer to the originals.
    """
    factors = list(factors) if factors else varying(frame, FACTORS)
    rows = []
    for factor in factors:
        context = [c for c in varying(frame, CONDITIONS) if c != factor]
        for values, group in (frame.groupby(context, sort=True, dropna=False) if context else [((), frame)]):
            values = values if isinstance(values, tuple) else (values,)
            label = ", ".join(f"{k}={v}" for k, v in zip(context, values))
            for metric, rows_m in group.groupby("metric", sort=True):
                levels = sorted(rows_m[factor].unique(), key=str)
                for a, b in itertools.combinations(levels, 2):
                    rows.append(_paired(rows_m, factor, a, b, percent) | {"context": label, "metric": metric})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["wilcoxon_p_holm"] = holm(table["wilcoxon_p"].to_numpy())
    order = ["factor", "a", "b", "context", "metric", "percent", "n", "mean_a", "mean_b", "mean_diff",
             "median_diff", "wilcoxon_stat", "wilcoxon_p", "wilcoxon_p_holm", "t_stat", "t_p", "closer"]
    return table[order]


def _paired(rows: pd.DataFrame, factor: str, a, b, percent: int | None) -> dict:
    """One paired comparison of level a with level b of `factor`."""
    ends = [rows[rows[factor] == level].groupby("run_id")["percent"].max().min() for level in (a, b)]
    at = percent if percent is not None else min(ends)
    here = rows[rows["percent"] == at]
    means = here.groupby([factor, "image_id"])["value"].mean()
    x, y = means.get(a, pd.Series(dtype=float)), means.get(b, pd.Series(dtype=float))
    x, y = x.align(y, join="inner")
    diff = (y - x).to_numpy()
    out = dict(factor=factor, a=a, b=b, percent=at, n=len(diff), mean_a=x.mean(), mean_b=y.mean(),
               mean_diff=diff.mean() if len(diff) else np.nan, median_diff=np.median(diff) if len(diff) else np.nan,
               wilcoxon_stat=np.nan, wilcoxon_p=np.nan, t_stat=np.nan, t_p=np.nan, closer="")
    if len(diff) and np.all(diff == 0):
        out.update(wilcoxon_p=1.0, t_p=1.0, closer="equal")
        return out
    if len(diff) >= 1:
        result = stats.wilcoxon(y, x)
        out.update(wilcoxon_stat=float(result.statistic), wilcoxon_p=float(result.pvalue))
    if len(diff) >= 2 and np.std(diff) > 0:
        result = stats.ttest_rel(y, x)
        out.update(t_stat=float(result.statistic), t_p=float(result.pvalue))
    if len(diff):
        b_closer = (out["mean_b"] > out["mean_a"]) if is_similarity(rows["metric"].iloc[0]) else (out["mean_b"] < out["mean_a"])
        out["closer"] = f"{factor}={b if b_closer else a}"
    return out


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (NaN stays NaN)."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p, np.nan)
    valid = np.flatnonzero(np.isfinite(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    m = len(order)
    running = 0.0
    for i, index in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[index]))
        adjusted[index] = running
    return adjusted

