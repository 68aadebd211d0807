"""Everything MLflow: a parent run per configuration, a nested child run per image.

Metrics are logged at step = percent inpainted; values go in batches (one request per image
and checkpoint), since a remote server answers each request in tens of milliseconds. Every
checkpoint is written to a local spool first and its metrics are logged last, so a checkpoint
whose metrics are on the server is complete, and one that is not can be redone or uploaded.

Once an image run reaches its last checkpoint, it logs `animation.webp`: its checkpoints as an
animated WebP (`rip.images.animation`), from copies kept as they are logged or, for checkpoints an
earlier attempt logged, from its `generations/`; and `animation.html`, the same embedded in a page,
which the MLflow UI's artifact view plays (it previews no WebP).

For the MLflow UI's step slider, each image run logs its generations with `log_image` under key
`generation` (step = percent, the original at 0), and the parent run a grid of every image's
generation under key `generation_grid` once every image reached that percent.
"""

import logging
import os
import shutil
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
from rip.images import SourceImage
from rip.images.animation import checkpoint_animation, frame_image
from rip.inpainters.base import Inpainter
from rip.protocol.engine import Checkpoint, Event, ImageFailed, ImageFinished, ImageStarted
from rip.protocol.masks import mask_schedule
from rip.tracking.lineage import log_inputs
from rip.tracking.resilience import Retrying
from rip.tracking.spool import Spool
from rip.tracking.tags import (ANIMATION_ARTIFACT, ANIMATION_PAGE_ARTIFACT, CONFIG_TAG, FAILURE_TAG, GRID_KEY, IMAGE_ORIGIN_TAG, IMAGE_TAG,
                               KIND_TAG, LABEL_TAG, PARENT_TAG, PROJECT_TAG, RUN_NAME_TAG, UI_IMAGE_KEY)
from rip.tracking.ui import animation_page, configuration_name, grid_side, image_grid, image_name

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "recursive-inpainting"
PACKAGES = ("torch", "diffusers", "transformers", "mlflow", "lpips", "stlpips-pytorch", "numpy", "pillow")


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


def run_params(config: RunConfig, inpainter: Inpainter, device: str, environment: dict[str, str]) -> dict[str, str]:
    """A configuration run's parameters: the configuration, the inpainter's resolved settings, the
    device it ran on and `environment` (`environment_params()`, computed once per process or sweep)."""
    params = {**config.as_params(), **inpainter.params(), **environment}
    params.setdefault("resolved_device", device)
    return params


def code_commit() -> str:
    """The git commit of the code being run ('+dirty' with local changes), or 'unknown'."""
    root = Path(__file__).resolve().parents[2]  # the repository holding the rip package
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
    """Turns engine events into MLflow runs and files.

    `recorded` holds, per image, the percents whose metrics are already on the server (from an
    earlier attempt of a resumed run): those checkpoints are not logged twice.
    """

    def __init__(
        self,
        client: MlflowClient,
        config: RunConfig,
        sources: list[SourceImage],
        params: dict[str, str],
        *,
        spool_root: Path,
        retrying: Retrying | None = None,
        model_files: dict | None = None,
    ):
        self.client = client
        self.model_files = model_files
        self.config = config
        self.sources = {source.id: source for source in sources}
        self.params = params
        self.spool_root = Path(spool_root)
        self.call = retrying or Retrying()
        self.parent_id = ""
        self.experiment_id = ""
        self.spool: Spool | None = None
        self.child_ids: dict[str, str] = {}
        self.open_children: set[str] = set()
        self.recorded: dict[str, dict[int, dict[str, float]]] = {}
        self.ui_steps: dict[str, set[int]] = {}
        self.grid_steps: set[int] = set()  # percents whose grid the parent run has
        self.thumbnails: dict[int, dict[str, np.ndarray]] = {}  # percent -> image -> small copy, for grids
        self.frames: dict[str, dict[int, Image.Image]] = {}  # image -> percent -> frame, for its animation
        self.failures: list[str] = []  # why images failed, for the run's final message
        self.failed_images: set[str] = set()

    # -- parent run ---------------------------------------------------------------------------

    def start(self, experiment_id: str, run_id: str | None, tags: dict[str, str]) -> str:
        """Create the parent run (or adopt `run_id`, e.g. the one `mlflow run` made) and log the configuration
        and its inputs (the image set and the model, see `rip.tracking.lineage`)."""
        config = self.config
        tags = {KIND_TAG: "configuration", CONFIG_TAG: config.to_json(), **tags}
        params = self.params
        if run_id:
            # `mlflow run` already logged the entry point's parameters, shell-quoted
            run = self.call(self.client.get_run, run_id)
            self.experiment_id = run.info.experiment_id
            params = {key: value for key, value in params.items() if key not in run.data.params}
            if PROJECT_TAG in run.data.tags:
                tags.setdefault(RUN_NAME_TAG, configuration_name(config))
        else:
            self.experiment_id = experiment_id
            name = tags.pop(RUN_NAME_TAG, None) or configuration_name(config)
            run_id = self.call(self.client.create_run, experiment_id, run_name=name).info.run_id
        self.parent_id = run_id
        self.spool = Spool(self.spool_root, run_id)
        self.call(
            self.client.log_batch,
            run_id,
            params=[Param(key, value) for key, value in params.items()],
            tags=[RunTag(key, value) for key, value in tags.items()],
        )
        log_inputs(self.client, self.call, self.experiment_id, run_id, config.images, list(self.sources.values()),
                   self.model_files)
        return run_id

    def adopt(self, run_id: str, experiment_id: str, child_ids: dict[str, str],
              recorded: dict[str, dict[int, dict[str, float]]], ui_steps: dict[str, set[int]],
              grid_steps: set[int]) -> None:
        """Continue an existing parent run whose children, logged values and UI images are known."""
        self.parent_id = run_id
        self.experiment_id = experiment_id
        self.spool = Spool(self.spool_root, run_id)
        self.child_ids = dict(child_ids)
        self.recorded = {image: dict(values) for image, values in recorded.items()}
        self.ui_steps = {image: set(steps) for image, steps in ui_steps.items()}
        self.grid_steps = set(grid_steps)
        self.call(self.client.update_run, run_id, status="RUNNING")

    def upload_spool(self, originals: dict[str, np.ndarray]) -> int:
        """Log every spooled checkpoint the server does not have yet; return how many."""
        uploaded = 0
        for entry in self.spool.entries():
            if entry.image_id not in self.sources:
                continue
            self._ensure_child(entry.image_id, originals[entry.image_id])
            if entry.percent not in self.recorded.get(entry.image_id, {}):
                self._upload(entry.image_id, entry.percent, entry.iteration, entry.values, entry.image(),
                             entry.image_path)
                uploaded += 1
            self.spool.remove(entry.image_id, entry.percent)
        return uploaded

    def log_run_metrics(self, values: dict[str, float], step: int = 0) -> None:
        """Metrics of the configuration run itself (e.g. its `perf/` figures), at `step`."""
        timestamp = int(time.time() * 1000)
        self.call(self.client.log_batch, self.parent_id,
                  metrics=[Metric(key, value, timestamp, step) for key, value in values.items()])

    def finish(self, status: str = "FINISHED") -> None:
        """Aggregate over images, log the run's CSV and close every open run with `status`."""
        self._log_complete_grids()
        for image_id in list(self.open_children):
            self.call(self.client.set_terminated, self.child_ids[image_id], status)
        self.open_children.clear()
        frame = self.frame()
        if not frame.empty:
            self._log_frame(self.parent_id, frame, "metrics.csv")
            if status == "FINISHED":
                self._log_aggregates(frame)
        self.call(self.client.set_terminated, self.parent_id, status)
        if status == "FINISHED":
            self.spool.clear()

    def frame(self) -> pd.DataFrame:
        """Every measured value: image_id, iteration, percent, metric, value."""
        rows = [
            dict(image_id=image_id, iteration=round(values["iteration"]), percent=percent, metric=key, value=value)
            for image_id, by_percent in self.recorded.items()
            for percent, values in sorted(by_percent.items())
            for key, value in values.items()
            if key != "iteration"
        ]
        frame = pd.DataFrame(rows, columns=["image_id", "iteration", "percent", "metric", "value"])
        return frame.sort_values(["image_id", "percent", "metric"], ignore_index=True)

    # -- events -------------------------------------------------------------------------------

    def handle(self, event: Event) -> None:
        if isinstance(event, ImageStarted):
            self._ensure_child(event.task.image_id, event.task.original)
        elif isinstance(event, Checkpoint):
            self._log_checkpoint(event)
        elif isinstance(event, ImageFinished):
            self._finish_image(event.image_id)
        elif isinstance(event, ImageFailed):
            self._fail_image(event)

    def _ensure_child(self, image_id: str, original: np.ndarray) -> None:
        """Create the image's child run, or reopen the one an earlier attempt created."""
        if image_id in self.open_children:
            return
        if image_id in self.child_ids:
            self.call(self.client.update_run, self.child_ids[image_id], status="RUNNING")
        else:
            source = self.sources[image_id]
            run = self.call(
                self.client.create_run,
                self.experiment_id,
                run_name=image_name(image_id, self.config),
                tags={
                    PARENT_TAG: self.parent_id,
                    KIND_TAG: "image",
                    IMAGE_TAG: image_id,
                    **{f"{LABEL_TAG}.{name}": value for name, value in source.labels},
                    CONFIG_TAG: self.config.to_json(),
                    IMAGE_ORIGIN_TAG: source.origin,
                },
            )
            self.child_ids[image_id] = run.info.run_id
            self.call(self.client.log_batch, run.info.run_id, params=[Param(k, v) for k, v in self.params.items()])
            self._log_png(run.info.run_id, original, "original.png")
        self.open_children.add(image_id)

    def _log_checkpoint(self, checkpoint: Checkpoint) -> None:
        logged = self.recorded.get(checkpoint.image_id, {}).get(checkpoint.percent)
        if logged is not None:
            _warn_if_different(checkpoint, logged)
            return
        self.spool.add(checkpoint.image_id, checkpoint.percent, checkpoint.iteration, checkpoint.values,
                       checkpoint.image)
        png = self.spool.folder / checkpoint.image_id / f"{checkpoint.percent:04d}" / "generation.png"
        self._upload(checkpoint.image_id, checkpoint.percent, checkpoint.iteration, checkpoint.values,
                     checkpoint.image, png)
        self.spool.remove(checkpoint.image_id, checkpoint.percent)
        self._log_complete_grids()

    def _upload(self, image_id: str, percent: int, iteration: int, values: dict[str, float], image: np.ndarray,
                png: Path) -> None:
        """Images first, metrics last: metrics on the server mark a complete checkpoint.

        `png` is the spooled PNG of `image`: uploaded as it is, not encoded again.
        """
        run_id = self.child_ids[image_id]
        self._log_file(run_id, png, f"generations/{percent:04d}.png")
        if percent not in self.ui_steps.setdefault(image_id, set()):
            self._log_ui_image(run_id, UI_IMAGE_KEY, image, percent)
            self.ui_steps[image_id].add(percent)
        timestamp = int(time.time() * 1000)
        metrics = [Metric(key, value, timestamp, percent) for key, value in values.items()]
        metrics.append(Metric("iteration", iteration, timestamp, percent))
        self.call(self.client.log_batch, run_id, metrics=metrics)
        self.recorded.setdefault(image_id, {})[percent] = {**values, "iteration": iteration}
        if percent not in self.grid_steps:
            side = grid_side(len(self.sources), self.config.size)
            small = Image.fromarray(image).resize((side, side), Image.LANCZOS)
            self.thumbnails.setdefault(percent, {})[image_id] = np.asarray(small)
        if self.config.animation:
            self.frames.setdefault(image_id, {})[percent] = frame_image(image)

    def _log_complete_grids(self) -> None:
        """Log the parent's grid of every percent that each image (but failed ones) reached."""
        images = [image_id for image_id in self.sources if image_id not in self.failed_images]
        for percent in self.config.checkpoints if images else ():
            if percent in self.grid_steps or not all(percent in self.recorded.get(i, {}) for i in images):
                continue
            thumbnails = self.thumbnails.pop(percent, {})
            side = grid_side(len(self.sources), self.config.size)
            grid = image_grid([thumbnails.get(i) if i in thumbnails else self._generation(i, percent, side)
                               for i in images], side)
            self._log_ui_image(self.parent_id, GRID_KEY, grid, percent)
            self.grid_steps.add(percent)

    def _generation(self, image_id: str, percent: int, side: int) -> np.ndarray:
        """An image's generation at `percent` from its run (logged by an earlier attempt), `side` px."""
        return np.asarray(self._logged_generation(image_id, percent).resize((side, side), Image.LANCZOS))

    def _logged_generation(self, image_id: str, percent: int) -> Image.Image:
        """An image's generation at `percent`, as its run has it."""
        with tempfile.TemporaryDirectory() as local:
            path = self.call(self.client.download_artifacts, self.child_ids[image_id],
                             f"generations/{percent:04d}.png", local)
            with Image.open(path) as image:
                return image.convert("RGB")

    def _log_animation(self, image_id: str) -> None:
        """`animation.webp` and `animation.html` of an image run that reached its last checkpoint."""
        frames = self.frames.pop(image_id, {})
        for percent in self.config.checkpoints:
            if percent not in frames:  # logged by an earlier attempt
                frames[percent] = frame_image(self._logged_generation(image_id, percent))
        webp = checkpoint_animation(frames[0], frames)
        with tempfile.TemporaryDirectory() as local:
            (Path(local) / ANIMATION_ARTIFACT).write_bytes(webp)
            title = f"{image_name(image_id, self.config)}: 0 to {self.config.percent} % inpainted"
            page = animation_page(webp, title)
            (Path(local) / ANIMATION_PAGE_ARTIFACT).write_text(page, encoding="utf-8")
            self.call(self.client.log_artifacts, self.child_ids[image_id], local)

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
        if self.config.animation:
            self._log_animation(image_id)
        self.call(self.client.set_terminated, run_id, "FINISHED")
        self.open_children.discard(image_id)

    def _fail_image(self, event: ImageFailed) -> None:
        """The image's run ends FAILED with the reason; what it logged so far stays."""
        run_id = self.child_ids[event.image_id]
        self.call(self.client.set_tag, run_id, FAILURE_TAG, event.reason)
        self.call(self.client.set_terminated, run_id, "FAILED")
        self.open_children.discard(event.image_id)
        self.frames.pop(event.image_id, None)
        self.failures.append(event.reason)
        self.failed_images.add(event.image_id)
        self._log_complete_grids()

    def _log_aggregates(self, frame: pd.DataFrame) -> None:
        """Mean and sample standard deviation over images of each metric at each checkpoint."""
        timestamp = int(time.time() * 1000)
        stats = frame.groupby(["metric", "percent"])["value"].agg(["mean", "std"]).fillna(0.0)
        metrics = [
            Metric(f"{key}_{stat}", float(row[stat]), timestamp, int(percent))
            for (key, percent), row in stats.iterrows()
            for stat in ("mean", "std")
        ]
        for start in range(0, len(metrics), 1000):
            self.call(self.client.log_batch, self.parent_id, metrics=metrics[start : start + 1000])

    def _log_ui_image(self, run_id: str, key: str, image: np.ndarray, step: int) -> None:
        """`log_image(key=..., step=...)`, for the UI's step slider; a retried attempt first checks
        whether an earlier one already logged the step, so an outage never leaves two."""
        attempts = 0

        def attempt() -> None:
            nonlocal attempts
            attempts += 1
            if attempts > 1 and step in logged_steps(self.client, run_id, key):
                return
            self.client.log_image(run_id, image, key=key, step=step, synchronous=True)

        self.call(attempt)

    def _log_png(self, run_id: str, image: np.ndarray, path: str) -> None:
        folder, name = os.path.split(path)
        with tempfile.TemporaryDirectory() as local:
            Image.fromarray(image).save(Path(local) / name)
            self.call(self.client.log_artifact, run_id, str(Path(local) / name), folder or None)

    def _log_file(self, run_id: str, file: Path, path: str) -> None:
        """Upload `file` as artifact `path` (a link under that name, no copy where the disk allows)."""
        folder, name = os.path.split(path)
        with tempfile.TemporaryDirectory() as local:
            try:
                os.link(file, Path(local) / name)
            except OSError:
                shutil.copyfile(file, Path(local) / name)
            self.call(self.client.log_artifact, run_id, str(Path(local) / name), folder or None)

    def _log_frame(self, run_id: str, frame: pd.DataFrame, name: str) -> None:
        with tempfile.TemporaryDirectory() as local:
            frame.to_csv(Path(local) / name, index=False)
            self.call(self.client.log_artifact, run_id, str(Path(local) / name))


def logged_steps(client: MlflowClient, run_id: str, key: str) -> set[int]:
    """Steps at which `log_image` logged image `key` in the run (its file names say `KEY+step+N+`)."""
    prefix = f"{key.replace('/', '~')}+step+"
    return {
        int(name.removeprefix(prefix).split("+")[0])
        for name in (Path(artifact.path).name for artifact in client.list_artifacts(run_id, "images"))
        if name.startswith(prefix) and name.endswith(".png")
    }


def _warn_if_different(checkpoint: Checkpoint, logged: dict[str, float]) -> None:
    """A redone checkpoint should reproduce the logged values exactly."""
    for key, value in checkpoint.values.items():
        if key in logged and not np.isclose(logged[key], value, rtol=1e-6, atol=1e-9):
            log.warning("%s at %d%%: %s recomputed as %r, logged %r", checkpoint.image_id,
                        checkpoint.percent, key, value, logged[key])


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"
