"""The interface every inpainting backend implements."""

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch


@dataclass(frozen=True)
class InpaintingFailure:
    """Why one image of a batch has no output."""

    reason: str


class Inpainted(NamedTuple):
    """A batch's outputs: uint8 (N, 3, H, W) on the inpainter's device, and each image's failure or None.

    The rows of failed images hold no meaningful pixels.
    """

    images: torch.Tensor
    failures: list[InpaintingFailure | None]


class Inpainter(ABC):
    """Fills masked pixels of RGB images.

    Two entry points over the same computation:

    - `inpaint`: uint8 arrays (H, W, 3) and boolean masks (H, W), True where pixels are to be
      inpainted; one uint8 array (or `InpaintingFailure`) per image.
    - `inpaint_batch`: a uint8 tensor (N, 3, H, W) and a boolean tensor (N, H, W), both on
      `device`; an `Inpainted`. The recursive loop uses it so that images stay on the device.

    One seed per image makes each result independent of its batch. An output that must not
    become pixels (not finite, withheld by a safety checker) is an `InpaintingFailure` in that
    image's place. A backend implements `inpaint`; by default `inpaint_batch` converts to it.
    """

    name: str
    device = torch.device("cpu")  # where `inpaint_batch` takes and gives its tensors

    @abstractmethod
    def inpaint(
        self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray], seeds: Sequence[int]
    ) -> list["np.ndarray | InpaintingFailure"]:
        """Return one inpainted uint8 image (or failure) per input image."""

    def inpaint_batch(self, images: torch.Tensor, masks: torch.Tensor, seeds: Sequence[int]) -> Inpainted:
        """`inpaint` on tensors (see the class docstring); this default converts at the boundary."""
        outputs = self.inpaint(list(to_arrays(images)), list(masks.cpu().numpy()), seeds)
        failures = [output if isinstance(output, InpaintingFailure) else None for output in outputs]
        arrays = [image if failure else output for image, output, failure in zip(to_arrays(images), outputs, failures)]
        return Inpainted(to_batch(arrays, images.device), failures)

    def params(self) -> dict[str, str]:
        """Resolved settings worth logging with the run (device, dtype, revision, ...)."""
        return {}

    def tags(self) -> dict[str, str]:
        """Tags worth setting on the run."""
        return {}

    def model_files(self) -> dict | None:
        """What the model's weights are (files, SHA-256, commit), JSON-ready; None for a backend without weights."""
        return None


def to_batch(arrays: Sequence[np.ndarray], device: torch.device | str) -> torch.Tensor:
    """uint8 (H, W, 3) arrays -> a uint8 (N, 3, H, W) tensor on `device`."""
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous().to(device)


def to_arrays(batch: torch.Tensor) -> np.ndarray:
    """A uint8 (N, 3, H, W) tensor -> a uint8 (N, H, W, 3) array on the host, each image contiguous."""
    return batch.permute(0, 2, 3, 1).contiguous().cpu().numpy()


class ModelUnavailableError(RuntimeError):
    """A model that cannot be loaded (not cached, no network, not an inpainting model)."""
