"""The recursive loop: inpaint a random square, feed the output back in, measure at checkpoints.

The engine knows nothing of MLflow: it yields events that a recorder turns into runs.
"""

from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from rip.config import RunConfig
from rip.inpainters import LOADED_FROM, inpainter_key
from rip.inpainters.base import Inpainter, to_arrays, to_batch
from rip.metrics import Metric
from rip.protocol.masks import Square, cell_counts, coverage_depth, square_for
from rip.protocol.seeding import derive_seed

PIPELINE_FIELDS = (*LOADED_FROM, "size")
"""What one inpainter call depends on: configurations sharing an engine agree on all of these."""


def pipeline_key(config: RunConfig) -> tuple:
    """Configurations with equal keys can share one inpainter call, hence one engine
    (`RecursiveInpainting.shared`); with `compile`, also the (static) batch size."""
    return inpainter_key(config) + (config.size,)


@dataclass
class ImageTask:
    """One image's recursion. `current` is the generation after `iteration` inpaintings.

    `key` names the task's configuration in a shared engine (None with one configuration).
    While the engine runs, the generation lives on the inpainter's device; `current` is
    updated at every checkpoint. `box` = (top, left, height, width) is where the picture lies
    in its letterboxed square (`rip.images.Box`; None: all of it), passed on to its
    checkpoints. `counts` says how often each grid square was inpainted so far (None: from the mask
    schedule when needed).
    """

    image_id: str
    original: np.ndarray
    current: np.ndarray | None = None
    iteration: int = 0
    key: Hashable = None
    box: tuple[int, int, int, int] | None = None
    counts: np.ndarray | None = None

    def __post_init__(self):
        if self.current is None:
            self.current = self.original


@dataclass(frozen=True)
class ImageStarted:
    task: ImageTask

    @property
    def key(self) -> Hashable:
        return self.task.key


@dataclass(frozen=True)
class Checkpoint:
    """A measurement: the generation after `iteration` inpaintings, `percent` % of pixels.

    `values` holds every metric (by key) and the generation's `coverage` and `depth` (see
    `rip.protocol.masks.coverage_depth`). `box` is where the picture lies in the square (see
    `ImageTask`): the recorder measures its complexity there (`rip.metrics.complexity`), off the
    engine's thread.
    """

    image_id: str
    iteration: int
    percent: int
    image: np.ndarray  # uint8 (H, W, 3), on the host
    values: dict[str, float]
    key: Hashable = None  # the task's configuration
    box: tuple[int, int, int, int] | None = None


@dataclass(frozen=True)
class ImageFinished:
    image_id: str
    key: Hashable = None


@dataclass(frozen=True)
class ImageFailed:
    """The inpainter gave no usable output for this image at `iteration`: its recursion stops."""

    image_id: str
    iteration: int
    reason: str
    key: Hashable = None


Event = ImageStarted | Checkpoint | ImageFinished | ImageFailed


@dataclass(frozen=True)
class _Configuration:
    config: RunConfig
    metrics: tuple[Metric, ...]


@dataclass(eq=False)
class _Recursion:
    """A task in progress: its configuration and its generation on the inpainter's device."""

    task: ImageTask
    setting: _Configuration
    current: torch.Tensor  # uint8 (3, H, W)


class RecursiveInpainting:
    """Runs the protocol of one or several configurations, `batch_size` images per inpainter call.

    One configuration: `RecursiveInpainting(config, inpainter, metrics).run(tasks)`, with
    `config.batch_size` images per call. Several that share a model (equal `pipeline_key`):
    `RecursiveInpainting.shared({key: (config, metrics), ...}, inpainter, batch_size=...)`,
    whose calls mix the unfinished images of every configuration; tasks name their
    configuration in `ImageTask.key`, and every event carries that `key` so a caller can route
    it to the configuration's recorder. Results equal running each configuration alone.

    Images join the batch as others finish, so tasks resumed at different iterations share
    calls. An image the inpainter fails (see `InpaintingFailure`) stops with `ImageFailed`; the
    others go on. Every random choice derives from (seed, image id, iteration, the run's
    conditions): results do not depend on the order of the images, nor on the batch or the
    other configurations in it (for diffusion backends: within float tolerance, one level of
    255 at most). Generations stay on the inpainter's device between checkpoints.
    """

    def __init__(self, config: RunConfig, inpainter: Inpainter, metrics: Sequence[Metric], progress: bool = True):
        self.inpainter = inpainter
        self.progress = progress
        self.batch_size = config.batch_size
        self.configurations = {None: _Configuration(config, tuple(metrics))}

    @classmethod
    def shared(
        cls,
        configurations: Mapping[Hashable, tuple[RunConfig, Sequence[Metric]]],
        inpainter: Inpainter,
        *,
        batch_size: int | None = None,
        progress: bool = True,
    ) -> "RecursiveInpainting":
        """An engine over several configurations, keyed as their tasks' `ImageTask.key`.

        Every configuration must have the same `pipeline_key` (the inpainter's); `batch_size`
        defaults to the largest of theirs.
        """
        if not configurations:
            raise ValueError("shared needs at least one configuration")
        keys = {pipeline_key(config) for config, _ in configurations.values()}
        if len(keys) > 1:
            first = next(iter(configurations.values()))[0]
            fields = (*PIPELINE_FIELDS, "batch_size") if first.compile else PIPELINE_FIELDS
            differing = sorted({
                name for config, _ in configurations.values() for name in fields
                if getattr(config, name) != getattr(first, name)
            })
            raise ValueError(f"configurations of one engine must share the pipeline call; they differ in {', '.join(differing)}")
        first, metrics = next(iter(configurations.values()))
        engine = cls(first, inpainter, metrics, progress)
        engine.configurations = {key: _Configuration(config, tuple(metrics)) for key, (config, metrics) in configurations.items()}
        engine.batch_size = batch_size or max(config.batch_size for config, _ in configurations.values())
        return engine

    def run(self, tasks: Iterable[ImageTask]) -> Iterator[Event]:
        """Yield ImageStarted, Checkpoint, ImageFinished and ImageFailed events as the recursion proceeds."""
        tasks = self._checked(tasks)
        remaining = sum(self.configurations[task.key].config.total_iterations - task.iteration for task in tasks)
        pending = iter(tasks)
        active: list[_Recursion] = []
        with tqdm(total=remaining, unit="inpainting", disable=not self.progress) as bar:
            while True:
                while len(active) < self.batch_size and (task := next(pending, None)):
                    setting = self.configurations[task.key]
                    yield ImageStarted(task)
                    if task.iteration == 0:
                        yield from self._measure([task])
                    if task.iteration >= setting.config.total_iterations:
                        yield ImageFinished(task.image_id, task.key)
                        continue
                    current = to_batch([task.current], self.inpainter.device)[0]
                    self._count(task)
                    active.append(_Recursion(task, setting, current))
                if not active:
                    return
                for item, reason in self._step(active):
                    active.remove(item)
                    yield ImageFailed(item.task.image_id, item.task.iteration, reason, item.task.key)
                bar.update(len(active))
                reached = [item for item in active if item.task.iteration % item.setting.config.iterations_per_step == 0]
                if reached:
                    for item, array in zip(reached, to_arrays(torch.stack([item.current for item in reached]))):
                        item.task.current = array
                    yield from self._measure([item.task for item in reached])
                for item in reached:
                    if item.task.iteration == item.setting.config.total_iterations:
                        active.remove(item)
                        yield ImageFinished(item.task.image_id, item.task.key)

    def _checked(self, tasks: Iterable[ImageTask]) -> list[ImageTask]:
        """The tasks, each of a known configuration and present once."""
        tasks = list(tasks)
        unknown = sorted({repr(task.key) for task in tasks if task.key not in self.configurations})
        if unknown:
            raise ValueError(f"tasks of unknown configurations: {', '.join(unknown)}")
        seen = set()
        for task in tasks:
            if (task.key, task.image_id) in seen:
                raise ValueError(f"image {task.image_id!r} of configuration {task.key!r} appears twice")
            seen.add((task.key, task.image_id))
        return tasks

    def _step(self, items: list[_Recursion]) -> list[tuple[_Recursion, str]]:
        """One inpainting of every task's next square; return the tasks that failed, with why."""
        squares, seeds = [], []
        for item in items:
            config, task = item.setting.config, item.task
            squares.append(square_for(config, task.image_id, task.iteration))
            seeds.append(derive_seed(config.seed, task.image_id, task.iteration, "noise", config.draw_key))
        images = torch.stack([item.current for item in items])
        masks = square_masks(squares, images.shape[-1], images.device)
        outputs, failures = self.inpainter.inpaint_batch(images, masks, seeds)
        failed = []
        for item, square, output, failure in zip(items, squares, outputs, failures):
            if failure is not None:
                failed.append((item, f"{item.task.image_id}, iteration {item.task.iteration + 1}: {failure.reason}"))
                continue
            item.current = output
            item.task.iteration += 1
            item.task.counts[square.row, square.col] += 1
        return failed

    def _count(self, task: ImageTask) -> np.ndarray:
        """The task's `counts`, from its mask schedule when it has none yet."""
        if task.counts is None:
            task.counts = cell_counts(self.configurations[task.key].config, task.image_id, task.iteration)
        return task.counts

    def _measure(self, tasks: list[ImageTask]) -> Iterator[Checkpoint]:
        """Every metric of its configuration on every task's current generation, batched per configuration."""
        values: dict[int, dict[str, float]] = {}
        for key, setting in self.configurations.items():
            indices = [index for index, task in enumerate(tasks) if task.key == key]
            if not indices:
                continue
            originals = to_tensor([tasks[index].original for index in indices])
            generations = to_tensor([tasks[index].current for index in indices])
            columns = {metric.key: metric(originals, generations) for metric in setting.metrics}
            for row, index in enumerate(indices):
                task = tasks[index]
                values[index] = {name: float(column[row]) for name, column in columns.items()}
                values[index].update(zip(("coverage", "depth"), coverage_depth(self._count(task))))
        for index, task in enumerate(tasks):
            yield Checkpoint(
                image_id=task.image_id,
                iteration=task.iteration,
                percent=round(self.configurations[task.key].config.percent_after(task.iteration)),
                image=task.current,
                values=values[index],
                key=task.key,
                box=task.box,
            )


def square_masks(squares: Sequence[Square], size: int, device: torch.device | str) -> torch.Tensor:
    """Boolean (N, size, size) masks on `device`, True inside each square."""
    corners = torch.tensor([[square.top, square.left, square.mask] for square in squares], device=device)
    top, left, side = (corners[:, column, None] for column in range(3))
    pixels = torch.arange(size, device=device)
    rows = (pixels >= top) & (pixels < top + side)
    cols = (pixels >= left) & (pixels < left + side)
    return rows[:, :, None] & cols[:, None, :]


def to_tensor(images: Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 (H, W, 3) arrays -> float32 (N, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div(255)
