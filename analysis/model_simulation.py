"""Simulated comparisons of models whose stability is equal, or not, by construction: how often
finding M1 (`analysis.models`) says "holds" when the models are alike, and how often it holds,
with the right ranking, when one of them drifts more.

A comparison is one simulated study (`analysis.simulation`) with one run per model: the images'
own levels are shared by every model (the pairing), each model adds its own run noise (a
persistent part per image and mask, and a part per checkpoint), and a model's `drift` multiplies
its distances. With every drift 1 the models are identical but for their noise.
"""

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from analysis.models import FINDING, model_ranking, model_verdicts
from analysis.simulation import Study, simulate
from analysis.verdicts import HOLDS, POOLED

COMPARISON = Study(experiment="sim-models", images=30, masks=(64, 128, 256))


@dataclass(frozen=True)
class Models:
    """A comparison scenario: the models' names and the factor each multiplies its distances by."""

    name: str
    drift: tuple[float, ...] = (1.0, 1.0, 1.0)
    study: Study = COMPARISON

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(f"model-{i}" for i in range(len(self.drift)))


SCENARIOS = (
    Models("three identical models"),
    Models("two identical models", drift=(1.0, 1.0)),
    Models("one model drifts 5 % more (the threshold: M1's claim is false)", drift=(1.0, 1.0, 1.05)),
    Models("one model drifts 10 % more", drift=(1.0, 1.0, 1.1)),
    Models("one model drifts 25 % more", drift=(1.0, 1.0, 1.25)),
    Models("one model drifts 25 % more, 10 images", drift=(1.0, 1.0, 1.25), study=replace(COMPARISON, images=10)),
)


def simulate_models(scenario: Models, rng: np.random.Generator) -> pd.DataFrame:
    """The tidy frame of one simulated comparison (see the module docstring)."""
    frame = simulate(replace(scenario.study, runs=len(scenario.drift)), rng)
    run = frame["seed"].to_numpy()
    models = np.asarray(scenario.models, dtype=object)
    frame["value"] = frame["value"] * np.asarray(scenario.drift)[run]
    frame["model"] = models[run]
    frame["seed"] = 0
    frame["parent_run_id"] = frame["experiment"] + "-" + frame["model"] + "-mask" + frame["mask"].astype(str)
    frame["run_id"] = frame["parent_run_id"] + "-" + frame["image_id"]
    frame["images"] = f"wikiart:{scenario.study.images}@0"
    return frame


def calibrate_models(sims: int, seed: int = 0, scenarios=SCENARIOS) -> pd.DataFrame:
    """Per scenario: the share of simulated comparisons in which any M1 row holds, the share of
    rows that hold per scope and pooled, and (where one model drifts most) the share in which the
    pooled row holds and ranks that model last."""
    rng = np.random.default_rng(seed)
    results = []
    for scenario in scenarios:
        any_row, per_scope, pooled, right = [], [], [], []
        worst = scenario.models[int(np.argmax(scenario.drift))] if len(set(scenario.drift)) > 1 else None
        for _ in range(sims):
            frame = simulate_models(scenario, rng)
            table = model_verdicts(frame)
            holds = (table["finding"] == FINDING) & (table["verdict"] == HOLDS)
            is_pooled = table["mask"] == POOLED
            any_row.append(bool(holds.any()))
            per_scope.append(float(holds[~is_pooled].mean()))
            pooled.append(bool(holds[is_pooled].any()))
            if worst is not None:
                ranking = model_ranking(frame)
                last = ranking[ranking["mask"] == POOLED].sort_values("place")["model"].iloc[-1]
                right.append(bool(holds[is_pooled].any()) and last == worst)
        results.append({"scenario": scenario.name, "models": len(scenario.drift), "images": scenario.study.images,
                        "any row holds": float(np.mean(any_row)), "rows holding per scope": float(np.mean(per_scope)),
                        "pooled holds": float(np.mean(pooled)),
                        "pooled holds, worst ranked last": float(np.mean(right)) if right else np.nan, "sims": sims})
    return pd.DataFrame(results)
