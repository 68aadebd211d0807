"""A collection's diversity: the mean pairwise distance among the generations of its different
images at one checkpoint, under one of the distances the runs logged (LPIPS, ST-LPIPS).

All pairs up to ALL_PAIRS_UP_TO images; above, SAMPLED_PAIRS pairs drawn without replacement from
the seed and the image ids. The same pairs serve every checkpoint, so the ratio to 0 % (the
originals' diversity: the collapse curve) compares like with like. A sampled mean has a standard
error: a simple random sample of the finite population of pairs, SD / sqrt(m) · sqrt(1 − m / M).
"""

import itertools
import math
import zlib

import numpy as np
import pandas as pd

from rip.metrics import METRIC_NAMES

ALL_PAIRS_UP_TO = 30  # images; 435 pairs
SAMPLED_PAIRS = 500
PAIR_BATCH = 16  # image pairs per network call
PAIR_COLUMNS = ["image_a", "image_b", "percent", "distance"]


def diversity_metrics(metric_keys) -> list[str]:
    """The logged metrics (keys like lpips_vgg) a diversity is computed with: the perceptual distances."""
    names = {key.replace("_", "-") for key in metric_keys}
    return [name for name in METRIC_NAMES if name in names and name.split("-")[0] in ("lpips", "stlpips")]


def choose_pairs(image_ids, seed: int) -> tuple[list[tuple[str, str]], bool]:
    """The image pairs measured, and whether they are a sample of all pairs."""
    ids = sorted(image_ids)
    pairs = list(itertools.combinations(ids, 2))
    if len(ids) <= ALL_PAIRS_UP_TO or len(pairs) <= SAMPLED_PAIRS:
        return pairs, False
    rng = np.random.default_rng([seed, zlib.crc32("\n".join(ids).encode())])
    picked = np.sort(rng.choice(len(pairs), SAMPLED_PAIRS, replace=False))
    return [pairs[i] for i in picked], True


def pair_distances(metric, images: dict[str, np.ndarray], pairs) -> np.ndarray:
    """`metric` (a rip.metrics Metric) between the images of each pair, PAIR_BATCH pairs per call."""
    import torch

    out = np.zeros(len(pairs))
    for start in range(0, len(pairs), PAIR_BATCH):
        chunk = pairs[start:start + PAIR_BATCH]
        a, b = (torch.from_numpy(np.stack([images[pair[k]] for pair in chunk])).permute(0, 3, 1, 2).float() / 255
                for k in (0, 1))
        out[start:start + len(chunk)] = metric(a, b)
    return out


def diversity_series(pairs: pd.DataFrame, images: int) -> pd.DataFrame:
    """Per percent: the mean pairwise distance, its standard error (0 with every pair) and the pairs
    used, from the rows of `pairs` (PAIR_COLUMNS) of a collection of `images` images."""
    total = images * (images - 1) // 2
    rows = []
    for percent, here in pairs.groupby("percent", sort=True):
        m = len(here)
        sd = here["distance"].std(ddof=1) if m > 1 else 0.0
        se = sd / math.sqrt(m) * math.sqrt(max(1 - m / total, 0.0)) if m < total else 0.0
        rows.append({"percent": int(percent), "diversity": here["distance"].mean(), "se": se, "pairs": m})
    return pd.DataFrame(rows, columns=["percent", "diversity", "se", "pairs"])
