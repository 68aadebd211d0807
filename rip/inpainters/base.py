"""The interface every inpainting backend implements."""

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np


class Inpainter(ABC):
    """Fills masked pixels of RGB images.

    Images are uint8 arrays (H, W, 3); masks are boolean arrays (H, W), True where pixels are
    to be inpainted. One seed per image makes each result independent of its batch.
    """

    name: str

    @abstractmethod
    def inpaint(
        self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray], seeds: Sequence[int]
    ) -> list[np.ndarray]:
        """Return one inpainted uint8 image per input image."""

    def params(self) -> dict[str, str]:
        """Resolved settings worth logging with the run (device, dtype, revision, ...)."""
        return {}

    def tags(self) -> dict[str, str]:
        """Tags worth setting on the run."""
        return {}


class ModelUnavailableError(RuntimeError):
    """A model that cannot be loaded (not cached, no network, not an inpainting model)."""
