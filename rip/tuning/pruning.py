"""Pruners for curves that get worse as the percent inpainted grows."""

import statistics

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from rip.config import RunConfig


class MedianAtStep(optuna.pruners.BasePruner):
    """Prune a trial whose latest value is worse than the median of the completed trials' values at that step.

    Optuna's MedianPruner compares a trial's best value so far instead: recursive inpainting only
    degrades with the percent, so that best is the first checkpoint and no later one could prune.
    """

    def __init__(self, n_startup_trials: int = 5):
        self.n_startup_trials = n_startup_trials

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if step is None or len(completed) < max(self.n_startup_trials, 1):
            return False
        others = [other.intermediate_values[step] for other in completed if step in other.intermediate_values]
        if not others:
            return False
        value, median = trial.intermediate_values[step], statistics.median(others)
        return value < median if study.direction == StudyDirection.MAXIMIZE else value > median


def make_pruner(name: str, startup_trials: int, base: RunConfig) -> optuna.pruners.BasePruner:
    """median (MedianAtStep), hyperband (checkpoints as resource) or none."""
    if name == "median":
        return MedianAtStep(startup_trials)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=base.step, max_resource=base.percent)
    return optuna.pruners.NopPruner()
