"""The final distance broken down by an image label (style, genre, artist, any dataset label)."""

import pandas as pd
from scipy import stats

from analysis.frames import condition_keys, default_metric, distances, label_columns

SUMMARY = ["n", "n_runs", "mean", "std", "median", "min", "max"]


def label_breakdown(frame: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """Per condition, mask, label (a `label_*` column with 2+ groups) and group: the images' final
    distances at the last checkpoint every run reached, each image the mean over its runs.

    Columns: conditions, mask, label, group, metric, distance (e.g. 1-ssim for ssim), percent,
    n (images), n_runs, mean, std (ddof=1), median, min, max of the distance. Images without a value for a label are left out of its rows.
    Empty when no label has two groups.
    """
    labels = label_columns(frame, min_groups=2)
    d = distances(frame)
    if not labels or d.empty:
        return pd.DataFrame(columns=["mask", "label", "group", "metric", "distance", "percent", *SUMMARY])
    metric = metric if metric in set(d["metric"]) else default_metric(d)
    d = d[d["metric"] == metric]
    keys = condition_keys(frame) + ["mask"]
    rows = []
    for values, group in d.groupby(keys, sort=True, dropna=False):
        values = values if isinstance(values, tuple) else (values,)
        last = int(group.groupby("run_id")["percent"].max().min())
        at = group[group["percent"] == last]
        for label in labels:
            images = at[at[label].astype(str) != ""].groupby([label, "image_id"]).agg(
                final=("distance", "mean"), runs=("run_id", "nunique")).reset_index()
            for name, members in images.groupby(label, sort=True):
                final = members["final"]
                rows.append({**dict(zip(keys, values)), "label": label, "group": name, "metric": metric,
                             "distance": group["distance_name"].iloc[0], "percent": last,
                             "n": len(members), "n_runs": int(members["runs"].sum()), "mean": final.mean(),
                             "std": final.std(ddof=1), "median": final.median(), "min": final.min(), "max": final.max()})
    return pd.DataFrame(rows)


def label_tests(breakdown: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """Kruskal–Wallis test of equal final distances across the groups of each label, per
    condition and mask (groups of one image count; a label needs two groups)."""
    if breakdown.empty:
        return pd.DataFrame(columns=["mask", "label", "metric", "groups", "n", "kruskal_h", "p_value"])
    d = distances(frame)
    keys = [c for c in breakdown.columns if c not in {"label", "group", "metric", "distance", "percent", *SUMMARY}]
    rows = []
    for values, table in breakdown.groupby([*keys, "label"], sort=True, dropna=False):
        *context, label = values
        metric, percent = table["metric"].iloc[0], table["percent"].iloc[0]
        here = d[(d["metric"] == metric) & (d["percent"] == percent) & (d[label].astype(str) != "")]
        for key, value in zip(keys, context):
            here = here[here[key] == value]
        finals = here.groupby([label, "image_id"])["distance"].mean()
        samples = [finals.xs(name, level=label).to_numpy() for name in table["group"]]
        h, p = (stats.kruskal(*samples) if len(samples) > 1 and finals.nunique() > 1 else (float("nan"),) * 2)
        rows.append({**dict(zip(keys, context)), "label": label, "metric": metric, "groups": len(samples),
                     "n": int(sum(map(len, samples))), "kruskal_h": float(h), "p_value": float(p)})
    return pd.DataFrame(rows)
