"""How often the collection verdicts (analysis.collapse) say "holds" where their claim is false, and
where it is true, on collections simulated as features and distances directly (no images).

- C1: IMAGES Gaussian feature vectors, the Euclidean distance as the metric; each generation is
  `scale · (x + noise)` with its own noise per checkpoint, `scale` set so that the true diversity
  ratio is `ratio` (1 − min_effect = 0.95: the claim's boundary, its hardest null; 0.8: a collapse).
- C2a: 10 images, cross-run distances log-normal, late = early × a log-normal factor around `ratio` (SD 0.3).
- C2b: the study's variability design, 10 images × `runs` runs (10) and 8 checkpoints from 50 %; an
  image's SD over runs of the distance to the original, the sample SD averaged over the 4 checkpoints
  of each half; the true SD log-normal over images (SD 0.3) and `ratio` times smaller over the second
  half; a run's deviations correlated RUN_CORRELATION between consecutive checkpoints (a run far from
  the others stays far), so the checkpoints add little beyond one.
- C3a: generations = originals shifted by `shifts[0]` at 50 % and `shifts[1]` at the last
  checkpoint, plus their own noise: equal shifts, KID does not grow (the null); unequal, it grows.
- C3b: generations = `spreads` times (originals plus their own noise, rescaled to unit SD), shifted
  by `shifts`, at 50 % and at the last checkpoint: spread 1 and a growing shift move the set away
  as it is, so precision and recall fall together (the claim false); spread 2 and 2.5 scatter the
  generations beyond the originals while they still cover them: precision falls, recall stays.
Each simulated row is decided alone (Holm over one row: its own p), as the worst case of a table.
"""

import numpy as np
import pandas as pd

from analysis.collapse import distribution_rows, diversity_rows
from analysis.collection import Vectors
from analysis.effects import ratio_of_means
from analysis.findings import decide, effect_row
from analysis.rules import Rules
from analysis.verdicts import HOLDS

DIM = 32
IMAGES = 100
PERCENTS = [0, 50, 100, 150, 200]
NOISE = 0.5  # SD of a generation's own noise, per feature, relative to the originals' unit SD
RUN_CORRELATION = 0.9  # of a run's deviations from the image's mean distance, at consecutive checkpoints
SCENARIOS = (  # finding, truth, what is simulated
    ("C1", "false", dict(ratio=0.95)), ("C1", "true", dict(ratio=0.8)),
    ("C2a", "false", dict(ratio=0.95)), ("C2a", "true", dict(ratio=0.6)),
    ("C2b", "false", dict(ratio=0.95)), ("C2b", "true", dict(ratio=0.6)),
    ("C2b", "false", dict(ratio=0.95, runs=3)), ("C2b", "true", dict(ratio=0.6, runs=3)),
    ("C3a", "false", dict(shifts=(0.3, 0.3))), ("C3a", "true", dict(shifts=(0.3, 0.6))),
    ("C3b", "false", dict(shifts=(0.9, 1.0), spreads=(1.0, 1.0))),
    ("C3b", "true", dict(shifts=(0.0, 0.0), spreads=(2.0, 2.5))),
)
INFO = {"context": "", "mask": 64, "compared": ""}


def diversity_collection(rng: np.random.Generator, ratio: float) -> pd.DataFrame:
    """Pairs (PAIR_COLUMNS and metric) of a simulated collection whose diversity ratio is `ratio`."""
    x = rng.normal(size=(IMAGES, DIM))
    scale = ratio / np.sqrt(1 + NOISE**2)  # E|g_i − g_j| ≈ scale · sqrt(1 + NOISE²) · E|x_i − x_j| in high dimension
    i, j = np.triu_indices(IMAGES, 1)
    parts = []
    for percent in PERCENTS:
        g = x if percent == 0 else scale * (x + NOISE * rng.normal(size=x.shape))
        parts.append(pd.DataFrame({"image_a": i.astype(str), "image_b": j.astype(str), "percent": percent,
                                   "distance": np.linalg.norm(g[i] - g[j], axis=1), "metric": "euclidean"}))
    return pd.concat(parts, ignore_index=True)


def drifting_vectors(rng: np.random.Generator, shifts: tuple[float, float]) -> Vectors:
    """Originals and generations at 50 % and at the last checkpoint, shifted by `shifts`."""
    x = rng.normal(size=(IMAGES, DIM))
    generations = np.stack([x, *(x + shift + NOISE * rng.normal(size=x.shape) for shift in shifts)], axis=1)
    return Vectors([str(k) for k in range(IMAGES)], [0, 50, 400], x.astype(np.float32), generations.astype(np.float32))


def spread_vectors(rng: np.random.Generator, shifts: tuple[float, float], spreads: tuple[float, float]) -> Vectors:
    """Originals and generations at 50 % and at the last checkpoint, scaled by `spreads`, shifted by `shifts`."""
    x = rng.normal(size=(IMAGES, DIM))
    own = [(x + NOISE * rng.normal(size=x.shape)) / np.sqrt(1 + NOISE**2) for _ in shifts]
    generations = np.stack([x, *(spread * g + shift for g, shift, spread in zip(own, shifts, spreads))], axis=1)
    return Vectors([str(k) for k in range(IMAGES)], [0, 50, 400], x.astype(np.float32), generations.astype(np.float32))


def run_spreads(rng: np.random.Generator, ratio: float, runs: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Per image (10), the SD over `runs` runs of the distance to the original, averaged over the 4
    checkpoints of the second and of the first half, the true SD `ratio` times smaller over the second."""
    per_half = 4
    true = np.exp(rng.normal(np.log(0.03), 0.3, size=10))
    deviation = np.empty((10, runs, 2 * per_half))
    deviation[..., 0] = rng.normal(size=(10, runs))
    for c in range(1, 2 * per_half):  # AR(1) over checkpoints: unit variance, RUN_CORRELATION between neighbours
        deviation[..., c] = (RUN_CORRELATION * deviation[..., c - 1]
                             + np.sqrt(1 - RUN_CORRELATION**2) * rng.normal(size=(10, runs)))
    scale = np.repeat([1.0, ratio], per_half)
    spread = (true[:, None, None] * scale * deviation).std(axis=1, ddof=1)  # images × checkpoints
    return spread[:, per_half:].mean(axis=1), spread[:, :per_half].mean(axis=1)


def simulated_row(finding: str, rng: np.random.Generator, rules: Rules, ratio: float = 1.0,
                  shifts: tuple[float, float] = (0.0, 0.0), spreads: tuple[float, float] = (1.0, 1.0),
                  runs: int = 10) -> dict:
    """One simulated verdict row of `finding`."""
    if finding == "C1":
        return diversity_rows(diversity_collection(rng, ratio), INFO, rules)[0]
    if finding == "C3a":
        return distribution_rows(drifting_vectors(rng, shifts), INFO, rules)[0]
    if finding == "C3b":
        return distribution_rows(spread_vectors(rng, shifts, spreads), INFO, rules)[1]
    if finding == "C2b":
        late, early = run_spreads(rng, ratio, runs)
    else:
        early = np.exp(rng.normal(np.log(0.3), 0.3, size=10))  # an image's cross-run distance over the first half
        late = early * np.exp(rng.normal(np.log(ratio), 0.3, size=10))
    effect = ratio_of_means(late, early, 1 - rules.min_effect, "less")
    return effect_row(finding, "", "", effect, statistic="", side="less", bound=1 - rules.min_effect, rule="")


def calibrate_collapse(sims: int, seed: int = 0, rules: Rules = Rules(), findings=None) -> pd.DataFrame:
    """Per finding (all, or those in `findings`) and truth: the share of `sims` simulated rows that hold."""
    rng = np.random.default_rng(seed)
    results = []
    for finding, truth, settings in SCENARIOS:
        if findings and finding not in findings:
            continue
        held = [decide([simulated_row(finding, rng, rules, **settings)], rules)["verdict"].iloc[0] == HOLDS
                for _ in range(sims)]
        simulated = ", ".join(f"{k} {v}" for k, v in settings.items())
        results.append({"finding": finding, "truth": truth, "simulated": simulated, "holds": float(np.mean(held)),
                        "sims": sims})
    return pd.DataFrame(results)
