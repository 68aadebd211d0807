"""One configuration, end to end: check inputs, load everything, run, record."""

import os
from collections.abc import Sequence

import mlflow
from mlflow import MlflowClient

from rip.config import RunConfig
from rip.engine import ImageTask, RecursiveInpainting
from rip.images import load_images, resolve_image_set
from rip.inpainters import load_inpainter, resolve_device
from rip.inpainters.base import Inpainter
from rip.metrics import Metric, load_metrics
from rip.tracking import RunRecorder, environment_params, resolve_experiment


def run_experiment(
    config: RunConfig,
    tracking_uri: str | None = None,
    *,
    inpainter: Inpainter | None = None,
    metrics: Sequence[Metric] | None = None,
    progress: bool = True,
) -> str:
    """Run `config`'s protocol and return the parent MLflow run id.

    Every input is checked, and models and metrics loaded, before any run is created. A failure
    afterwards marks the runs FAILED (KILLED on Ctrl-C) and keeps what was logged. Pass an
    already loaded `inpainter` and `metrics` to reuse them across runs.
    """
    # 1. Check inputs
    config.validate()
    sources = resolve_image_set(config.images, config.seed)
    originals = load_images(sources, config.size)

    # 2. Reach the tracking server
    client = MlflowClient(tracking_uri or mlflow.get_tracking_uri())
    experiment_id = _experiment_for(client, config)

    # 3. Load metrics and the inpainter
    device = resolve_device(config.device)
    metrics = metrics if metrics is not None else load_metrics(config.metrics, device)
    inpainter = inpainter or load_inpainter(config, device)

    # 4. Record
    params = {**config.as_params(), **inpainter.params(), **environment_params()}
    params.setdefault("resolved_device", device)
    recorder = RunRecorder(client, config, sources, params)
    parent_id = recorder.start(experiment_id, {"rip.backend": inpainter.name, **inpainter.tags()})
    engine = RecursiveInpainting(config, inpainter, metrics, progress=progress)
    tasks = [ImageTask(source.id, original) for source, original in zip(sources, originals)]
    try:
        for event in engine.run(tasks):
            recorder.handle(event)
    except KeyboardInterrupt:
        recorder.finish("KILLED")
        raise
    except BaseException:
        recorder.finish("FAILED")
        raise
    recorder.finish("FINISHED")
    return parent_id


def _experiment_for(client: MlflowClient, config: RunConfig) -> str:
    """The experiment id; under `mlflow run` the project run's own experiment."""
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if not run_id:
        return resolve_experiment(client, config.experiment)
    experiment_id = client.get_run(run_id).info.experiment_id
    name = client.get_experiment(experiment_id).name
    if config.experiment and config.experiment != name:
        raise ValueError(
            f"experiment {config.experiment!r} differs from the experiment {name!r} of the run "
            f"`mlflow run` created: pass `mlflow run . --experiment-name {config.experiment}` instead"
        )
    return experiment_id
