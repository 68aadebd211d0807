"""One worker of a sweep whose units live in an Optuna study (`rip sweep PRESET --storage URL`).

Every worker runs the same loop as a `rip tune` worker (`rip.sweeps.workqueue.work`): it claims the
next queued unit under the study's lock (with more units of the same pipeline call when their
images fill a batch: one engine computes them together), computes it while heartbeats say it is
alive, and exits when no unit is left. A configuration has exactly one parent MLflow run, found or created
under the lock by the first worker that needs it; each image's run is created, under it, by the
worker that computes the image. A unit whose worker died is retried and continues from the last
checkpoint every unfinished image of it logged (`rip.tracking.resume`). When the last unit of a
configuration ends, the worker that notices it, under the lock, writes the parent's aggregates
and `metrics.csv` from the image runs' logged values and ends the parent run.
"""

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import mlflow
import optuna
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from optuna.trial import TrialState

from rip.config import RunConfig
from rip.images import load_letterboxed, resolve_image_set
from rip.inpainters import reset_peak_memory
from rip.protocol.engine import Event, ImageFailed, ImageFinished, ImageTask, RecursiveInpainting, pipeline_key
from rip.runner import RECORDING_QUEUE, ImagesFailedError, Throughput, performance
from rip.sweeps.models import Models
from rip.sweeps.presets import describe
from rip.sweeps.units import (DONE_ATTR, ERROR_ATTR, PARENT_ATTR, SETTLED_ATTR, SWEEP_ID_ATTR, SweepPlan, Unit,
                              latest_trials, register)
from rip.sweeps.workqueue import (RETRY_ATTR, WAIT_POLL, WORKER_ATTR, StudyLock, claim, connect, heartbeat, retry,
                                  retry_stale, work, worker_id)
from rip.tracking.background import Background
from rip.tracking.recorder import RunRecorder, environment_params, resolve_experiment, run_params
from rip.tracking.resilience import Retrying
from rip.tracking.resume import check_compatible, load_state, tasks_to_resume
from rip.tracking.spool import default_spool_root
from rip.tracking.tags import BACKEND_TAG, CONFIG_HASH_TAG, CONFIG_TAG, SWEEP_ID_TAG, SWEEP_KEY_TAG
from rip.tracking.telemetry import system_metrics
from rip.tracking.ui import Addresses, configuration_name

log = logging.getLogger(__name__)



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


def where_runs_are(study: optuna.Study, plan: SweepPlan, tracking_uri: str | None = None) -> list[str]:
    """The address of each configuration run the sweep has so far, and of its experiment's runs list."""
    client = MlflowClient(tracking_uri or mlflow.get_tracking_uri())
    addresses, lines = Addresses(), []
    for index in range(len(plan.configs)):
        run_id = study.user_attrs.get(f"{PARENT_ATTR}{index}")
        if run_id is not None:
            run = client.get_run(run_id)
            lines += addresses.lines(client.tracking_uri, run.info.experiment_id, run_id, run.info.run_name)
    return lines


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
        worker = SweepWorker(plan, storage, lock, client, tags, max_retries, progress, echo)
        try:
            work(study, lock, worker, 0, min(heartbeat_interval, WAIT_POLL), settle=worker.settle,
                 catch=(ImagesFailedError,))
        except BaseException:
            worker.requeue(study)
            raise
        return study
    finally:
        lock.close()


@dataclass(eq=False)
class _UnitRun:
    """A claimed unit in the worker's engine: its trial, images and recorder."""

    trial: optuna.Trial
    unit: Unit
    config: RunConfig
    metrics: list
    recorder: RunRecorder
    tasks: list[ImageTask]
    finished: int  # images finished, earlier attempts included
    left: int = 0  # images still to end in this attempt
    device: str = "cpu"
    throughput: Throughput = field(default_factory=lambda: Throughput([]))
    batch_size: int = 0  # the engine's
    sampled: bool = False  # system metrics attached to the configuration's run


class SweepWorker:
    """Optuna's objective for a sweep's units (one trial, one unit), and the configurations' ends.

    The trial `work` hands out brings more waiting units of the same pipeline call along, claimed
    under the lock until their images fill a batch; one engine computes them all
    (`RecursiveInpainting.shared`), and each unit's trial completes when its last image ends.
    """

    def __init__(self, plan: SweepPlan, storage: optuna.storages.RDBStorage, lock: StudyLock, client: MlflowClient,
                 tags: dict[str, str], max_retries: int, progress: bool, echo: Callable[[str], None]):
        self.plan = plan
        self.storage = storage
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
        self.claimed: set[int] = set()  # numbers of the trials being computed
        self.addresses = Addresses()  # each configuration's run, once per worker

    # -- units ---------------------------------------------------------------------------------

    def __call__(self, trial: optuna.Trial) -> float:
        trials = [trial]
        self.claimed = {trial.number}
        with self.lock:
            trials += self._claim_companions(trial)
        self.claimed = {t.number for t in trials}
        beats = [heartbeat(self.storage, companion) for companion in trials[1:]]
        for beat in beats:
            beat.start()
        try:
            failures = self._compute(trials, dict(zip((t.number for t in trials[1:]), beats)))
        except BaseException as error:
            for stopped in trials:
                if stopped.number in self.claimed:
                    stopped.set_user_attr(ERROR_ATTR, str(error).strip() or type(error).__name__)
            raise
        finally:
            for beat in beats:
                beat.join()
        self.claimed = set()
        if trial.number in failures:
            raise ImagesFailedError(failures[trial.number])
        return float(len(Unit.of(trial)))

    def _claim_companions(self, trial: optuna.Trial) -> list[optuna.Trial]:
        """Waiting units of the same pipeline call, oldest first, until the claimed images fill a batch."""
        config = self.plan.configs[Unit.of(trial).configuration]
        images = len(Unit.of(trial))
        companions = []
        for waiting in trial.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            if images >= config.batch_size:
                break
            unit = Unit.of(waiting)
            if pipeline_key(self.plan.configs[unit.configuration]) != pipeline_key(config):
                continue
            claimed = claim(trial.study, self.storage, waiting)
            if claimed is not None:
                companions.append(claimed)
                images += len(unit)
        return companions

    def _compute(self, trials: list[optuna.Trial], beats: dict) -> dict[int, str]:
        """Compute the units of `trials` in one engine; return why units failed (per trial number)."""
        runs = {trial.number: self._prepare(trial, [t.number for t in trials if t is not trial]) for trial in trials}
        first = next(iter(runs.values()))
        _, inpainter, _ = self.models.get(first.config)
        engine = RecursiveInpainting.shared({number: (run.config, run.metrics) for number, run in runs.items()},
                                            inpainter, batch_size=first.config.batch_size, progress=self.progress)
        tasks = [task for run in runs.values() for task in run.tasks]
        failures = {}
        for run in runs.values():
            run.batch_size = engine.batch_size
            run.throughput = Throughput(run.tasks)
        reset_peak_memory(inpainter.device)
        background = Background(RECORDING_QUEUE)
        try:
            for run in runs.values():
                self._start_sampling(run)
            for number, run in runs.items():
                if not run.left:  # a retried unit whose images all finished before
                    failures.update(self._end_unit(run, beats.pop(number, None)))
            for event in engine.run(tasks):
                runs[event.key].throughput.seen()
                background.submit(self._record, runs[event.key], event, beats, failures)
            background.wait()
        except BaseException:
            background.close()  # what was computed is recorded first
            for run in runs.values():
                for image_id in run.recorder.open_children:  # the unit's retry reopens them
                    self.retrying(self.client.set_terminated, run.recorder.child_ids[image_id], "KILLED")
            raise
        finally:
            background.close()
            for run in runs.values():
                self._stop_sampling(run, last_sample=False)  # units that did not end
        return failures

    def _record(self, run: _UnitRun, event: Event, beats: dict, failures: dict[int, str]) -> None:
        """Record `event` in its unit's runs; complete the unit with its last image (on the background thread)."""
        run.recorder.handle(event)
        if isinstance(event, ImageFinished):
            run.finished += 1
            run.trial.set_user_attr(DONE_ATTR, run.finished)
        if isinstance(event, (ImageFinished, ImageFailed)):
            run.left -= 1
            if not run.left:
                failures.update(self._end_unit(run, beats.pop(run.trial.number, None)))

    def _prepare(self, trial: optuna.Trial, companions: list[int]) -> _UnitRun:
        """The unit's images, metrics, recorder under its configuration's run, and tasks."""
        # 1. The unit's images, model and metrics
        unit = Unit.of(trial)
        index = unit.configuration
        config, sources = self.plan.configs[index], self.sources[index]
        chunk = sources[unit.start:unit.stop]
        retried = RETRY_ATTR in trial.user_attrs
        trial.set_user_attr(WORKER_ATTR, worker_id())
        trial.set_user_attr(ERROR_ATTR, "")
        self.echo(f"unit {trial.number}: {describe(config)}, {unit} of {len(sources)}"
                  + (f" (retry of unit {trial.user_attrs[RETRY_ATTR]})" if retried else "")
                  + (f", batched with unit(s) {', '.join(map(str, companions))}" if companions else ""))
        originals, boxes = load_letterboxed(chunk, config.size, config.pad_color, config.resample)
        device, inpainter, metrics = self.models.get(config)
        params = run_params(config, inpainter, device, self.environment)
        recorder = RunRecorder(self.client, config, sources, params, spool_root=default_spool_root(),
                               retrying=self.retrying, model_files=inpainter.model_files())

        # 2. The configuration's run: found, or created by the first worker that needs it
        with self.lock:
            experiment_id = self.retrying(resolve_experiment, self.client, config.experiment)
            parent = self._parent(trial.study, index, experiment_id)
            if parent is None:
                tags = {BACKEND_TAG: inpainter.name, **inpainter.tags(), **self.tags,
                        CONFIG_HASH_TAG: self.plan.config_hash(index)}
                trial.study.set_user_attr(f"{PARENT_ATTR}{index}", recorder.start(experiment_id, None, tags))

        # 3. A retried unit continues from its images' last logged checkpoints
        tasks = [ImageTask(source.id, original, key=trial.number, box=box)
                 for source, original, box in zip(chunk, originals, boxes)]
        finished = 0
        if parent is not None:
            stored = RunConfig.from_json(parent.data.tags[CONFIG_TAG])
            check_compatible(parent, config, stored, params, set())
            state = self.retrying(load_state, self.client, parent, config) if retried else None
            if state is not None:
                _restrict(state, {source.id for source in chunk})
                tasks = self.retrying(tasks_to_resume, self.client, state, chunk, originals, boxes)
                for task in tasks:
                    task.key = trial.number
                finished = len(state.finished)
                recorder.adopt(parent.info.run_id, parent.info.experiment_id, state.child_ids, state.recorded,
                               state.ui_steps, state.grid_steps)
            else:
                recorder.adopt(parent.info.run_id, parent.info.experiment_id, {}, {}, {}, set())
        trial.set_user_attr(DONE_ATTR, finished)
        run_id = recorder.parent_id
        lines = self.addresses.lines(self.client.tracking_uri, recorder.experiment_id, run_id,
                                     parent.info.run_name if parent is not None else configuration_name(config))
        if lines:
            self.echo("\n".join(lines))
        return _UnitRun(trial, unit, config, metrics, recorder, tasks, finished, len(tasks), device)

    def _start_sampling(self, run: _UnitRun) -> None:
        """This worker's series of the configuration's run (`system/WORKER/...`), while it computes the unit."""
        if run.config.system_metrics:
            system_metrics().attach(self.client, run.recorder.parent_id, node=worker_id(), resume=True)
            run.sampled = True

    def _stop_sampling(self, run: _UnitRun, last_sample: bool = True) -> None:
        if run.sampled:
            system_metrics().detach(run.recorder.parent_id, last_sample)
            run.sampled = False

    def _end_unit(self, run: _UnitRun, beat) -> dict[int, str]:
        """The unit's images all ended: its trial completes (a companion's here, the handed-out one
        when `__call__` returns), or fails for good when an image failed."""
        number = run.trial.number
        failure = (f"{len(run.recorder.failures)} image(s) stopped: " + "; ".join(run.recorder.failures)
                   if run.recorder.failures else None)
        # the unit's figures, at step = its trial's number
        run.recorder.log_run_metrics(performance(run.throughput, run.batch_size, run.device), step=number)
        self._stop_sampling(run)
        if failure:
            run.trial.set_user_attr(ERROR_ATTR, failure)
        if beat is not None:  # a companion
            beat.join()
            with self.lock:
                if failure:
                    run.trial.study.tell(number, state=TrialState.FAIL)
                else:
                    run.trial.study.tell(number, float(len(run.unit)))
            self.claimed.discard(number)
        return {number: failure} if failure else {}

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
        """Queue the units this worker was computing again, now (it was interrupted, or the worker stops)."""
        if not self.claimed:
            return
        with self.lock:
            for number in sorted(self.claimed):
                trial = study.get_trials(deepcopy=False)[number]
                if trial.state == TrialState.RUNNING:
                    study.tell(trial.number, state=TrialState.FAIL)
                    trial = study.get_trials(deepcopy=False)[number]
                if trial.state == TrialState.FAIL and retry(study, trial, self.max_retries):
                    log.warning("unit %d (%s) stopped; queued again", trial.number, Unit.of(trial))
        self.claimed = set()


def _restrict(state, image_ids: set[str]) -> None:
    """Keep only the images of one unit in a parent run's resume state."""
    state.child_ids = {k: v for k, v in state.child_ids.items() if k in image_ids}
    state.finished &= image_ids
    state.recorded = {k: v for k, v in state.recorded.items() if k in image_ids}
    state.ui_steps = {k: v for k, v in state.ui_steps.items() if k in image_ids}
