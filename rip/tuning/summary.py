"""The end of a search as files: best conditions, parameter importances, trials and Optuna's plots."""

import dataclasses
import functools
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import TrialState

from rip.config import RunConfig
from rip.tracking.tags import BEST_PARAM_TAG, BEST_RUN_TAG, BEST_TRIAL_TAG
from rip.tuning.objective import RUN_ATTR


@dataclass(frozen=True)
class Summary:
    """What the files say, for the study run's metrics and tags."""

    metrics: dict[str, float]
    tags: dict[str, str]
    best: dict | None  # trial, value, params, config (the whole RunConfig), run_id


def write_summary(study: optuna.Study, base: RunConfig, folder: Path) -> Summary:
    """Write best.json, importances.json, trials.csv and plots/*.png (see `_plots`) into `folder`."""
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
        tags = {BEST_TRIAL_TAG: str(trial.number), BEST_RUN_TAG: str(best["run_id"])}
        tags.update({f"{BEST_PARAM_TAG}.{name}": str(value) for name, value in trial.params.items()})
    if _importances_defined(complete):
        importances = optuna.importance.get_param_importances(study)
    (folder / "best.json").write_text(json.dumps(best, indent=2) + "\n")
    (folder / "importances.json").write_text(json.dumps(importances, indent=2) + "\n")
    if complete:
        _plots(study, folder / "plots")
    return Summary(metrics, tags, best)


def _plots(study: optuna.Study, folder: Path) -> None:
    """Optimisation history, importances, slices and (over a numeric parameter) contours as PNG files.

    Every plot names the objective and its direction. Importances need two different values,
    slices a parameter that took two values; the contour plot is left out when the searched
    parameters are fewer than two or all categorical (it would only colour a grid of labels).
    """
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    folder.mkdir(exist_ok=True)
    for stale in ("contour", "importances", "slice"):  # from an earlier summary of this study
        (folder / f"{stale}.png").unlink(missing_ok=True)
    objective = objective_label(study)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    varied = sorted({name for trial in complete for name in trial.params
                     if len({repr(other.params.get(name)) for other in complete}) > 1})
    drawers = {"history": plots.plot_optimization_history}
    if _importances_defined(complete):
        drawers["importances"] = plots.plot_param_importances
    if varied:  # a parameter with one value so far has no slice to show
        drawers["slice"] = functools.partial(plots.plot_slice, params=varied)
    if _contour_informative(study):
        drawers["contour"] = plots.plot_contour
    for name, draw in drawers.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            axes = draw(study)
        axes = np.ravel(axes)
        figure = axes[0].figure
        for ax in figure.axes:  # Optuna's generic "Objective Value" axes and colour bars
            if ax.get_ylabel() == "Objective Value":
                ax.set_ylabel(objective)
        figure.suptitle(f"{study.study_name}: {objective}", fontsize="medium")
        figure.savefig(folder / f"{name}.png", dpi=110, bbox_inches="tight")
        plt.close(figure)


def objective_label(study: optuna.Study) -> str:
    """What the study optimises and which way, e.g. 'mean lpips-vgg at the last percent (minimised)'."""
    definition = study.user_attrs.get("rip.definition", {})
    metric = definition.get("objective_metric", "objective")
    what = {"final": f"mean {metric} at the last percent",
            "auc": f"mean {metric} averaged over the percent range (AUC)"}.get(definition.get("objective"), metric)
    return f"{what} ({study.direction.name.lower().replace('ize', 'ised')})"


def _importances_defined(complete: list) -> bool:
    """Whether Optuna's PED-ANOVA can tell the best trials from the rest: two values at least."""
    return len({trial.value for trial in complete}) >= 2


def _contour_informative(study: optuna.Study) -> bool:
    """Whether the completed trials searched two or more parameters, one of them numeric."""
    distributions = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        distributions.update(trial.distributions)
    numeric = [d for d in distributions.values() if not isinstance(d, optuna.distributions.CategoricalDistribution)]
    return len(distributions) >= 2 and bool(numeric)
