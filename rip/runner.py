"""One configuration, end to end: check inputs, load everything, run, record."""

from collections.abc import Callable, Sequence

import mlflow
from mlflow import MlflowClient

from rip.config import RunConfig
from rip.engine import Event, ImageTask, RecursiveInpainting
from rip.images import load_images, resolve_image_set
from rip.inpainters import load_inpainter, resolve_device
from rip.inpainters.base import Inpainter
from rip.metrics import Metric, load_metrics
from rip.tracking import RunRecorder, environment_params, resolve_experiment


class StopRun(Exception):
    """Raised by an observer to end a run early; the run is marked KILLED."""


def run_experiment(
    config: RunConfig,
    tracking_uri: str | None = None,
    *,
    inpainter: Inpainter | None = None,
    metrics: Sequence[Metric] | None = None,
    run_id: str | None = None,
    tags: dict[str, str] | None = None,
    observer: Callable[[Event], None] | None = None,
    progress: bool = True,
) -> str:
    """Run `config`'s protocol and return the parent MLflow run id.

    Every input is checked, and models and metrics loaded, before any run is created. A failure
    afterwards marks the runs FAILED (KILLED on Ctrl-C or `StopRun`) and keeps what was logged.
    Pass an already loaded `inpainter` and `metrics` to reuse them across runs, `run_id` to
    record into an existing run (the one `mlflow run` created), `tags` for the parent run (e.g. `mlflow.parentRunId` to nest it), and an `observer` to see every event
    after it was recorded; the observer may raise `StopRun` to end the run early.
    """
    # 1. Check inputs
    config.validate()
    sources = resolve_image_set(config.images, config.seed)
    originals = load_images(sources, config.size)

    # 2. Reach the tracking server
    client = MlflowClient(tracking_uri or mlflow.get_tracking_uri())
    experiment_id = _experiment_for(client, config, run_id)

    # 3. Load metrics and the inpainter
    device = resolve_device(config.device)
    metrics = metrics if metrics is not None else load_metrics(config.metrics, device)
    inpainter = inpainter or load_inpainter(config, device)

    # 4. Record
    params = {**config.as_params(), **inpainter.params(), **environment_params()}
    params.setdefault("resolved_device", device)
    recorder = RunRecorder(client, config, sources, params)
    parent_id = recorder.start(experiment_id, run_id, {"rip.backend": inpainter.name, **inpainter.tags(), **(tags or {})})
    engine = RecursiveInpainting(config, inpainter, metrics, progress=progress)
    tasks = [ImageTask(source.id, original) for source, original in zip(sources, originals)]
    try:
        for event in engine.run(tasks):
            recorder.handle(event)
            if observer is not None:
                observer(event)
    except (KeyboardInterrupt, StopRun):
        recorder.finish("KILLED")
        raise
    except BaseException:
        recorder.finish("FAILED")
        raise
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
