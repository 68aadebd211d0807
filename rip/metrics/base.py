"""The metric interface: one value per (original, image) pair."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


class MetricUnavailableError(RuntimeError):
    """A metric's weights are missing and cannot be fetched."""


class Metric(ABC):
    """Compares images with their originals.

    Inputs are float32 tensors shaped (N, 3, H, W) with values in [0, 1], on the CPU;
    each metric converts them to what its library expects.
    """

    name: str  # e.g. "lpips-vgg"
    higher_is_better: bool  # False for distances, True for similarities

    @property
    def key(self) -> str:
        """MLflow metric key, e.g. "lpips_vgg"."""
        return self.name.replace("-", "_")

    @abstractmethod
    def __call__(self, originals: torch.Tensor, images: torch.Tensor) -> np.ndarray:
        """Float64 array of shape (N,): the metric of each pair."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def check_inputs(originals: torch.Tensor, images: torch.Tensor) -> None:
    """Raise ValueError unless both are (N, 3, H, W) tensors of equal shape in [0, 1]."""
    if originals.ndim != 4 or originals.shape[1] != 3 or originals.shape != images.shape:
        raise ValueError(
            f"expected two (N, 3, H, W) tensors of equal shape, got {tuple(originals.shape)} "
            f"and {tuple(images.shape)}"
        )
    for tensor in (originals, images):
        if tensor.numel() and (tensor.min() < 0 or tensor.max() > 1):
            raise ValueError(
                f"image values must lie in [0, 1], got [{tensor.min():.3g}, {tensor.max():.3g}]"
            )
