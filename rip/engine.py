"""The recursive loop: inpaint a random square, feed the output back in, measure at checkpoints.

The engine knows nothing of MLflow: it yields events that a recorder turns into runs.
"""

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from rip.config import RunConfig
from rip.inpainters.base import Inpainter, InpaintingFailure
from rip.masks import square_for
from rip.metrics import Metric
from rip.seeding import derive_seed


@dataclass
class ImageTask:
    """One image's recursion. `current` is the generation after `iteration` inpaintings."""

    image_id: str
    original: np.ndarray
    current: np.ndarray | None = None
    iteration: int = 0

    def __post_init__(self):
        if self.current is None:
            self.current = self.original


@dataclass(frozen=True)
class ImageStarted:
    task: ImageTask


@dataclass(frozen=True)
class Checkpoint:
    """A measurement: the generation after `iteration` inpaintings, `percent` % of pixels."""

    image_id: str
    iteration: int
    percent: int
    image: np.ndarray
    values: dict[str, float]


@dataclass(frozen=True)
class ImageFinished:
    image_id: str


@dataclass(frozen=True)
class ImageFailed:
    """The inpainter gave no usable output for this image at `iteration`: its recursion stops."""

    image_id: str
    iteration: int
    reason: str


Event = ImageStarted | Checkpoint | ImageFinished | ImageFailed


class RecursiveInpainting:
    """Runs `config`'s protocol over many images, `config.batch_size` per inpainter call.

    Images join the batch as others finish, so tasks resumed at different iterations share
    calls. An image the inpainter fails (see `InpaintingFailure`) stops with `ImageFailed`; the
    others go on. Every random choice derives from (seed, image id, iteration): results do not depend
    on the order of the images, nor on the batch size (for diffusion backends: within float
    tolerance, one level of 255 at most).
    """

    def __init__(self, config: RunConfig, inpainter: Inpainter, metrics: Sequence[Metric], progress: bool = True):
        self.config = config
        self.inpainter = inpainter
        self.metrics = list(metrics)
        self.progress = progress

    def run(self, tasks: Iterable[ImageTask]) -> Iterator[Event]:
        """Yield ImageStarted, Checkpoint and ImageFinished events as the recursion proceeds."""
        tasks = list(tasks)
        total = self.config.total_iterations
        remaining = sum(total - task.iteration for task in tasks)
        pending = iter(tasks)
        active: list[ImageTask] = []
        with tqdm(total=remaining, unit="inpainting", disable=not self.progress) as bar:
            while True:
                while len(active) < self.config.batch_size and (task := next(pending, None)):
                    yield ImageStarted(task)
                    if task.iteration == 0:
                        yield from self._measure([task])
                    if task.iteration >= total:
                        yield ImageFinished(task.image_id)
                        continue
                    active.append(task)
                if not active:
                    return
                for task, reason in self._step(active):
                    active.remove(task)
                    yield ImageFailed(task.image_id, task.iteration, reason)
                bar.update(len(active))
                reached = [task for task in active if task.iteration % self.config.iterations_per_step == 0]
                yield from self._measure(reached)
                for task in reached:
                    if task.iteration == total:
                        active.remove(task)
                        yield ImageFinished(task.image_id)

    def _step(self, tasks: list[ImageTask]) -> list[tuple[ImageTask, str]]:
        """One inpainting of every task's next square; return the tasks that failed, with why."""
        config = self.config
        masks = [
            square_for(config, task.image_id, task.iteration).to_array(config.size) for task in tasks
        ]
        seeds = [derive_seed(config.seed, task.image_id, task.iteration, "noise", config.draw_key) for task in tasks]
        outputs = self.inpainter.inpaint([task.current for task in tasks], masks, seeds)
        failed = []
        for task, output in zip(tasks, outputs):
            if isinstance(output, InpaintingFailure):
                failed.append((task, f"{task.image_id}, iteration {task.iteration + 1}: {output.reason}"))
                continue
            task.current = output
            task.iteration += 1
        return failed

    def _measure(self, tasks: list[ImageTask]) -> Iterator[Checkpoint]:
        """Every metric on every task's current generation, batched."""
        if not tasks:
            return
        originals = to_tensor([task.original for task in tasks])
        generations = to_tensor([task.current for task in tasks])
        values = {metric.key: metric(originals, generations) for metric in self.metrics}
        for index, task in enumerate(tasks):
            yield Checkpoint(
                image_id=task.image_id,
                iteration=task.iteration,
                percent=round(self.config.percent_after(task.iteration)),
                image=task.current,
                values={key: float(column[index]) for key, column in values.items()},
            )


def to_tensor(images: Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 (H, W, 3) arrays -> float32 (N, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div(255)
