"""Simple properties of an original image, to relate to how stable it is under recursion.

The measures are the run's own (`rip.metrics.complexity`), so an original and its generations
are measured alike.
"""

import numpy as np

from rip.metrics.complexity import colour_entropy, edge_density

__all__ = ["colour_entropy", "edge_density", "image_properties"]


def image_properties(image: np.ndarray) -> dict[str, float]:
    """Every property of one image by name."""
    return {"edge_density": edge_density(image), "colour_entropy": colour_entropy(image)}
