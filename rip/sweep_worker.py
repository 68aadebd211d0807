"""One worker of a sweep whose units live in an Optuna study (`rip sweep PRESET --storage URL`).

Every worker runs the same loop as a `rip tune` worker (`rip.workqueue.work`): it claims the
next queued unit under the study's lock, computes it while heartbeats say it is alive, and
exits when no unit is left. A configuration has exactly one parent MLflow run, found or created
under the lock by the first worker that needs it; each image's run is created, under it, by the
worker that computes the image. A unit whose worker died is retried and continues from the last
checkpoint every unfinished image of it logged (`rip.resume`). When the last unit of a
configuration ends, the worker that notices it, under the lock, writes the parent's aggregates
and `metrics.csv` from the image runs' logged values and ends the parent run.
"""

import logging
import os
from collections.abc import Callable

import mlflow
import optuna
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from optuna.trial import TrialState

from rip.config import RunConfig
from rip.engine import ImageFinished, ImageTask, RecursiveInpainting
from rip.images import load_images, resolve_image_set
from rip.resilience import Retrying
from rip.resume import check_compatible, load_state, tasks_to_resume
from rip.runner import ImagesFailedError
from rip.spool import default_spool_root
from rip.sweep import SWEEP_ID_TAG, Models, describe
from rip.sweep_units import (DONE_ATTR, ERROR_ATTR, PARENT_ATTR, SETTLED_ATTR, SWEEP_ID_ATTR, SweepPlan, Unit,
                             latest_trials, register)
from rip.tracking import CONFIG_TAG, RunRecorder, environment_params, resolve_experiment
from rip.workqueue import RETRY_ATTR, WORKER_ATTR, StudyLock, connect, retry, retry_stale, work, worker_id

log = logging.getLogger(__name__)

SWEEP_KEY_TAG = "rip.sweep_key"  # on a shared sweep's configuration runs: the study that holds its units
CONFIG_HASH_TAG = "rip.config_hash"  # on a sweep's configuration runs: the configuration's hash


def check_access(client: MlflowClient) -> None:
    """ValueError naming the fix when the tracking server refuses this client's credentials."""
    try:
        client.search_experiments(max_results=1)
    except MlflowException as error:
        if error.get_http_status_code() in (401, 403):
            given = "were refused" if mlflow.environment_variables.MLFLOW_TRACKING_USERNAME.get() else "are missing"
            raise ValueError(
                f"the tracking server {client.tracking_uri} requires a login and the credentials {given}: "
                "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
            ) from None
        raise


def work_on_sweep(plan: SweepPlan, storage_url: str, tracking_uri: str | None = None, *,
                  tags: dict[str, str], heartbeat_interval: int = 60, grace_period: int | None = None,
                  max_retries: int = 3, progress: bool = True,
                  echo: Callable[[str], None] = print) -> optuna.Study:
    """Register the sweep's units (once, whoever comes first), then compute units until none is left."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # ending a run downloads its generations
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a unit is not an optimisation result
    client = MlflowClient(tracking_uri or mlflow.get_tracking_uri())
    check_access(client)
    storage, lock = connect(storage_url, plan.study_name, heartbeat_interval, grace_period, retry_stale(max_retries))
    try:
        with lock:
            study = optuna.create_study(storage=storage, study_name=plan.study_name, load_if_exists=True,
                                        direction="maximize")
            added = register(study, plan)
        echo(f"sweep {plan.study_name}: {len(plan.units())} units" + (f" ({added} registered now)" if added else ""))
        tags = {**tags, SWEEP_ID_TAG: study.user_attrs[SWEEP_ID_ATTR], SWEEP_KEY_TAG: plan.study_name}
        worker = SweepWorker(plan, lock, client, tags, max_retries, progress, echo)
        try:
            work(study, lock, worker, 0, poll=heartbeat_interval, settle=worker.settle, catch=(ImagesFailedError,))
        except BaseException:
            worker.requeue(study)
            raise
        return study
    finally:
        lock.close()


class SweepWorker:
    """Optuna's objective for a sweep's units (one trial, one unit), and the configurations' ends."""

    def __init__(self, plan: SweepPlan, lock: StudyLock, client: MlflowClient, tags: dict[str, str],
                 max_retries: int, progress: bool, echo: Callable[[str], None]):
        self.plan = plan
        self.lock = lock
        self.client = client
        self.retrying = Retrying()
        self.tags = tags
        self.max_retries = max_retries
        self.progress = progress
        self.echo = echo
        self.sources = [resolve_image_set(config.images, config.seed) for config in plan.configs]
        self.environment = environment_params()
        self.models = Models()
        self.current: int | None = None  # the number of the trial being computed

    # -- one unit ------------------------------------------------------------------------------

    def __call__(self, trial: optuna.Trial) -> float:
        unit = Unit.of(trial)
        self.current = trial.number
        trial.set_user_attr(WORKER_ATTR, worker_id())
        trial.set_user_attr(ERROR_ATTR, "")
        try:
            self._compute(trial, unit)
        except BaseException as error:
            trial.set_user_attr(ERROR_ATTR, str(error).strip() or type(error).__name__)
            if isinstance(error, ImagesFailedError):
                self.current = None  # the unit failed for good; the worker goes on
            raise
        self.current = None
        return float(unit.stop - unit.start)

    def _compute(self, trial: optuna.Trial, unit: Unit) -> None:
        # 1. The unit's images, model and metrics
        index = unit.configuration
        config, sources = self.plan.configs[index], self.sources[index]
        chunk = sources[unit.start:unit.stop]
        retried = RETRY_ATTR in trial.user_attrs
        self.echo(f"unit {trial.number}: {describe(config)}, {unit} of {len(sources)}"
                  + (f" (retry of unit {trial.user_attrs[RETRY_ATTR]})" if retried else ""))
        originals = load_images(chunk, config.size, config.pad_color, config.resample)
        device, inpainter, metrics = self.models.get(config)
        params = {**config.as_params(), **inpainter.params(), **self.environment}
        params.setdefault("resolved_device", device)
        recorder = RunRecorder(self.client, config, sources, params, spool_root=default_spool_root(),
                               retrying=self.retrying)

        # 2. The configuration's run: found, or created by the first worker that needs it
        with self.lock:
            experiment_id = self.retrying(resolve_experiment, self.client, config.experiment)
            parent = self._parent(trial.study, index, experiment_id)
            if parent is None:
                tags = {"rip.backend": inpainter.name, **inpainter.tags(), **self.tags,
                        CONFIG_HASH_TAG: self.plan.config_hash(index)}
                trial.study.set_user_attr(f"{PARENT_ATTR}{index}", recorder.start(experiment_id, None, tags))

        # 3. A retried unit continues from its images' last logged checkpoints
        tasks = [ImageTask(source.id, original) for source, original in zip(chunk, originals)]
        finished = 0
        if parent is not None:
            stored = RunConfig.from_json(parent.data.tags[CONFIG_TAG])
            check_compatible(parent, config, stored, params, set())
            state = self.retrying(load_state, self.client, parent, config) if retried else None
            if state is not None:
                _restrict(state, {source.id for source in chunk})
                tasks = self.retrying(tasks_to_resume, self.client, state, chunk, originals)
                finished = len(state.finished)
                recorder.adopt(parent.info.run_id, parent.info.experiment_id, state.child_ids, state.recorded,
                               state.ui_steps, state.grid_steps)
            else:
                recorder.adopt(parent.info.run_id, parent.info.experiment_id, {}, {}, {}, set())
        trial.set_user_attr(DONE_ATTR, finished)

        # 4. Recurse and record
        engine = RecursiveInpainting(config, inpainter, metrics, progress=self.progress)
        try:
            for event in engine.run(tasks):
                recorder.handle(event)
                if isinstance(event, ImageFinished):
                    finished += 1
                    trial.set_user_attr(DONE_ATTR, finished)
        except BaseException:
            for image_id in recorder.open_children:  # the unit's retry reopens them
                self.retrying(self.client.set_terminated, recorder.child_ids[image_id], "KILLED")
            raise
        if recorder.failures:
            raise ImagesFailedError(f"{len(recorder.failures)} image(s) stopped: " + "; ".join(recorder.failures))

    def _parent(self, study: optuna.Study, index: int, experiment_id: str):
        """The configuration's run, if a worker created it (call under the lock); also one whose
        creator died before it could record it in the study."""
        run_id = study.user_attrs.get(f"{PARENT_ATTR}{index}")
        if run_id is not None:
            return self.retrying(self.client.get_run, run_id)
        found = self.retrying(
            self.client.search_runs, [experiment_id],
            f"tags.`{SWEEP_ID_TAG}` = '{self.tags[SWEEP_ID_TAG]}' and tags.`{CONFIG_HASH_TAG}` = "
            f"'{self.plan.config_hash(index)}'", max_results=1, order_by=["attributes.start_time ASC"])
        if found:
            study.set_user_attr(f"{PARENT_ATTR}{index}", found[0].info.run_id)
        return found[0] if found else None

    # -- the end of a configuration and of a worker --------------------------------------------

    def settle(self, study: optuna.Study) -> None:
        """End the run of each configuration whose units all ended: FINISHED with its aggregates
        when every unit completed, else FAILED (called under the lock, by every worker)."""
        latest = latest_trials(study.get_trials(deepcopy=False))
        attrs = study.user_attrs
        for index, config in enumerate(self.plan.configs):
            states = [trial.state for unit, trial in latest.items() if unit.configuration == index]
            if (not states or f"{SETTLED_ATTR}{index}" in attrs or TrialState.WAITING in states
                    or TrialState.RUNNING in states):
                continue
            status = "FINISHED" if set(states) == {TrialState.COMPLETE} else "FAILED"
            run_id = attrs.get(f"{PARENT_ATTR}{index}")
            if run_id is not None:
                self._end_run(config, self.sources[index], run_id, status)
            study.set_user_attr(f"{SETTLED_ATTR}{index}", status)
            self.echo(f"{describe(config)}: run {run_id} {status}")

    def _end_run(self, config: RunConfig, sources, run_id: str, status: str) -> None:
        """Aggregates, grids and metrics.csv from the image runs' logged values; the run ends `status`."""
        run = self.retrying(self.client.get_run, run_id)
        if run.info.status != "RUNNING":
            return  # an earlier worker ended it and died before saying so
        state = self.retrying(load_state, self.client, run, config)
        recorder = RunRecorder(self.client, config, sources, {}, spool_root=default_spool_root(),
                               retrying=self.retrying)
        recorder.adopt(run_id, run.info.experiment_id, state.child_ids, state.recorded, state.ui_steps,
                       state.grid_steps)
        recorder.finish(status)

    def requeue(self, study: optuna.Study) -> None:
        """Queue the unit this worker was computing again, now (it was interrupted, or the worker stops)."""
        if self.current is None:
            return
        with self.lock:
            trial = study.get_trials(deepcopy=False)[self.current]
            if trial.state == TrialState.RUNNING:
                study.tell(trial.number, state=TrialState.FAIL)
                trial = study.get_trials(deepcopy=False)[self.current]
            if trial.state == TrialState.FAIL and retry(study, trial, self.max_retries):
                log.warning("unit %d (%s) stopped; queued again", trial.number, Unit.of(trial))


def _restrict(state, image_ids: set[str]) -> None:
    """Keep only the images of one unit in a parent run's resume state."""
    state.child_ids = {k: v for k, v in state.child_ids.items() if k in image_ids}
    state.finished &= image_ids
    state.recorded = {k: v for k, v in state.recorded.items() if k in image_ids}
    state.ui_steps = {k: v for k, v in state.ui_steps.items() if k in image_ids}
