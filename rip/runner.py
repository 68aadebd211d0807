"""One configuration, end to end: check inputs, load everything, run, record."""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from rip import resume
from rip.config import RunConfig
from rip.engine import Event, ImageTask, RecursiveInpainting
from rip.images import load_images, resolve_image_set
from rip.inpainters import load_inpainter, resolve_device
from rip.inpainters.base import Inpainter
from rip.metrics import Metric, load_metrics
from rip.resilience import Retrying, TrackingUnavailableError
from rip.spool import default_spool_root
from rip.tracking import RunRecorder, environment_params, resolve_experiment

log = logging.getLogger(__name__)


class StopRun(Exception):
    """Raised by an observer to end a run early; the run is marked KILLED."""


@dataclass(frozen=True)
class Started:
    """What `run_experiment` reports once its parent run exists, for the caller to show."""

    run_id: str
    run_name: str
    experiment_id: str
    resumed_from: float | None = None  # a resumed run: the percent its images in progress continue from
    images_left: int = 0  # images still to inpaint (or to finish)
    images: int = 0


class ImagesFailedError(RuntimeError):
    """Some images had no usable output (see `InpaintingFailure`); the others completed."""


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
    - `observer`: sees every event after it was recorded; it may raise `StopRun`. A stopped
      run's exception is re-raised with the parent run id as its `run_id` attribute.
    - `outage_limit`: seconds the tracking server may stay unreachable before the run fails;
      unlogged checkpoints stay in the spool (`spool_root`) for `resume_run` to upload.
    - `on_start`: called once the parent run exists (or was reopened), before the first inpainting.
    """
    client = MlflowClient(tracking_uri or mlflow.get_tracking_uri())
    retrying = Retrying(outage_limit)

    # 1. Check inputs (and, to resume, the run's own configuration)
    previous = None
    if resume_run:
        stored, previous = retrying(resume.stored_config, client, resume_run)
        config.validate()
        params = environment_params()
        resume.check_compatible(previous, config, stored, params, set(given or ()))
        config = resume.with_free_fields(stored, config, set(given or ()))
    config.validate()
    sources = resolve_image_set(config.images, config.seed)
    originals = load_images(sources, config.size, config.pad_color, config.resample)

    # 2. Reach the tracking server
    experiment_id = previous.info.experiment_id if previous else _experiment_for(client, config, run_id)

    # 3. Load metrics and the inpainter
    device = resolve_device(config.device)
    metrics = metrics if metrics is not None else load_metrics(config.metrics, device)
    inpainter = inpainter or load_inpainter(config, device)

    # 4. Start or reopen the runs
    params = {**config.as_params(), **inpainter.params(), **environment_params()}
    params.setdefault("resolved_device", device)
    recorder = RunRecorder(client, config, sources, params,
                           spool_root=spool_root or default_spool_root(), retrying=retrying)
    if previous:
        state = retrying(resume.load_state, client, previous, config)
        recorder.adopt(state.run_id, state.experiment_id, state.child_ids, state.recorded, state.ui_steps,
                       state.grid_steps)
        uploaded = recorder.upload_spool(dict(zip((s.id for s in sources), originals)))
        state.recorded = recorder.recorded
        tasks = retrying(resume.tasks_to_resume, client, state, sources, originals)
        log.info("resuming run %s: %d spooled checkpoints uploaded, %d of %d images to go",
                 state.run_id, uploaded, len(tasks), len(sources))
        parent_id = state.run_id
        resumed_from = max((config.percent_after(task.iteration) for task in tasks), default=config.percent)
    else:
        resumed_from = None
        parent_id = recorder.start(experiment_id, run_id, {"rip.backend": inpainter.name, **inpainter.tags(), **(tags or {})})
        tasks = [ImageTask(source.id, original) for source, original in zip(sources, originals)]
    if on_start is not None:
        name = retrying(client.get_run, parent_id).info.run_name
        on_start(Started(parent_id, name, recorder.experiment_id, resumed_from, len(tasks), len(sources)))

    # 5. Recurse and record
    engine = RecursiveInpainting(config, inpainter, metrics, progress=progress)
    try:
        for event in engine.run(tasks):
            recorder.handle(event)
            if observer is not None:
                observer(event)
    except TrackingUnavailableError as error:
        raise TrackingUnavailableError(
            f"{error}\nCheckpoints not yet logged are kept in {recorder.spool.folder}; when the server "
            f"is back, continue with `rip run --resume {parent_id}`."
        ) from error
    except (KeyboardInterrupt, StopRun) as error:
        recorder.finish("KILLED")
        error.run_id = parent_id  # for the caller's message
        raise
    except BaseException:
        recorder.finish("FAILED")
        raise
    if recorder.failures:
        recorder.finish("FAILED")
        raise ImagesFailedError(
            f"run {parent_id} FAILED: {len(recorder.failures)} image(s) stopped, every other image completed:\n  "
            + "\n  ".join(recorder.failures)
        )
    recorder.finish("FINISHED")
    return parent_id


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
