"""A first model of the drift: how much is coverage, how much is recursion?

After p % of the pixels were inpainted, a share c (`coverage`) of the picture was inpainted at
least once, each such pixel D times on average (`depth`; c·D = p/100). Runs log both at every
checkpoint, exactly, from their own draws. Squares drawn with replacement (`mask_order` random)
leave about e^(−p/100) of the picture untouched: part of the early growth of the distance may
be coverage (more of the original replaced once), not recursion (replaced content replaced
again). Each image run's distance curve is fitted, by least squares through the origin over
the checkpoints after 0 %, with each of MODELS; the models are compared by AIC and BIC summed
over runs, and the chosen one splits the fitted distance at the last checkpoint into a coverage
part f(c, 1) (every covered pixel inpainted once) and a recursion part f(c, D) − f(c, 1).

Q2. The drift continues beyond full coverage: over the checkpoints where every finished run's
    coverage is at least FULL_COVERAGE, each image's growth (OLS slope × span) over its distance
    at the first of them, a ratio of means over images with Fieller's 95 % interval; holds when the
    interval lies above min_effect and the Holm-adjusted p is below alpha, as the study's finding 1
    (`analysis.verdicts`), with coverage in place of percent.
"""

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis import effects
from analysis.findings import decide, effect_row
from analysis.frames import condition_keys, default_metric, distances, last_common_percent
from analysis.rules import Rules
from analysis.style import X_LABEL, colours, mask_label, metric_label, styled, title
from rip.protocol.masks import expected_coverage

FULL_COVERAGE = 0.99
CLAIMS = {"Q2": "the drift continues once every pixel has been inpainted (beyond full coverage)"}


def _log_depth(depth: np.ndarray) -> np.ndarray:
    return np.log(np.where(depth > 0, depth, 1.0))


# name -> (formula, design columns of (coverage c, depth D), parameter names)
MODELS = {
    "coverage": ("d = α·c", lambda c, D: [c], ("alpha",)),
    "percent": ("d = α·c·D = α·p/100", lambda c, D: [c * D], ("alpha",)),
    "coverage + recursion": ("d = α·c + β·(D − 1)·c", lambda c, D: [c, (D - 1) * c], ("alpha", "beta")),
    "coverage + log recursion": ("d = α·c + β·c·ln D", lambda c, D: [c, c * _log_depth(D)], ("alpha", "beta")),
}
"""coverage: only first inpaintings move the image; percent: every inpainting moves it alike
(recursion as strong as coverage); coverage + recursion: each has its own weight;
coverage + log recursion: each further inpainting of a pixel moves it less."""
MARKERS = {"random": "o", "shuffle": "s", "scan": "^"}


def coverage_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Every distance value (see `analysis.frames.distances`) with its run's `coverage` and `depth`
    at that checkpoint; empty for runs recorded before coverage was logged."""
    d = distances(frame)
    measured = frame[frame["metric"].isin(["coverage", "depth"])]
    if d.empty or measured.empty:
        return d.iloc[:0].assign(coverage=pd.Series(dtype=float), depth=pd.Series(dtype=float))
    wide = measured.pivot_table(index=["run_id", "percent"], columns="metric", values="value").reset_index()
    return d.merge(wide[["run_id", "percent", "coverage", "depth"]], on=["run_id", "percent"], how="inner")


def fit_model(name: str, coverage, depth, distance) -> dict:
    """Least squares of model `name` (its `form`) through the origin: parameters, rss, aic, bic, n,
    and the fitted distance at the last point split into its coverage and recursion parts."""
    formula, design, params = MODELS[name]
    c, D, d = (np.asarray(v, dtype=float) for v in (coverage, depth, distance))
    X = np.column_stack(design(c, D))
    coefficients, *_ = np.linalg.lstsq(X, d, rcond=None)
    n, k = len(d), len(params)
    rss = float(np.sum((d - X @ coefficients) ** 2))
    spread = max(rss, n * 1e-12) / n  # an exact fit would give log(0)
    last = -1
    fitted = float(X[last] @ coefficients)
    once = float(np.column_stack(design(c[last:], np.ones(1)))[0] @ coefficients)  # f(c, 1)
    return {"form": name, "formula": formula, **dict(zip(params, coefficients.astype(float))), "n": n, "k": k,
            "rss": rss, "aic": n * np.log(spread) + 2 * k, "bic": n * np.log(spread) + k * np.log(n),
            "coverage_last": float(c[last]), "depth_last": float(D[last]), "fitted_last": fitted,
            "coverage_part": once, "recursion_part": fitted - once}


def run_fits(frame: pd.DataFrame) -> pd.DataFrame:
    """Every model fitted to every image run's curve of every distance (checkpoints after 0 %)."""
    data = coverage_frame(frame)
    keys = condition_keys(frame) + ["mask", "distance_name", "run_id", "image_id", "seed"]
    rows = []
    for values, run in data[data["percent"] > 0].groupby(keys, sort=True, dropna=False):
        run = run.sort_values("percent")
        if len(run) < 3 or not np.any(run["distance"].to_numpy() != 0):
            continue  # too few points for two parameters and a residual, or no drift to model
        for name in MODELS:
            rows.append({**dict(zip(keys, values)),
                         **fit_model(name, run["coverage"], run["depth"], run["distance"])})
    fits = pd.DataFrame(rows)
    return fits.rename(columns={"distance_name": "metric"}) if not fits.empty else fits


def model_table(fits: pd.DataFrame) -> pd.DataFrame:
    """Per condition, mask, metric and model form: runs, mean (SD) parameters, AIC and BIC summed over
    runs, ΔBIC to the best, in how many runs it has the lowest BIC, the shares of the fitted final
    distance due to coverage and to recursion, `chosen` (lowest summed BIC) and `why`."""
    if fits.empty:
        return pd.DataFrame()
    group = [c for c in fits.columns[: list(fits.columns).index("run_id")]]
    best = fits.loc[fits.groupby([*group, "run_id"], dropna=False)["bic"].idxmin(), [*group, "run_id", "form"]]
    wins = best.groupby([*group, "form"], dropna=False).size().rename("bic_wins")
    summary = fits.groupby([*group, "form"], sort=False, dropna=False).agg(
        formula=("formula", "first"), runs=("run_id", "nunique"), alpha=("alpha", "mean"), alpha_sd=("alpha", "std"),
        beta=("beta", "mean"), beta_sd=("beta", "std"), aic=("aic", "sum"), bic=("bic", "sum"),
        coverage_part=("coverage_part", "sum"), fitted_last=("fitted_last", "sum"))
    summary = summary.join(wins).fillna({"bic_wins": 0}).astype({"bic_wins": int}).reset_index()
    summary["share_coverage"] = summary["coverage_part"] / summary["fitted_last"].where(summary["fitted_last"] != 0)
    summary["share_recursion"] = 1 - summary["share_coverage"]
    summary["delta_bic"] = summary["bic"] - summary.groupby(group, dropna=False)["bic"].transform("min")
    summary["chosen"] = summary["delta_bic"] == 0
    summary["why"] = ""
    for _, rows in summary.groupby(group, dropna=False):
        ranked = rows.sort_values("bic")
        chosen = ranked.index[0]
        summary.loc[chosen, "why"] = _why(ranked)
    columns = [*group, "form", "formula", "runs", "alpha", "alpha_sd", "beta", "beta_sd", "aic", "bic", "delta_bic",
               "bic_wins", "share_coverage", "share_recursion", "chosen", "why"]
    return summary[columns]


def _why(ranked: pd.DataFrame) -> str:
    """Why the first row of `ranked` (one group's models by summed BIC) was chosen."""
    first = ranked.iloc[0]
    text = f"lowest BIC summed over {first['runs']} image runs"
    if len(ranked) > 1:
        gap = ranked.iloc[1]["bic"] - first["bic"]
        strength = "very strong" if gap > 10 else "strong" if gap > 6 else "positive" if gap > 2 else "weak"
        text += f", {gap:.1f} below {ranked.iloc[1]['form']} ({strength} evidence)"
    text += f"; lowest in {first['bic_wins']} of {first['runs']} runs"
    if first["aic"] > ranked["aic"].min():
        text += f"; AIC prefers {ranked.loc[ranked['aic'].idxmin(), 'form']}"
    return text


def coverage_verdicts(frame: pd.DataFrame, rules: Rules = Rules()) -> pd.DataFrame:
    """Finding Q2 for every condition of `frame`, decided as one family (Holm over its rows)."""
    return decide(coverage_rows(frame, rules), rules)


def coverage_rows(frame: pd.DataFrame, rules: Rules = Rules()) -> list[dict]:
    """The rows of finding Q2 (see the module docstring) per condition, mask and distance, undecided."""
    data = coverage_frame(frame)
    if data.empty:
        return [effect_row("Q2", CLAIMS["Q2"], "", None, statistic="", side="greater", bound=rules.min_effect, rule="",
                           note="no coverage logged (runs recorded before it was)")]
    keys = condition_keys(frame)
    rows = []
    for values, group in (data.groupby(keys, sort=True, dropna=False) if keys else [((), data)]):
        values = values if isinstance(values, tuple) else (values,)
        context = ", ".join(f"{k}={v}" for k, v in zip(keys, values))
        for (metric, mask), curve in group.groupby(["distance_name", "mask"], sort=True):
            rows.append(beyond_full_coverage(curve, rules, context=context, mask=mask, metric=metric))
    return rows


def beyond_full_coverage(curve: pd.DataFrame, rules: Rules = Rules(), *, context: str = "", **scope) -> dict:
    """Finding Q2 for one condition, mask and distance (`curve`: its rows of `coverage_frame`)."""
    last = last_common_percent(curve)
    lowest = curve[curve["percent"] <= last].groupby("percent")["coverage"].min()
    full = lowest[lowest >= FULL_COVERAGE].index
    matrix = (curve[curve["percent"].isin(full)].groupby(["image_id", "percent"])["distance"].mean()
              .unstack("percent").dropna().sort_index(axis=1))
    bound = rules.min_effect
    if matrix.shape[1] < 2:
        where = f"from {int(full[0])} %" if len(full) else f"at no checkpoint up to {last} % (lowest {lowest.iloc[-1]:.3f})"
        return effect_row("Q2", CLAIMS["Q2"], context, None, statistic="", side="greater", bound=bound, rule="",
                          n=len(matrix), note=f"coverage ≥ {FULL_COVERAGE:.0%} {where}: fewer than 2 checkpoints", **scope)
    p = matrix.columns.to_numpy(dtype=float)
    start, end = int(p[0]), int(p[-1])
    y = matrix.to_numpy()
    slopes = ((p - p.mean()) * (y - y.mean(axis=1, keepdims=True))).sum(axis=1) / ((p - p.mean()) ** 2).sum()
    effect = effects.ratio_of_means(slopes * (p[-1] - p[0]), y[:, 0], bound, "greater")
    rule = (f"growth {start}–{end} % (per-image OLS slope × span, every run's coverage ≥ {FULL_COVERAGE:.0%}) / "
            f"distance at {start} %, Fieller 95 %: holds when above {bound:g} and Holm p < {rules.alpha} (Holm over "
            "the open questions' rows)")
    means = matrix.mean()
    return effect_row("Q2", CLAIMS["Q2"], context, effect, statistic=f"growth / distance at {start} %", side="greater",
                      bound=bound, rule=rule, checkpoints=f"{start}–{end} %",
                      note=f"mean {means.iloc[0]:.4g} at {start} % -> {means.iloc[-1]:.4g} at {end} %", **scope)


def coverage_figure(frame: pd.DataFrame, metric: str | None = None) -> Figure:
    """Coverage versus percent, measured (mean ± SD over image runs) and expected (closed form, per
    mask order); then, a panel per mask, the distance versus coverage of every run at every
    checkpoint, coloured by depth, a marker per mask order."""
    data = coverage_frame(frame)
    if data.empty:
        raise ValueError("no coverage values: runs recorded before coverage was logged")
    metric = metric or default_metric(data)
    data = data[data["metric"] == metric]
    if data.empty:
        raise ValueError(f"metric {metric!r} has no distance form in this frame")
    if "mask_order" not in data:
        data = data.assign(mask_order="random")
    masks = sorted(data["mask"].unique())
    orders = sorted(data["mask_order"].unique())
    palette = colours(masks)
    norm = Normalize(0, max(float(data["depth"].max()), 1.0))
    cmap = colormaps["viridis"]
    with styled():
        figure = Figure(figsize=(0.9 + 3.0 * (len(masks) + 1), 3.3), layout="constrained")
        axes = figure.subplots(1, len(masks) + 1, squeeze=False)[0]
        ax = axes[0]
        top = float(data["percent"].max())
        for mask in masks:
            size = int(data.loc[data["mask"] == mask, "size"].iloc[0]) if "size" in data else 512
            cells = (size // int(mask)) ** 2
            for order in orders:
                here = data[(data["mask"] == mask) & (data["mask_order"] == order)]
                if here.empty:
                    continue
                p = np.linspace(0, top, 401)
                ax.plot(p, expected_coverage(order, cells, p * cells / 100), color=palette[mask], linewidth=0.9,
                        linestyle="-" if order == "random" else "--")
                measured = here.drop_duplicates(["run_id", "percent"]).groupby("percent")["coverage"].agg(["mean", "std"])
                ax.errorbar(measured.index, measured["mean"], yerr=measured["std"].fillna(0), fmt=MARKERS.get(order, "o"),
                            color=palette[mask], markersize=3, linewidth=0.8, capsize=1.5,
                            label=f"{mask_label(mask)}, {order}")
        ax.set_xlabel(X_LABEL)
        ax.set_ylabel("coverage")
        ax.set_title("coverage versus percent")
        ax.legend(title="mask, order", loc="lower right")
        for ax, mask in zip(axes[1:], masks):
            here = data[data["mask"] == mask]
            for _, run in here.sort_values("percent").groupby("run_id"):
                ax.plot(run["coverage"], run["distance"], color="0.75", linewidth=0.5, zorder=1)
            for order in orders:
                points = here[here["mask_order"] == order]
                ax.scatter(points["coverage"], points["distance"], c=points["depth"], cmap=cmap, norm=norm, s=12,
                           marker=MARKERS.get(order, "o"), linewidths=0.2, edgecolors="0.3", zorder=2)
            ax.set_title(f"mask {mask_label(mask)}")
            ax.set_xlabel("coverage")
            ax.set_ylabel(metric_label(here["distance_name"].iloc[0]))
        figure.colorbar(ScalarMappable(norm, cmap), ax=axes[1:], label="depth (inpaintings per covered pixel)")
        if len(orders) > 1:
            handles = [Line2D([], [], linestyle="", marker=MARKERS.get(o, "o"), color="0.4", label=o) for o in orders]
            axes[-1].legend(handles=handles, title="mask order", loc="upper left")
        title(figure, "Distance versus coverage", frame,
              "left: coverage (share inpainted at least once), mean ± SD, and its expectation (lines); "
              "right: each image run's checkpoints")
    return figure
