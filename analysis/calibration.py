"""How often each verdict says "holds" on simulated studies: where its observation is false by
construction (the false-"holds" rate) and where it is true (its power).

Each simulated study is the study's two experiments analysed together, as `rip analyze
--experiment X-replication --experiment X-variability` does (one table, adjusted over all its rows: `analysis.hierarchy`).
A verdict is measured on the experiment of the study's size for it: the replication (100 images,
one run each) for 1–5, 7a, 8a, 8b; the variability study (10 images × 10 runs) for 6a–6c, 7b.
"""

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from analysis.simulation import Study, simulate
from analysis.verdicts import CLAIMS, HOLDS, POOLED, verdicts

REPLICATION = Study(experiment="sim-replication")
VARIABILITY = Study(experiment="sim-variability", images=10, runs=10)
ON_VARIABILITY = ("6a", "6b", "6c", "7b")


@dataclass(frozen=True)
class Scenario:
    name: str
    changes: dict = field(default_factory=dict)  # Study fields changed from the study-like defaults
    false: tuple[str, ...] = ()  # findings false by construction
    true: tuple[str, ...] = ()  # findings true by construction, whose power this scenario measures
    compared: str = ""  # only rows comparing this network are false


ALL = ("1", "2a", "2b", "3", "4a", "4b", "5", "6a", "6b", "6c", "7b", "8a", "8b")
SCENARIOS = (
    Scenario("study-like (every observation true)", true=ALL),
    Scenario("heavy-tailed responses of the other networks",
             dict(noise_decay=0.0, other_noise_sd=0.25), true=("7a",)),
    Scenario("a jump at 50 %, then flat", dict(curve="flat"), false=("1", "2a", "2b", "8a")),
    Scenario("linear growth from 50 %", dict(curve="linear"), false=("2a",)),
    Scenario("a plateau before 200 %", dict(curve="plateau"), false=("2b",)),
    Scenario("masks alike, in distance and in run spread", dict(mask_step=0.0, run_mask_step=0.0),
             false=("3", "6c", "8b")),
    Scenario("networks that rank the images at rho = 0.70",
             dict(network_sd=0.19, other_tails=np.inf, other_noise_sd=0.05), false=("4a",)),
    Scenario("VGG's growth 1.25 × the others'", dict(growth_ratio=1.25), false=("4b",), compared="lpips_vgg"),
    Scenario("a spread across images of CV = 0.2", dict(image_sd=0.167, other_tails=np.inf, other_noise_sd=0.05),
             false=("5",)),
    Scenario("run SD = 2 × image SD", dict(image_sd=0.1, network_sd=0.0, run_sd=0.2, run_persistence=1.0,
                                           run_decay=0.0, run_mask_step=0.0, noise_decay=0.0), false=("6a",)),
    Scenario("run noise constant relative to the distance", dict(run_decay=0.0, noise_decay=0.0), false=("6b",)),
    Scenario("VGG like the other networks", dict(noise_sd=0.15, other_noise_sd=0.15, other_tails=np.inf),
             false=("7a", "7b")),
    Scenario("40 % of images grow, the others stay flat", dict(growing=0.4), false=("8a",)),
    Scenario("40 % of images drift more with the larger mask", dict(mask_share=0.4), false=("8b",)),
)


def calibrate(sims: int, seed: int = 0, replication: Study = REPLICATION, variability: Study = VARIABILITY,
              scenarios=SCENARIOS) -> pd.DataFrame:
    """Per scenario, finding, truth and scope ("per scope" or "pooled"): the share of its rows that
    hold, averaged over `sims` simulated studies ("not enough data" counts as not holding)."""
    rng = np.random.default_rng(seed)
    results = []
    for scenario in scenarios:
        held = {}
        for _ in range(sims):
            frame = pd.concat([simulate(replace(replication, **scenario.changes), rng),
                               simulate(replace(variability, **scenario.changes), rng)], ignore_index=True)
            table = verdicts(frame)
            columns = {c: table[c].to_numpy(dtype=object) for c in ("finding", "context", "mask", "metric", "compared")}
            holds = table["verdict"].to_numpy(dtype=object) == HOLDS
            pooled = (columns["mask"] == POOLED) | (columns["metric"] == POOLED)
            on = {name: np.array([f"experiment={study.experiment}," in c + "," for c in columns["context"]])
                  for name, study in (("replication", replication), ("variability", variability))}
            for truth, findings in (("false", scenario.false), ("true", scenario.true)):
                for finding in findings:
                    rows = (columns["finding"] == finding) & on["variability" if finding in ON_VARIABILITY else "replication"]
                    if truth == "false" and scenario.compared:
                        rows &= np.array([scenario.compared in c for c in columns["compared"]])
                    for scope, part in (("per scope", rows & ~pooled), ("pooled", rows & pooled)):
                        if part.any():
                            held.setdefault((finding, truth, scope), []).append(holds[part].mean())
        results += [{"scenario": scenario.name, "finding": finding, "truth": truth, "scope": scope,
                     "holds": float(np.mean(shares)), "sims": sims} for (finding, truth, scope), shares in held.items()]
    return pd.DataFrame(results)


def summary(results: pd.DataFrame) -> pd.DataFrame:
    """One line per finding and null scenario: its false-"holds" rate and its power, per scope and
    pooled."""
    wide = results.pivot_table(index=["finding", "truth", "scenario"], columns="scope", values="holds").reset_index()
    records = wide.to_dict("records")
    power = {r["finding"]: r for r in records if r["truth"] == "true"}
    lines = [{"finding": r["finding"], "false “holds”": _rates(r), "when": r["scenario"],
              "power": _rates(power[r["finding"]]), "under": power[r["finding"]]["scenario"]}
             for r in records if r["truth"] == "false"]
    order = {finding: i for i, finding in enumerate(CLAIMS)}
    table = pd.DataFrame(lines).sort_values("finding", key=lambda s: s.map(order), kind="stable")
    return table.reset_index(drop=True)


def _rates(row: dict) -> str:
    """"3.0 % (pooled 1.0 %)"."""
    rates = [f"{100 * row[scope]:.1f} %" for scope in ("per scope", "pooled") if pd.notna(row.get(scope))]
    return rates[0] + (f" (pooled {rates[1]})" if len(rates) > 1 else "")
