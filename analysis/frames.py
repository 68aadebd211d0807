"""Small helpers over the tidy frame: metric names and kinds, distances, conditions, groups, labels."""

import re

import pandas as pd

from rip.metrics.complexity import COMPLEXITY_KEYS
from rip.metrics.pixel_metrics import Psnr, Ssim

SIMILARITIES = {cls.name.replace("-", "_") for cls in (Ssim, Psnr)}  # higher = more similar
BOUNDED_SIMILARITIES = {Ssim.name: "1-ssim"}  # similarity in [.., 1] -> distance 1 - s
# Parameters that tell configurations apart, besides mask and seed (the study's two axes)
CONDITIONS = ("model", "model_revision", "paste_back", "steps", "guidance", "strength", "scheduler", "mask_order",
              "prompt", "size", "images", "random_numbers", "pad_color", "resample", "dtype", "skip_guidance",
              "safety_checker")
# what each generation is, not how far it is from its original: measured per checkpoint beside the metrics
GENERATION_MEASURES = ("coverage", "depth", *COMPLEXITY_KEYS)
PREFERRED_METRIC = "lpips_vgg"  # the study reports VGG from its third figure on
LABEL_PREFIX = "label_"  # columns holding an image's labels (from tags rip.label.<name>)


def metric_key(name: str) -> str:
    """A metric's key in the tidy frame (MLflow's): 'lpips-vgg' and 'lpips_vgg' -> 'lpips_vgg'."""
    return name.strip().replace("-", "_")


def is_similarity(metric: str) -> bool:
    return metric in SIMILARITIES


def is_generation_measure(metric: str) -> bool:
    """True for the coverage, depth and complexity of a generation (GENERATION_MEASURES)."""
    return metric in GENERATION_MEASURES


def comparisons(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of metrics that compare a generation with its original (no GENERATION_MEASURES)."""
    return frame[~frame["metric"].isin(GENERATION_MEASURES)]


def distances(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of metrics that are, or convert to, a distance from the original (0 = identical).

    Adds column `distance`: the value for LPIPS-style metrics, 1 - value for SSIM; PSNR (not
    bounded) and the GENERATION_MEASURES are left out. `distance_name` says which (e.g. "1-ssim").
    """
    frame = comparisons(frame)
    keep = frame[~frame["metric"].isin(SIMILARITIES - set(BOUNDED_SIMILARITIES))].copy()
    similarity = keep["metric"].isin(set(BOUNDED_SIMILARITIES))
    keep["distance"] = keep["value"].where(~similarity, 1 - keep["value"])
    keep["distance_name"] = keep["metric"].map({m: BOUNDED_SIMILARITIES.get(m, m) for m in keep["metric"].unique()})
    return keep


def default_metric(frame: pd.DataFrame) -> str:
    """lpips_vgg when present, else the first distance, else SSIM, else the first metric (a
    GENERATION_MEASURES key only when nothing else was measured)."""
    metrics = sorted(frame["metric"].unique())
    ranked = sorted(metrics, key=lambda m: (is_generation_measure(m), m != PREFERRED_METRIC, is_similarity(m),
                                            m not in BOUNDED_SIMILARITIES))
    return ranked[0]


def varying(frame: pd.DataFrame, columns=CONDITIONS) -> list[str]:
    """The columns among `columns` holding more than one value in `frame`."""
    return [c for c in columns if c in frame and frame[c].astype(str).nunique() > 1]


def condition_keys(frame: pd.DataFrame) -> list[str]:
    """Columns that split `frame` into conditions never pooled: experiment (when several) and `varying`."""
    return (["experiment"] if frame["experiment"].nunique() > 1 else []) + varying(frame)


def groups(frame: pd.DataFrame, together: tuple[str, ...] = ()) -> list[tuple[str, pd.DataFrame]]:
    """(label, rows) per experiment and per combination of the conditions that vary, but those of
    `together`, whose values share a group.

    The label is "" when everything belongs to one group, else e.g. "rip-demo_model-telea".
    """
    keys = [key for key in condition_keys(frame) if key not in together]
    if not keys:
        return [("", frame)]
    out = []
    for values, rows in frame.groupby(keys, sort=True, dropna=False):
        values = values if isinstance(values, tuple) else (values,)
        label = "_".join(str(v) if k == "experiment" else f"{k}-{v}" for k, v in zip(keys, values))
        out.append((slug(label), rows))
    return out


def label_columns(frame: pd.DataFrame, min_groups: int = 1) -> list[str]:
    """The `label_<name>` columns with at least `min_groups` non-empty values, sorted."""
    columns = sorted(c for c in frame.columns if c.startswith(LABEL_PREFIX))
    return [c for c in columns if frame[c].fillna("").astype(str).replace("", pd.NA).nunique() >= min_groups]


def per_image(d: pd.DataFrame, percent: int) -> pd.Series:
    """Each image's distance at `percent`, the mean over its runs (e.g. seeds), indexed by image id.

    `d` holds one metric and one condition (see `distances`).
    """
    return d[d["percent"] == percent].groupby("image_id")["distance"].mean()


def last_common_percent(d: pd.DataFrame) -> int:
    """The last checkpoint every run in `d` reached."""
    return int(d.groupby("run_id")["percent"].max().min())


def slug(text: str) -> str:
    """A file-name-safe form of `text`."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:120]
