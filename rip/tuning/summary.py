"""The end of a search as files: best conditions, parameter importances, trials and Optuna's plots."""

import dataclasses
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import TrialState

from rip.config import RunConfig
from rip.tuning.objective import RUN_ATTR


@dataclass(frozen=True)
class Summary:
    """What the files say, for the study run's metrics and tags."""

    metrics: dict[str, float]
    tags: dict[str, str]
    best: dict | None  # trial, value, params, config (the whole RunConfig), run_id


def write_summary(study: optuna.Study, base: RunConfig, folder: Path) -> Summary:
    """Write best.json, importances.json, trials.csv and plots/*.png into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    study.trials_dataframe().to_csv(folder / "trials.csv", index=False)
    trials = study.get_trials(deepcopy=False)
    metrics = {f"n_{state.name.lower()}": float(sum(t.state == state for t in trials)) for state in TrialState}
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    best, tags, importances = None, {}, {}
    if complete:
        trial = study.best_trial
        config = dataclasses.replace(base, **trial.params)
        best = dict(trial=trial.number, value=trial.value, params=trial.params,
                    config=json.loads(config.to_json()), run_id=trial.user_attrs.get(RUN_ATTR))
        metrics["best_value"] = trial.value
        tags = {"rip.best_trial": str(trial.number), "rip.best_run": str(best["run_id"])}
        tags.update({f"rip.best.{name}": str(value) for name, value in trial.params.items()})
    if len(complete) >= 2:
        importances = optuna.importance.get_param_importances(study)
    (folder / "best.json").write_text(json.dumps(best, indent=2) + "\n")
    (folder / "importances.json").write_text(json.dumps(importances, indent=2) + "\n")
    if complete:
        _plots(study, folder / "plots")
    return Summary(metrics, tags, best)


def _plots(study: optuna.Study, folder: Path) -> None:
    """Optimisation history, importances, slices and contours as PNG files (matplotlib)."""
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    folder.mkdir(exist_ok=True)
    drawers = {
        "history": plots.plot_optimization_history,
        "importances": plots.plot_param_importances,
        "slice": plots.plot_slice,
        "contour": plots.plot_contour,
    }
    for name, draw in drawers.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            axes = draw(study)
        figure = np.ravel(axes)[0].figure
        figure.savefig(folder / f"{name}.png", dpi=110, bbox_inches="tight")
        plt.close(figure)
