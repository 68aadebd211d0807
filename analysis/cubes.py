"""One condition's distances as an array (images × masks × metrics × runs × checkpoints), and
which images are complete.

An image is complete when every configuration (configuration run: a mask and seed) of its
condition has a FINISHED run of it with a value of every metric at every checkpoint up to the
last one every finished run reached. Incomplete images are failed (a run ended FAILED),
unfinished (RUNNING, KILLED, ...), short (FINISHED but a value missing) or missing (no run in
some configuration). Only checkpoints from FROM_PERCENT on enter the array.
"""

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from analysis.frames import condition_keys, distances

FROM_PERCENT = 50  # the study's first reported checkpoint; at 0 % every distance is 0 by construction
NEEDED = {"experiment", "run_id", "image_id", "mask", "seed", "parent_run_id", "parent_name", "status", "metric",
          "percent", "value"}


@dataclass(frozen=True)
class Cube:
    values: np.ndarray  # (images, masks, metrics, runs, checkpoints); NaN where there is no value
    images: np.ndarray  # image ids
    masks: tuple[int, ...]
    metrics: tuple[str, ...]  # distance names: lpips_vgg, 1-ssim, ...
    percents: np.ndarray  # checkpoints
    complete: np.ndarray  # per image

    def only(self, keep: np.ndarray) -> "Cube":
        """The cube of the images where `keep` is true."""
        return replace(self, values=self.values[keep], images=self.images[keep], complete=self.complete[keep])

    @property
    def curves(self) -> np.ndarray:
        """Each image's distance per mask, metric and checkpoint: the mean over its runs."""
        return nanmean(self.values, axis=3)


def cubes(frame: pd.DataFrame) -> list[tuple[str, Cube]]:
    """(context, cube) per experiment and combination of varying conditions, e.g. ("model=telea", ...)."""
    keys = condition_keys(frame)
    d = distances(frame[[c for c in frame.columns if c in NEEDED or c in keys]])
    if d.empty:
        return []
    out = []
    for values, group in (d.groupby(keys, sort=True, dropna=False) if keys else [((), d)]):
        values = values if isinstance(values, tuple) else (values,)
        out.append((", ".join(f"{k}={v}" for k, v in zip(keys, values)), _cube(group)))
    return out


def completeness(frame: pd.DataFrame) -> pd.DataFrame:
    """Per condition and configuration: images of the condition, and how many of them are complete
    there, failed, unfinished, short or missing; `used`: images complete in every configuration."""
    d = distances(frame)
    keys = condition_keys(frame)
    rows = []
    for values, group in (d.groupby(keys, sort=True, dropna=False) if keys else [((), d)]):
        values = values if isinstance(values, tuple) else (values,)
        runs, end, _ = _runs(group)
        images = runs["image_id"].nunique()
        used = int(_complete_images(runs).sum())
        for parent, here in runs.groupby("parent_run_id", sort=False):
            per_image = here.groupby("image_id").agg(
                full=("full", "any"), failed=("status", lambda s: s.eq("FAILED").any()),
                unfinished=("status", lambda s: (~s.isin(["FINISHED", "FAILED"])).any()))
            incomplete = per_image[~per_image["full"]]
            counts = {
                "complete": int(per_image["full"].sum()),
                "failed": int(incomplete["failed"].sum()),
                "unfinished": int((incomplete["unfinished"] & ~incomplete["failed"]).sum()),
                "short": int((~incomplete["unfinished"] & ~incomplete["failed"]).sum()),
                "missing": images - len(per_image),
            }
            first = here.iloc[0]
            rows.append({"context": ", ".join(f"{k}={v}" for k, v in zip(keys, values)),
                         "configuration": first.get("parent_name") or parent, "mask": int(first["mask"]),
                         "seed": int(first["seed"]), "last_percent": end, "images": images, **counts, "used": used})
    columns = ["context", "configuration", "mask", "seed", "last_percent", "images", "complete", "failed", "unfinished",
               "short", "missing", "used"]
    return pd.DataFrame(rows, columns=columns).sort_values(["context", "mask", "seed"], kind="stable", ignore_index=True)


def _cube(d: pd.DataFrame) -> Cube:
    runs, end, run = _runs(d)
    percent = d["percent"].to_numpy()
    keep = (percent >= FROM_PERCENT) & (percent <= end)
    image, images = pd.factorize(d["image_id"], sort=True)
    mask, masks = pd.factorize(d["mask"], sort=True)
    metric, metrics = pd.factorize(d["distance_name"], sort=True)
    percents = np.unique(percent[keep])
    replicate = runs["replicate"].to_numpy()
    values = np.full((len(images), len(masks), len(metrics), replicate.max() + 1, len(percents)), np.nan)
    values[image[keep], mask[keep], metric[keep], replicate[run[keep]], np.searchsorted(percents, percent[keep])] = (
        d["distance"].to_numpy(dtype=float)[keep])
    complete = _complete_images(runs).reindex(images, fill_value=False).to_numpy(dtype=bool)
    return Cube(values, np.asarray(images, dtype=object), tuple(int(m) for m in masks), tuple(metrics), percents,
                complete)


def _runs(d: pd.DataFrame) -> tuple[pd.DataFrame, int, np.ndarray]:
    """One row per run (image, mask, seed, status, configuration, replicate index within its image
    and mask, `full`: FINISHED with every value up to `end`); `end`: the last checkpoint every
    finished run reached; each row's run (its row in the first)."""
    run, _ = pd.factorize(d["run_id"])
    percent = d["percent"].to_numpy()
    reached = pd.Series(percent).groupby(run).max().to_numpy()
    status = d["status"].to_numpy(dtype=object) if "status" in d else np.full(len(d), "FINISHED", dtype=object)
    first = np.unique(run, return_index=True)[1]
    finished = status[first] == "FINISHED"
    end = int(reached[finished].min() if finished.any() else reached.max())
    kept = (percent >= FROM_PERCENT) & (percent <= end)
    expected = len(np.unique(percent[kept])) * d["distance_name"].nunique()
    counts = np.bincount(run[kept & np.isfinite(d["distance"].to_numpy(dtype=float))], minlength=len(first))
    columns = ["run_id", "image_id", "mask", "seed", "parent_run_id"] + (["parent_name"] if "parent_name" in d else [])
    runs = d.iloc[first][columns].reset_index(drop=True).assign(status=status[first], full=finished & (counts == expected))
    order = runs.sort_values(["image_id", "mask", "seed", "run_id"], kind="stable")
    runs["replicate"] = order.groupby(["image_id", "mask"]).cumcount()
    return runs, end, run


def _complete_images(runs: pd.DataFrame) -> pd.Series:
    """Per image: a full run in every configuration of `runs`."""
    configurations = runs["parent_run_id"].nunique()
    good = runs[runs["full"]].groupby("image_id")["parent_run_id"].nunique()
    return (good.reindex(runs["image_id"].unique(), fill_value=0) == configurations)


def nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean over `axis` ignoring NaN; NaN where there is nothing (without numpy's warning)."""
    count = np.sum(np.isfinite(values), axis=axis)
    total = np.nansum(values, axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)
