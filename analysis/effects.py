"""Effect sizes with intervals, and the one-sided p-value of the null that a claim is false.

Each function takes per-image values (NaN = no value; such images are left out) and returns an
`Effect`: the estimate, its interval, n, and the p-value of the null at the claim's boundary
(small p: evidence for the claim). Intervals are 95 % unless stated; p-values and intervals come
from the same statistic, so a p below 0.025 goes with an interval on the claim's side.
"""

import math
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Effect:
    value: float
    low: float
    high: float
    p_value: float  # of the null that the claim is false
    n: int


NONE = Effect(np.nan, np.nan, np.nan, np.nan, 0)


def ratio_of_means(a, b, bound: float, side: str, confidence: float = CONFIDENCE) -> Effect:
    """mean(a) / mean(b) over the images with both, with Fieller's interval.

    The claim is ratio > `bound` (side "greater") or ratio < `bound` (side "less"), with mean(b) > 0;
    its p-value is the larger of the one-sided t-tests of a − bound·b and of b (intersection–union).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return ratios_of_means(a[:, None], b[:, None], bound, side, confidence)[0]


def ratios_of_means(a: np.ndarray, b: np.ndarray, bound: float, side: str,
                    confidence: float = CONFIDENCE) -> list[Effect]:
    """`ratio_of_means` of each column of `a` and `b` (images × columns)."""
    sign = 1.0 if side == "greater" else -1.0
    valid = np.isfinite(a) & np.isfinite(b)
    a, b = np.where(valid, a, 0.0), np.where(valid, b, 0.0)
    p = np.maximum(_t_greater(sign * (a - bound * b), valid), _t_greater(b, valid))
    n, low, high, value = _fieller(a, b, valid, confidence)
    return [Effect(float(v), float(lo), float(hi), float(pv), int(k)) if k >= 3 else Effect(np.nan, np.nan, np.nan, np.nan, int(k))
            for v, lo, hi, pv, k in zip(value, low, high, p, n)]


def geometric_ratios(a: np.ndarray, b: np.ndarray, bound: float, side: str) -> list[Effect]:
    """Per column of `a` and `b` (images × columns): the geometric mean over images of a / b, with
    its t interval on the log scale; the claim is that ratio > `bound` (side "greater") or < `bound`
    ("less"), tested by the one-sided t-test of log(a / b) − log(bound). Images where a or b is not
    positive are left out (and counted out of n). Each image's own scale cancels in its ratio."""
    with np.errstate(invalid="ignore", divide="ignore"):
        logs = np.where((a > 0) & (b > 0), np.log(a / b), np.nan)
    valid = np.isfinite(logs)
    logs = np.where(valid, logs, 0.0)
    sign = 1.0 if side == "greater" else -1.0
    p = _t_greater(sign * np.where(valid, logs - math.log(bound), 0.0), valid)
    n = valid.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = logs.sum(axis=0) / n
        se = np.sqrt((np.where(valid, logs - mean, 0.0) ** 2).sum(axis=0) / (n - 1) / n)
        half = special.stdtrit(np.maximum(n - 1, 1), 0.5 + CONFIDENCE / 2) * se
    return [Effect(math.exp(m), math.exp(m - h), math.exp(m + h), float(pv), int(k)) if k >= 3
            else Effect(np.nan, np.nan, np.nan, np.nan, int(k)) for m, h, pv, k in zip(mean, half, p, n)]


def equivalent_ratio(a, b, margins: tuple[float, float]) -> Effect:
    """mean(a) / mean(b) inside `margins`: two one-sided tests (TOST), 90 % Fieller interval."""
    a, b = np.asarray(a, dtype=float)[:, None], np.asarray(b, dtype=float)[:, None]
    valid = np.isfinite(a) & np.isfinite(b)
    a, b = np.where(valid, a, 0.0), np.where(valid, b, 0.0)
    p = np.maximum.reduce([_t_greater(a - margins[0] * b, valid), _t_greater(margins[1] * b - a, valid),
                           _t_greater(b, valid)])
    n, low, high, value = _fieller(a, b, valid, 1 - 2 * (1 - CONFIDENCE))
    if n[0] < 3:
        return Effect(np.nan, np.nan, np.nan, np.nan, int(n[0]))
    return Effect(float(value[0]), float(low[0]), float(high[0]), float(p[0]), int(n[0]))


def _fieller(a: np.ndarray, b: np.ndarray, valid: np.ndarray, confidence: float):
    """n, Fieller's interval of mean(a) / mean(b) per column (-inf, inf where mean(b) is not clearly
    away from 0), and the ratio; `a` and `b` are 0 where not `valid`."""
    n = valid.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ma, mb = a.sum(axis=0) / n, b.sum(axis=0) / n
        da, db = np.where(valid, a - ma, 0.0), np.where(valid, b - mb, 0.0)
        saa, sab, sbb = ((da * da).sum(axis=0) / (n - 1), (da * db).sum(axis=0) / (n - 1),
                         (db * db).sum(axis=0) / (n - 1))
        q = special.stdtrit(np.maximum(n - 1, 1), 0.5 + confidence / 2) ** 2 / n
        qa, qb, qc = mb * mb - q * sbb, ma * mb - q * sab, ma * ma - q * saa
        # With qa > 0 the interval holds ma / mb, so disc >= 0 in exact arithmetic; rounding takes it
        # just below 0 when a is proportional to b, where the interval is that one point
        disc = np.maximum(qb * qb - qa * qc, 0.0)
        bounded = qa > 0
        root = np.sqrt(disc)
        low = np.where(bounded, (qb - root) / qa, -np.inf)
        high = np.where(bounded, (qb + root) / qa, np.inf)
        value = np.where(mb != 0, ma / mb, np.nan)
    return n, low, high, value


def spearman_above(x, y, rho_min: float) -> Effect:
    """Spearman's rho of x and y; interval from Fisher's z with the Bonett–Wright standard error;
    the claim is rho > `rho_min`."""
    x, y = _pairs(x, y)
    n = len(x)
    if n < 4 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return Effect(np.nan, np.nan, np.nan, np.nan, n)
    rho = float(np.corrcoef(_ranks(x), _ranks(y))[0, 1])
    z = math.atanh(min(max(rho, -0.999999), 0.999999))
    se = math.sqrt((1 + rho**2 / 2) / (n - 3))
    half = special.ndtri(0.5 + CONFIDENCE / 2) * se
    p = float(special.ndtr(-(z - math.atanh(rho_min)) / se))
    return Effect(rho, math.tanh(z - half), math.tanh(z + half), p, n)


def cv_above(x, threshold: float) -> Effect:
    """Coefficient of variation SD/mean (ddof=1); delta-method interval on the log scale from the
    sample's moments (no normality assumed); the claim is CV > `threshold`."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n < 3 or x.mean() <= 0 or np.ptp(x) == 0:
        return Effect(np.nan, np.nan, np.nan, np.nan, n)
    mean, sd = x.mean(), x.std(ddof=1)
    cv = sd / mean
    centred = x - mean
    m3, m4 = np.mean(centred**3), np.mean(centred**4)
    variance = (cv**4 + (m4 - sd**4) / (4 * mean**2 * sd**2) - m3 / mean**3) / n
    se = math.sqrt(max(variance, 0.0)) / cv
    if se == 0:
        return Effect(cv, cv, cv, float(cv <= threshold), n)
    half = special.ndtri(0.5 + CONFIDENCE / 2) * se
    p = float(special.ndtr(-(math.log(cv) - math.log(threshold)) / se))
    return Effect(float(cv), cv * math.exp(-half), cv * math.exp(half), p, n)


def run_to_image_sd(groups: list[np.ndarray]) -> Effect:
    """Run-to-run SD over image-to-image SD, from a one-way random-effects ANOVA (images as groups,
    runs as replicates): sigma_run / sigma_image with the exact F-based interval (Searle); the claim
    is a ratio below 1, tested as F / (1 + n0) against F(images − 1, runs − images)."""
    groups = [g[np.isfinite(g)] for g in groups]
    groups = [g for g in groups if len(g) > 1]
    k = len(groups)
    if k < 3:
        return Effect(np.nan, np.nan, np.nan, np.nan, k)
    sizes = np.array([len(g) for g in groups])
    total = sizes.sum()
    means = np.array([g.mean() for g in groups])
    grand = np.concatenate(groups).mean()
    msb = float(np.sum(sizes * (means - grand) ** 2) / (k - 1))
    msw = float(sum(np.sum((g - g.mean()) ** 2) for g in groups) / (total - k))
    n0 = (total - np.sum(sizes**2) / total) / (k - 1)
    dfs = (k - 1, total - k)
    if msw == 0:
        return Effect(0.0, 0.0, 0.0, 0.0 if msb > 0 else 1.0, k)
    f = msb / msw
    p = float(special.fdtrc(*dfs, f / (1 + n0)))
    tail = (1 - CONFIDENCE) / 2
    theta_low = (f / special.fdtri(*dfs, 1 - tail) - 1) / n0  # sigma_image² / sigma_run²
    theta_high = (f / special.fdtri(*dfs, tail) - 1) / n0
    return Effect(_inverse_sqrt((f - 1) / n0), _inverse_sqrt(theta_high), _inverse_sqrt(theta_low), p, k)


def share_above(x, threshold: float, majority: float = 0.5) -> Effect:
    """Share of images with x > `threshold`, Clopper–Pearson interval; the claim is a share above
    `majority` (exact binomial test)."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n < 3:
        return Effect(np.nan, np.nan, np.nan, np.nan, n)
    k = int(np.sum(x > threshold))
    tail = (1 - CONFIDENCE) / 2
    low = special.betaincinv(k, n - k + 1, tail) if k > 0 else 0.0
    high = special.betaincinv(k + 1, n - k, 1 - tail) if k < n else 1.0
    p = float(special.bdtrc(k - 1, n, majority)) if k > 0 else 1.0  # P(X >= k) under share = majority
    return Effect(k / n, float(low), float(high), p, n)


def _pairs(a, b) -> tuple[np.ndarray, np.ndarray]:
    """The values of the images with both."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def _t_greater(d: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per column, the one-sided one-sample t-test p-value that mean(d) > 0 (d: 0 where not `valid`)."""
    n = valid.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = d.sum(axis=0) / n
        sd = np.sqrt((np.where(valid, d - mean, 0.0) ** 2).sum(axis=0) / (n - 1))
        p = special.stdtr(np.maximum(n - 1, 1), -mean / (sd / np.sqrt(n)))
    return np.where(sd > 0, p, np.where(mean > 0, 0.0, 1.0))


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks, ties averaged (a double argsort when there are none)."""
    return stats.rankdata(x) if len(np.unique(x)) < len(x) else np.argsort(np.argsort(x)).astype(float)


def _inverse_sqrt(theta: float) -> float:
    return math.inf if theta <= 0 else 1 / math.sqrt(theta)
