"""Everything MLflow: a parent run per configuration, a nested child run per image.

Metrics are logged at step = percent inpainted; values go in batches (one request per image
and checkpoint), since a remote server answers each request in tens of milliseconds.
"""

import os
import subprocess
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from PIL import Image

from rip.config import RunConfig
from rip.engine import Checkpoint, Event, ImageFinished, ImageStarted
from rip.images import SourceImage
from rip.masks import mask_schedule

DEFAULT_EXPERIMENT = "recursive-inpainting"
PACKAGES = ("torch", "diffusers", "transformers", "mlflow", "lpips", "stlpips-pytorch", "numpy", "pillow")
KIND_TAG = "rip.kind"  # "configuration" on parent runs, "image" on child runs
IMAGE_TAG = "rip.image_id"
CONFIG_TAG = "rip.config"  # the configuration as JSON


def resolve_experiment(client: MlflowClient, name: str) -> str:
    """The id of experiment `name` (created if needed); empty name = the active experiment."""
    name = name or os.environ.get("MLFLOW_EXPERIMENT_NAME") or ""
    if not name and os.environ.get("MLFLOW_EXPERIMENT_ID"):
        return os.environ["MLFLOW_EXPERIMENT_ID"]
    name = name or DEFAULT_EXPERIMENT
    experiment = client.get_experiment_by_name(name)
    return experiment.experiment_id if experiment else client.create_experiment(name)


def environment_params() -> dict[str, str]:
    """Package versions and the code version, logged with every run."""
    params = {f"version_{name}": _version(name) for name in PACKAGES}
    params["version_rip"] = _version("rip")
    params["code_commit"] = code_commit()
    return params


def code_commit() -> str:
    """The git commit of the code being run ('+dirty' with local changes), or 'unknown'."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


class RunRecorder:
    """Turns engine events into MLflow runs and files."""

    def __init__(self, client: MlflowClient, config: RunConfig, sources: list[SourceImage], params: dict[str, str]):
        self.client = client
        self.config = config
        self.sources = {source.id: source for source in sources}
        self.params = params
        self.parent_id = ""
        self.child_ids: dict[str, str] = {}
        self.open_children: set[str] = set()
        self.rows: list[dict] = []

    def start(self, experiment_id: str, run_id: str | None, tags: dict[str, str]) -> str:
        """Create the parent run (or adopt `run_id`, e.g. the one `mlflow run` made) and log the configuration."""
        config = self.config
        tags = {KIND_TAG: "configuration", CONFIG_TAG: config.to_json(), **tags}
        params = self.params
        self.parent_id = run_id or ""
        if self.parent_id:
            # `mlflow run` already logged the entry point's parameters, shell-quoted
            run = self.client.get_run(self.parent_id)
            self.experiment_id = run.info.experiment_id
            params = {key: value for key, value in params.items() if key not in run.data.params}
        else:
            self.experiment_id = experiment_id
            name = f"{config.model.split('/')[-1]}-mask{config.mask}-seed{config.seed}"
            self.parent_id = self.client.create_run(experiment_id, run_name=name).info.run_id
        self.client.log_batch(
            self.parent_id,
            params=[Param(key, value) for key, value in params.items()],
            tags=[RunTag(key, value) for key, value in tags.items()],
        )
        return self.parent_id

    def handle(self, event: Event) -> None:
        if isinstance(event, ImageStarted):
            self._start_image(event.task.image_id, event.task.original)
        elif isinstance(event, Checkpoint):
            self._log_checkpoint(event)
        elif isinstance(event, ImageFinished):
            self._finish_image(event.image_id)

    def finish(self, status: str = "FINISHED") -> None:
        """Aggregate over images, log the run's CSV and close every run with `status`."""
        for image_id in list(self.open_children):
            self.client.set_terminated(self.child_ids[image_id], status)
        self.open_children.clear()
        frame = self.frame()
        if not frame.empty:
            self._log_frame(self.parent_id, frame, "metrics.csv")
            if status == "FINISHED":
                self._log_aggregates(frame)
        self.client.set_terminated(self.parent_id, status)

    def frame(self) -> pd.DataFrame:
        """Every measured value: image_id, iteration, percent, metric, value."""
        return pd.DataFrame(self.rows, columns=["image_id", "iteration", "percent", "metric", "value"])

    def _start_image(self, image_id: str, original: np.ndarray) -> None:
        source = self.sources[image_id]
        run = self.client.create_run(
            self.experiment_id,
            run_name=image_id,
            tags={
                "mlflow.parentRunId": self.parent_id,
                KIND_TAG: "image",
                IMAGE_TAG: image_id,
                CONFIG_TAG: self.config.to_json(),
                "rip.image_origin": source.origin,
            },
        )
        self.child_ids[image_id] = run.info.run_id
        self.open_children.add(image_id)
        self.client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in self.params.items()])
        self._log_png(run.info.run_id, original, "original.png")

    def _log_checkpoint(self, checkpoint: Checkpoint) -> None:
        run_id = self.child_ids[checkpoint.image_id]
        timestamp = int(time.time() * 1000)
        metrics = [Metric(key, value, timestamp, checkpoint.percent) for key, value in checkpoint.values.items()]
        metrics.append(Metric("iteration", checkpoint.iteration, timestamp, checkpoint.percent))
        self.client.log_batch(run_id, metrics=metrics)
        self._log_png(run_id, checkpoint.image, f"generations/{checkpoint.percent:04d}.png")
        self.client.log_image(run_id, checkpoint.image, key="generation", step=checkpoint.percent)
        for key, value in checkpoint.values.items():
            self.rows.append(
                dict(image_id=checkpoint.image_id, iteration=checkpoint.iteration,
                     percent=checkpoint.percent, metric=key, value=value)
            )

    def _finish_image(self, image_id: str) -> None:
        run_id = self.child_ids[image_id]
        schedule = pd.DataFrame(
            [
                dict(iteration=i, row=s.row, col=s.col, top=s.top, left=s.left, size=s.mask)
                for i, s in enumerate(mask_schedule(self.config, image_id))
            ]
        )
        self._log_frame(run_id, schedule, "mask_schedule.csv")
        frame = self.frame()
        self._log_frame(run_id, frame[frame.image_id == image_id], "metrics.csv")
        self.client.set_terminated(run_id, "FINISHED")
        self.open_children.discard(image_id)

    def _log_aggregates(self, frame: pd.DataFrame) -> None:
        """Mean and standard deviation over images of each metric at each checkpoint."""
        timestamp = int(time.time() * 1000)
        stats = frame.groupby(["metric", "percent"])["value"].agg(["mean", "std"]).fillna(0.0)
        metrics = [
            Metric(f"{key}_{stat}", float(row[stat]), timestamp, int(percent))
            for (key, percent), row in stats.iterrows()
            for stat in ("mean", "std")
        ]
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(self.parent_id, metrics=metrics[start : start + 1000])

    def _log_png(self, run_id: str, image: np.ndarray, path: str) -> None:
        with tempfile.TemporaryDirectory() as folder:
            file = Path(folder) / Path(path).name
            Image.fromarray(image).save(file)
            self.client.log_artifact(run_id, str(file), str(Path(path).parent) if "/" in path else None)

    def _log_frame(self, run_id: str, frame: pd.DataFrame, name: str) -> None:
        with tempfile.TemporaryDirectory() as folder:
            file = Path(folder) / name
            frame.to_csv(file, index=False)
            self.client.log_artifact(run_id, str(file))


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"
