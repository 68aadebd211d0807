"""One worker of a study: join or create it, run trials until its budget is used, summarise.

Any number of workers, on any number of machines, share a study through its storage. Each
decides to start a trial while holding the study's lock (`rip.sweeps.workqueue`), so the study ends with
exactly `n_trials` trials that did not fail. A worker waits while other workers' trials run:
when one of them dies, its heartbeats stop, its trial is marked FAIL and retried with the same
parameters by a worker that is still alive.
"""

import json
import math
import os
from collections.abc import Callable
from pathlib import Path

import mlflow
import optuna
from mlflow import MlflowClient

from rip.config import RunConfig
from rip.inpainters import resolve_device
from rip.metrics import load_metrics
from rip.sweeps.workqueue import WAIT_POLL, connect, next_step, retry_stale, shown, work
from rip.tracking.recorder import environment_params, resolve_experiment
from rip.tracking.ui import Addresses
from rip.tuning.objective import RUN_ATTR, Backends, Objective, Target, TrialQueue
from rip.tuning.pruning import make_pruner
from rip.tuning.settings import DEFAULT_TRIALS, SearchSettings
from rip.tuning.space import SearchSpace, parse_space
from rip.tuning.summary import Summary, write_summary
from rip.tuning.tracking import SearchTracker

DEFINITION_ATTR = "rip.definition"  # study user attribute: what the study searches (workers must agree)
SUMMARISED_ATTR = "rip.summarised"  # study user attribute: finished trials at the last summary
PER_WORKER_FIELDS = ("device", "batch_size", "system_metrics", "animation")  # may differ between workers without changing results


def run_search(base: RunConfig, settings: SearchSettings, tracking_uri: str | None = None,
               progress: bool = True, echo: Callable[[str], None] | None = None) -> tuple[optuna.Study, Summary | None]:
    """Work on the study `settings` name until it is done; return it and the summary (if this worker wrote it).

    Fields of `base` outside the search space are the fixed conditions of every trial. `echo`
    gets the addresses of the study's run and of each trial's run, once each.
    """
    # 1. Check inputs
    settings.validate()
    space = parse_space(settings.space, base)
    grid = space.grid(base) if settings.sampler == "grid" else None
    n_trials = _budget(settings.n_trials, grid)
    metric = settings.objective_metric or ("lpips-vgg" if "lpips-vgg" in base.metrics else base.metrics[0])
    if metric not in base.metrics:
        raise ValueError(f"objective metric {metric} is not among the measured metrics {','.join(base.metrics)}")
    definition = _definition(space, base, settings, metric)

    # 2. Reach the storage (and check that this worker searches what the study searches)
    tracker = SearchTracker(MlflowClient(tracking_uri or mlflow.get_tracking_uri()))
    tracker.client.search_experiments(max_results=1)  # an unreachable server stops us before the study exists
    storage, lock = connect(settings.storage, settings.study_name, settings.heartbeat_interval,
                            settings.grace_period, retry_stale(settings.max_retries, _on_lost(tracker)))
    try:
        _check_definition(storage, settings.study_name, definition)

        # 3. Load metrics and models, once
        device = resolve_device(base.device)
        metrics = load_metrics(base.metrics, device)
        target = Target(metric, settings.objective, next(m for m in metrics if m.name == metric).higher_is_better)
        backends = Backends(space.values("model", base), base, device)
        backends.check(space, base)

        # 4. Join the study; the first worker creates it and its MLflow run
        with lock:
            pruner = make_pruner("none" if grid else settings.pruner, settings.pruner_startup_trials, base)
            study = optuna.create_study(
                storage=storage, study_name=settings.study_name, direction=target.direction,
                sampler=_sampler(settings, grid), pruner=pruner, load_if_exists=True,
            )
            _check_definition(storage, settings.study_name, definition)
            study.set_user_attr(DEFINITION_ATTR, definition)
            study_run_id = _study_run(study, tracker, space, base, settings, target)
            if next_step(study, n_trials) != "done":
                tracker.reopen(study_run_id)
        queue = TrialQueue(storage, lock, n_trials) if grid else None  # a grid's points do not wait for results
        on_start = None
        if echo is not None:
            addresses, uri = Addresses(), tracker.client.tracking_uri
            study_run = tracker.retrying(tracker.client.get_run, study_run_id)
            echo("\n".join([f"study {settings.study_name}:", *addresses.lines(
                uri, study_run.info.experiment_id, study_run_id, study_run.info.run_name)]))

            def on_start(started) -> None:
                if lines := addresses.lines(uri, started.experiment_id, started.run_id, started.run_name):
                    echo("\n".join(lines))
        objective = Objective(space, base, target, backends, metrics, tracker, study_run_id,
                              settings.study_name, tracker.client.tracking_uri, progress, queue, on_start)

        # 5. Trials until the budget is used and no trial runs anywhere
        work(study, lock, objective, n_trials, min(settings.heartbeat_interval, WAIT_POLL))

        # 6. Summarise, once per state of the study
        with lock:
            finished = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
            if study.user_attrs.get(SUMMARISED_ATTR) == finished:
                return study, None
            folder = Path(settings.output) / settings.study_name
            summary = write_summary(study, base, folder)
            tracker.log_summary(study_run_id, folder, summary.metrics, summary.tags)
            study.set_user_attr(SUMMARISED_ATTR, finished)
            return study, summary
    finally:
        lock.close()


def _budget(n_trials: int | None, grid: dict | None) -> int:
    """The study's total: as given, or the default, or every point of the grid."""
    if grid is None:
        return n_trials or DEFAULT_TRIALS
    size = math.prod(len(values) for values in grid.values())
    if n_trials and n_trials > size:
        raise ValueError(f"the grid has {size} points: --n-trials {n_trials} would repeat some")
    return n_trials or size


def _definition(space: SearchSpace, base: RunConfig, settings: SearchSettings, metric: str) -> dict:
    """What every worker of the study must agree on, JSON-ready."""
    # as recorded: a field added since a study began is left out while it keeps its old behaviour
    recorded = json.loads(base.to_json())
    fixed = {f"config.{key}": value for key, value in recorded.items() if key not in PER_WORKER_FIELDS}
    definition = dict(space=str(space), objective=settings.objective, objective_metric=metric,
                      sampler=settings.sampler, **fixed)
    return json.loads(json.dumps(definition))


def _check_definition(storage, study_name: str, definition: dict) -> None:
    """ValueError when the study exists and searches something else."""
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return
    stored = storage.get_study_user_attrs(study_id).get(DEFINITION_ATTR) or definition
    for key in sorted(set(stored) | set(definition)):
        if stored.get(key) != definition.get(key):
            raise ValueError(
                f"study {study_name!r} has {key} = {stored.get(key)!r}, this worker {definition.get(key)!r}: "
                "give the same settings as the study's other workers, or another --study-name"
            )


def _on_lost(tracker: SearchTracker):
    """For a trial whose worker died: mark its MLflow runs FAILED (the retry runs it again)."""

    def on_lost(trial: optuna.trial.FrozenTrial) -> None:
        if RUN_ATTR in trial.user_attrs:
            tracker.abandon(trial.user_attrs[RUN_ATTR])

    return on_lost


def _sampler(settings: SearchSettings, grid: dict | None) -> optuna.samplers.BaseSampler:
    if settings.sampler == "grid":
        return optuna.samplers.GridSampler(grid, seed=settings.sampler_seed)
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=settings.sampler_seed)
    return optuna.samplers.TPESampler(seed=settings.sampler_seed)


def _study_run(study: optuna.Study, tracker: SearchTracker, space: SearchSpace, base: RunConfig,
               settings: SearchSettings, target: Target) -> str:
    """The study's MLflow run id; created (or adopted from `mlflow run`) by the first worker."""
    project_run = os.environ.get("MLFLOW_RUN_ID") or None
    run_id = study.user_attrs.get(RUN_ATTR)
    if run_id is None:
        fixed = {key: value for key, value in base.as_params().items() if key not in space.names}
        params = {
            **fixed, **environment_params(), "space": str(space), "objective": settings.objective,
            "objective_metric": target.metric, "direction": target.direction, "sampler": settings.sampler,
            "sampler_seed": str(settings.sampler_seed), "pruner": study.pruner.__class__.__name__,
            "storage": shown(settings.storage), "study_name": settings.study_name,
        }
        experiment_id = resolve_experiment(tracker.client, base.experiment)
        run_id = tracker.start_study_run(experiment_id, settings.study_name, params, project_run)
        study.set_user_attr(RUN_ATTR, run_id)
        return run_id
    tracker.require(run_id)
    if project_run and project_run != run_id:
        tracker.mark_worker_run(project_run, run_id, settings.study_name)
    return run_id
