"""Configurations end to end: check inputs, load everything, run, record.

`run_experiment` runs one configuration as one MLflow run; `run_together` runs several that
share a model in one engine (`RecursiveInpainting.shared`), each still its own MLflow run,
opened when its first image starts and ended when its last image ends. Events are recorded on
a background thread, in order, while the engine computes (`rip.tracking.background`).
"""

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
from mlflow import MlflowClient

from rip.config import RunConfig
from rip.images import Box, SourceImage, load_letterboxed, resolve_image_set
from rip.inpainters import load_inpainter, peak_memory, reset_peak_memory, resolve_device
from rip.inpainters.base import Inpainter
from rip.metrics import Metric, load_metrics
from rip.protocol.engine import Event, ImageFailed, ImageFinished, ImageTask, RecursiveInpainting
from rip.tracking import resume
from rip.tracking.background import Background
from rip.tracking.recorder import RunRecorder, environment_params, resolve_experiment, run_params
from rip.tracking.resilience import Retrying, TrackingUnavailableError
from rip.tracking.spool import default_spool_root
from rip.tracking.tags import BACKEND_TAG, BATCH_SIZE_USED, INPAINTINGS_PER_S, PEAK_GPU_MEMORY
from rip.tracking.telemetry import system_metrics

log = logging.getLogger(__name__)
RECORDING_QUEUE = 64  # events computed but not yet recorded, at most (each holds a generation)


class StopRun(Exception):
    """Raised by an observer to end a run early; the run is marked KILLED."""


@dataclass(frozen=True)
class Started:
    """What the runner reports once a parent run exists, for the caller to show."""

    run_id: str
    run_name: str
    experiment_id: str
    resumed_from: float | None = None  # a resumed run: the percent its images in progress continue from
    images_left: int = 0  # images still to inpaint (or to finish)
    images: int = 0
    config: RunConfig | None = None
    tracking_uri: str = ""


class ImagesFailedError(RuntimeError):
    """Some images had no usable output (see `InpaintingFailure`); the others completed."""


class Throughput:
    """Inpaintings per second of some tasks in an engine: the inpaintings they did in this attempt
    over the time from the engine's first event of them to its last, taken as the engine yields
    them (configurations that share an engine share its calls, and its time)."""

    def __init__(self, tasks: Sequence[ImageTask]):
        self.tasks = tasks
        self.start = sum(task.iteration for task in tasks)
        self.first: float | None = None
        self.last: float | None = None

    def seen(self) -> None:
        """One of the tasks' events, now."""
        self.last = time.perf_counter()
        if self.first is None:
            self.first = self.last

    def rate(self) -> float | None:
        done = sum(task.iteration for task in self.tasks) - self.start
        if self.first is None or done <= 0 or self.last <= self.first:
            return None
        return done / (self.last - self.first)


def performance(throughput: Throughput, batch_size: int, device: str) -> dict[str, float]:
    """A configuration's `perf/` metrics: inpaintings/s, the engine's batch size, peak GPU memory (CUDA)."""
    values = {BATCH_SIZE_USED: float(batch_size)}
    if (rate := throughput.rate()) is not None:
        values[INPAINTINGS_PER_S] = rate
    if (peak := peak_memory(device)) is not None:
        values[PEAK_GPU_MEMORY] = peak / 1e6
    return values


def run_experiment(
    config: RunConfig,
    tracking_uri: str | None = None,
    *,
    inpainter: Inpainter | None = None,
    metrics: Sequence[Metric] | None = None,
    run_id: str | None = None,
    resume_run: str | None = None,
    given: Sequence[str] | None = None,
    tags: dict[str, str] | None = None,
    observer: Callable[[Event], None] | None = None,
    outage_limit: float = 600.0,
    spool_root: Path | None = None,
    progress: bool = True,
    on_start: Callable[[Started], None] | None = None,
) -> str:
    """Run `config`'s protocol and return the parent MLflow run id.

    Every input is checked, and models and metrics loaded, before any run is created. A failure
    afterwards marks the runs FAILED (KILLED on Ctrl-C or `StopRun`) and keeps what was logged.

    - `inpainter`, `metrics`: already loaded ones, to reuse them across runs.
    - `run_id`: record into this existing run (the one `mlflow run` created).
    - `resume_run`: continue this interrupted parent run; `given` names the fields of `config`
      the user set explicitly, which must match the run's configuration.
    - `tags`: for the parent run (e.g. `mlflow.parentRunId` to nest it).
    - `observer`: sees every event as the engine yields it (it is recorded on a background
      thread, in order); it may raise `StopRun`. What was computed is recorded, then the run
      ends KILLED and the exception is re-raised with the parent run id as its `run_id`.
    - `outage_limit`: seconds the tracking server may stay unreachable before the run fails;
      unlogged checkpoints stay in the spool (`spool_root`) for `resume_run` to upload.
    - `on_start`: called once the parent run exists (or was reopened), before the first inpainting.
    """
    client = MlflowClient(tracking_uri or mlflow.get_tracking_uri())
    retrying = Retrying(outage_limit)
    environment = environment_params()

    # 1. Check inputs (and, to resume, the run's own configuration)
    previous = None
    if resume_run:
        stored, previous = retrying(resume.stored_config, client, resume_run)
        config.validate()
        resume.check_compatible(previous, config, stored, environment, set(given or ()))
        config = resume.with_free_fields(stored, config, set(given or ()))
    config.validate()
    sources = resolve_image_set(config.images, config.seed)
    originals, boxes = load_letterboxed(sources, config.size, config.pad_color, config.resample)

    # 2. Reach the tracking server
    experiment_id = previous.info.experiment_id if previous else _experiment_for(client, config, run_id)

    # 3. Load metrics and the inpainter
    device = resolve_device(config.device)
    metrics = metrics if metrics is not None else load_metrics(config.metrics, device)
    inpainter = inpainter or load_inpainter(config, device)

    # 4. Start or reopen the run, recurse and record
    run = _ConfigurationRun(config, metrics, sources, originals, inpainter, device, environment, client,
                            retrying, spool_root, on_start, boxes)
    if previous:
        run.reopen(previous)
    else:
        run.plan_new(experiment_id, run_id, tags)
        run.open()
    return _recurse([run], inpainter, config.batch_size, observer, progress)[0]


def run_together(
    configs: Sequence[RunConfig],
    tracking_uri: str | None = None,
    *,
    inpainter: Inpainter,
    metrics: Sequence[Sequence[Metric]],
    run_ids: Sequence[str | None] | None = None,
    observers: Sequence[Callable[[Event], None] | None] | None = None,
    tags: dict[str, str] | None = None,
    spool_root: Path | None = None,
    progress: bool = True,
    on_start: Callable[[Started], None] | None = None,
) -> list[str]:
    """Run configurations that share `inpainter` (equal `pipeline_key`) in one engine, whose
    calls mix their images; return their parent run ids, in order.

    Each configuration is its own MLflow run, with the results it would have alone: its run is
    created when its first image starts (so an interruption leaves only started runs behind) and
    ends when its last image ends. `metrics[i]` are configuration i's loaded metrics; `run_ids[i]`
    an existing run to record configuration i into (e.g. a search's trial run); `observers[i]`
    sees configuration i's events (as `run_experiment`'s observer). Inputs are all checked before
    any run is created.
    """
    client = MlflowClient(tracking_uri or mlflow.get_tracking_uri())
    retrying = Retrying()
    run_ids = list(run_ids or [None] * len(configs))
    environment = environment_params()  # once: it asks git
    runs = []
    for config, measures in zip(configs, metrics, strict=True):
        config.validate()
        sources = resolve_image_set(config.images, config.seed)
        originals, boxes = load_letterboxed(sources, config.size, config.pad_color, config.resample)
        runs.append(_ConfigurationRun(config, measures, sources, originals, inpainter, resolve_device(config.device),
                                      environment, client, retrying, spool_root, on_start, boxes))
    for run, run_id in zip(runs, run_ids, strict=True):
        run.plan_new(retrying(_experiment_for, client, run.config, run_id), run_id, tags)

    def observer(event: Event) -> None:
        if observers and observers[event.key] is not None:
            observers[event.key](event)

    return _recurse(runs, inpainter, max(config.batch_size for config in configs), observer, progress)


class _ConfigurationRun:
    """One configuration in an engine: its images, its recorder and its parent run's life."""

    def __init__(self, config: RunConfig, metrics: Sequence[Metric], sources: list[SourceImage],
                 originals: list[np.ndarray], inpainter: Inpainter, device: str, environment: dict[str, str],
                 client: MlflowClient, retrying: Retrying, spool_root: Path | None,
                 on_start: Callable[[Started], None] | None, boxes: Sequence[Box]):
        self.config = config
        self.metrics = tuple(metrics)
        self.sources = sources
        self.originals = originals
        self.boxes = list(boxes)  # where each picture lies in its letterboxed square
        self.inpainter = inpainter
        self.device = device
        self.client = client
        self.retrying = retrying
        self.on_start = on_start
        self.recorder = RunRecorder(client, config, sources, run_params(config, inpainter, device, environment),
                                    spool_root=spool_root or default_spool_root(), retrying=retrying,
                                    model_files=inpainter.model_files())
        self.tasks: list[ImageTask] = []
        self.left = 0  # images still to end
        self.state = "planned"  # planned -> open -> ended
        self.throughput = Throughput([])
        self.batch_size = config.batch_size  # the engine's, once it runs
        self.sampled = False  # system metrics attached
        self._start: tuple | None = None

    @property
    def run_id(self) -> str:
        return self.recorder.parent_id

    def plan_new(self, experiment_id: str, run_id: str | None, tags: dict[str, str] | None) -> None:
        """A new run, created by `open` (or recorded into `run_id`, which exists)."""
        self._start = (experiment_id, run_id, {BACKEND_TAG: self.inpainter.name, **self.inpainter.tags(),
                                               **(tags or {})})
        self.tasks = [ImageTask(source.id, original, box=box)
                      for source, original, box in zip(self.sources, self.originals, self.boxes)]
        self.left = len(self.tasks)
        self.throughput = Throughput(self.tasks)

    def reopen(self, previous) -> None:
        """Continue interrupted run `previous`: upload its spool, then its unfinished images."""
        client, retrying, recorder = self.client, self.retrying, self.recorder
        state = retrying(resume.load_state, client, previous, self.config)
        recorder.adopt(state.run_id, state.experiment_id, state.child_ids, state.recorded, state.ui_steps,
                       state.grid_steps)
        uploaded = recorder.upload_spool(dict(zip((s.id for s in self.sources), self.originals)))
        state.recorded = recorder.recorded
        self.tasks = retrying(resume.tasks_to_resume, client, state, self.sources, self.originals, self.boxes)
        self.left = len(self.tasks)
        self.throughput = Throughput(self.tasks)
        log.info("resuming run %s: %d spooled checkpoints uploaded, %d of %d images to go",
                 state.run_id, uploaded, len(self.tasks), len(self.sources))
        resumed_from = max((self.config.percent_after(task.iteration) for task in self.tasks),
                           default=self.config.percent)
        self.state = "open"
        self._sample(resume=True)
        self._announce(resumed_from)

    def open(self) -> None:
        """Create the parent run (at the configuration's first image)."""
        if self.state == "planned":
            experiment_id, run_id, tags = self._start
            self.recorder.start(experiment_id, run_id, tags)
            self.state = "open"
            self._sample(resume=False)
            self._announce(None)

    def record(self, event: Event) -> None:
        """Record `event` (opening the run at its first); end the run with its last image."""
        self.open()
        self.recorder.handle(event)
        if isinstance(event, (ImageFinished, ImageFailed)):
            self.left -= 1
            if not self.left:
                self.end()

    def end(self, status: str | None = None) -> None:
        """End the run: `status`, or FINISHED unless some image failed."""
        if self.state == "open":
            self.recorder.log_run_metrics(performance(self.throughput, self.batch_size, self.device))
            self.stop_sampling()
            self.recorder.finish(status or ("FAILED" if self.recorder.failures else "FINISHED"))
            self.state = "ended"

    def _sample(self, resume: bool) -> None:
        """System metrics into the run while it is open (unless the configuration turns them off)."""
        if self.config.system_metrics and not self.sampled:
            system_metrics().attach(self.client, self.run_id, resume=resume)
            self.sampled = True

    def stop_sampling(self, last_sample: bool = True) -> None:
        if self.sampled:
            system_metrics().detach(self.run_id, last_sample)
            self.sampled = False

    def _announce(self, resumed_from: float | None) -> None:
        if self.on_start is not None:
            name = self.retrying(self.client.get_run, self.run_id).info.run_name
            self.on_start(Started(self.run_id, name, self.recorder.experiment_id, resumed_from, len(self.tasks),
                                  len(self.sources), self.config, self.client.tracking_uri))


def _recurse(runs: list[_ConfigurationRun], inpainter: Inpainter, batch_size: int,
             observer: Callable[[Event], None] | None, progress: bool) -> list[str]:
    """Run every configuration's images in one engine, each event recorded in its run; return the run ids."""
    engine = RecursiveInpainting.shared({index: (run.config, run.metrics) for index, run in enumerate(runs)},
                                        inpainter, batch_size=batch_size, progress=progress)
    tasks = []
    for index, run in enumerate(runs):
        run.batch_size = engine.batch_size
        for task in run.tasks:
            task.key = index
            tasks.append(task)
    reset_peak_memory(inpainter.device)
    background = Background(RECORDING_QUEUE)
    try:
        for event in engine.run(tasks):
            runs[event.key].throughput.seen()
            background.submit(runs[event.key].record, event)
            if observer is not None:
                observer(event)
        background.wait()
        for run in runs:  # those with nothing left to compute
            run.open()
            run.end()
    except TrackingUnavailableError as error:
        background.close()
        for run in runs:
            run.stop_sampling(last_sample=False)
        waiting = [run for run in runs if run.state == "open"]
        raise TrackingUnavailableError(
            f"{error}\nCheckpoints not yet logged are kept in the spool ("
            + ", ".join(str(run.recorder.spool.folder) for run in waiting)
            + "); when the server is back, continue with "
            + " and ".join(f"`rip run --resume {run.run_id}`" for run in waiting) + "."
        ) from error
    except (KeyboardInterrupt, StopRun) as error:
        background.close()  # what was computed is recorded first
        stopped = [run for run in runs if run.state == "open"]
        for run in stopped:
            run.end("KILLED")
        error.run_id = (stopped or runs)[0].run_id  # for the caller's message
        error.run_ids = [run.run_id for run in stopped]
        raise
    except BaseException:
        background.close()
        for run in runs:
            run.end("FAILED")
        raise
    finally:
        background.close()
        for run in runs:
            run.stop_sampling(last_sample=False)  # runs that never ended (the sampling thread stops with the last)
    failed = [run for run in runs if run.recorder.failures]
    if failed:
        raise ImagesFailedError("\n".join(
            f"run {run.run_id} FAILED: {len(run.recorder.failures)} image(s) stopped, every other image "
            "completed:\n  " + "\n  ".join(run.recorder.failures) for run in failed
        ))
    return [run.run_id for run in runs]


def _experiment_for(client: MlflowClient, config: RunConfig, run_id: str | None) -> str:
    """The experiment id; with an existing run, that run's own experiment."""
    if not run_id:
        return resolve_experiment(client, config.experiment)
    experiment_id = client.get_run(run_id).info.experiment_id
    name = client.get_experiment(experiment_id).name
    if config.experiment and config.experiment != name:
        raise ValueError(
            f"experiment {config.experiment!r} differs from the experiment {name!r} of run {run_id}; "
            f"under `mlflow run`, pass `--experiment-name {config.experiment}` to it instead"
        )
    return experiment_id
