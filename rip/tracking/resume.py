"""Continue an interrupted parent run from the last completed checkpoint of each image."""

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from PIL import Image

from rip.config import FREE_FIELDS, RunConfig
from rip.metrics.complexity import COMPLEXITY_KEYS
from rip.protocol.engine import ImageTask
from rip.tracking.recorder import logged_steps
from rip.tracking.tags import CONFIG_TAG, GRID_KEY, IMAGE_TAG, KIND_TAG, LAUNCHER, PARENT_TAG, RESUMES_TAG, UI_IMAGE_KEY

# what must match for a resumed run to reproduce an uninterrupted one
VERSION_PARAMS = ("version_rip", "version_torch", "version_diffusers", "version_lpips", "version_stlpips-pytorch")


@dataclass
class ResumeState:
    """What an earlier attempt of a run left on the tracking server."""

    run_id: str
    experiment_id: str
    config: RunConfig
    child_ids: dict[str, str]
    finished: set[str]
    recorded: dict[str, dict[int, dict[str, float]]]  # image -> percent -> metric key -> value
    ui_steps: dict[str, set[int]]  # image -> steps of its UI images
    grid_steps: set[int]  # steps of the parent's image grids


def stored_config(client: MlflowClient, run_id: str) -> tuple[RunConfig, "object"]:
    """The configuration of parent run `run_id`; ValueError when it cannot be resumed."""
    try:
        run = client.get_run(run_id)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise ValueError(f"no run {run_id!r} on tracking server {client.tracking_uri}") from error
        raise
    kind = run.data.tags.get(KIND_TAG)
    if kind != "configuration" or CONFIG_TAG not in run.data.tags:
        raise ValueError(f"run {run_id} is not a configuration run of rip (kind: {kind or 'none'}); "
                         "resume the parent run, not an image run")
    if run.info.status == "FINISHED":
        raise ValueError(f"run {run_id} already finished: nothing to resume")
    return RunConfig.from_json(run.data.tags[CONFIG_TAG]), run


def check_compatible(run, config: RunConfig, stored: RunConfig, params: dict[str, str], given: set[str]) -> None:
    """Refuse a different configuration or code version: results would not continue the run."""
    differences = [
        f"{name} {getattr(config, name)!r} (run has {getattr(stored, name)!r})"
        for name in given
        if name not in FREE_FIELDS and getattr(config, name) != getattr(stored, name)
    ]
    if differences:
        raise ValueError(f"run {run.info.run_id} has a different configuration: {', '.join(sorted(differences))}")
    logged = run.data.params
    versions = [
        f"{key} {params[key]} (run has {logged[key]})"
        for key in (*VERSION_PARAMS, "code_commit")
        if key in logged and key in params and _code(logged[key]) != _code(params[key])
    ]
    if versions:
        raise ValueError(
            f"run {run.info.run_id} was made by another code version: {', '.join(versions)}; "
            "resume it with the code that started it"
        )


def mark_launcher(client: MlflowClient, run_id: str, resumed: str) -> None:
    """Tag `run_id`, the run `mlflow run -P resume=ID` made, as the launcher of the resumed run."""
    client.set_tag(run_id, KIND_TAG, LAUNCHER)
    client.set_tag(run_id, RESUMES_TAG, resumed)


def load_state(client: MlflowClient, run, config: RunConfig) -> ResumeState:
    """Children, finished images and every logged value of parent `run`."""
    run_id = run.info.run_id
    children = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{run_id}'", max_results=50000
    )
    keys = [name.replace("-", "_") for name in config.metrics] + ["iteration"]
    measured = ["coverage", "depth", *(COMPLEXITY_KEYS if config.complexity else ())]  # read where logged
    state = ResumeState(run_id, run.info.experiment_id, config, {}, set(), {}, {},
                        logged_steps(client, run_id, GRID_KEY))
    for child in children:
        image_id = child.data.tags.get(IMAGE_TAG)
        if image_id is None:
            continue
        state.child_ids[image_id] = child.info.run_id
        if child.info.status == "FINISHED":
            state.finished.add(image_id)
        logged = [key for key in measured if key in child.data.metrics]
        histories = {key: client.get_metric_history(child.info.run_id, key) for key in keys + logged}
        by_percent: dict[int, dict[str, float]] = {}
        for key, history in histories.items():
            for metric in history:
                by_percent.setdefault(metric.step, {})[key] = metric.value
        state.recorded[image_id] = {p: v for p, v in by_percent.items() if set(keys) <= set(v)}
        state.ui_steps[image_id] = logged_steps(client, child.info.run_id, UI_IMAGE_KEY)
    return state


def tasks_to_resume(client: MlflowClient, state: ResumeState, sources, originals, boxes=None) -> list[ImageTask]:
    """One task per unfinished image, from the last checkpoint every unfinished image completed.

    `boxes` (one per source, see `rip.images.Box`) say where each picture lies in its square.

    Images in progress resume together from their common checkpoint, so with the same batch size
    they share inpainter calls exactly as in an uninterrupted run (batched diffusion results
    depend on the batch within float tolerance); checkpoints already logged are not logged again.
    """
    in_progress = [s.id for s in sources if s.id in state.child_ids and s.id not in state.finished]
    common = min((max(state.recorded.get(image) or [0]) for image in in_progress), default=0)
    tasks = []
    for source, original, box in zip(sources, originals, boxes or [None] * len(sources)):
        if source.id in state.finished:
            continue
        if source.id in in_progress and common > 0:
            image = _generation(client, state.child_ids[source.id], common)
            iteration = round(state.recorded[source.id][common]["iteration"])
            tasks.append(ImageTask(source.id, original, current=image, iteration=iteration, box=box))
        else:
            tasks.append(ImageTask(source.id, original, box=box))
    return tasks


def with_free_fields(stored: RunConfig, config: RunConfig, given=FREE_FIELDS) -> RunConfig:
    """The stored configuration with this attempt's batch size, device and experiment, where given."""
    return dataclasses.replace(stored, **{name: getattr(config, name) for name in FREE_FIELDS if name in given})


def _generation(client: MlflowClient, run_id: str, percent: int) -> np.ndarray:
    with tempfile.TemporaryDirectory() as folder:
        path = client.download_artifacts(run_id, f"generations/{percent:04d}.png", folder)
        return np.asarray(Image.open(Path(path)).convert("RGB"))


def _code(version: str) -> str:
    return version.removesuffix("+dirty")


def find_unfinished(client: MlflowClient, config: RunConfig) -> str | None:
    """The newest unfinished parent run of the same configuration in its experiment, if any."""
    from rip.tracking.recorder import DEFAULT_EXPERIMENT

    experiment = client.get_experiment_by_name(config.experiment or DEFAULT_EXPERIMENT)
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{KIND_TAG}` = 'configuration' and attributes.status != 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=200,
    )
    wanted = with_free_fields(config, config)
    for run in runs:
        stored = RunConfig.from_json(run.data.tags[CONFIG_TAG])
        if with_free_fields(stored, config) == wanted:
            return run.info.run_id
    return None
