"""The interface every inpainting backend implements."""

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


class Inpainter(ABC):
    """Fills masked pixels of RGB images.

    Images are uint8 arrays (H, W, 3); masks are boolean arrays (H, W), True where pixels are
    to be inpainted. One seed per image makes each result independent of its batch. An output
    that must not become pixels (not finite, withheld by a safety checker) is returned as an
    `InpaintingFailure` in that image's place.
    """

    name: str

    @abstractmethod
    def inpaint(
        self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray], seeds: Sequence[int]
    ) -> list["np.ndarray | InpaintingFailure"]:
        """Return one inpainted uint8 image (or failure) per input image."""

    def params(self) -> dict[str, str]:
        """Resolved settings worth logging with the run (device, dtype, revision, ...)."""
        return {}

    def tags(self) -> dict[str, str]:
        """Tags worth setting on the run."""
        return {}


@dataclass(frozen=True)
class InpaintingFailure:
    """Why one image of a batch has no output."""

    reason: str


class ModelUnavailableError(RuntimeError):
    """A model that cannot be loaded (not cached, no network, not an inpainting model)."""
