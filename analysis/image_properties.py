"""Simple properties of an original image, to relate to how stable it is under recursion."""

import numpy as np

ENTROPY_LEVELS = 8  # quantisation levels per channel for the colour histogram (8³ = 512 colours)


def edge_density(image: np.ndarray, sigma: float = 1.0) -> float:
    """Fraction of pixels on a Canny edge of the grey image (uint8 RGB (H, W, 3) input)."""
    from skimage.color import rgb2gray
    from skimage.feature import canny

    return float(canny(rgb2gray(image[..., :3]), sigma=sigma).mean())


def colour_entropy(image: np.ndarray, levels: int = ENTROPY_LEVELS) -> float:
    """Shannon entropy in bits of the joint colour histogram, `levels` bins per channel.

    0 for a single colour; at most 3·log2(levels) (9 bits for 8 levels).
    """
    quantised = (image[..., :3].astype(np.int64) * levels) // 256
    codes = (quantised[..., 0] * levels + quantised[..., 1]) * levels + quantised[..., 2]
    counts = np.bincount(codes.ravel(), minlength=levels**3)
    p = counts[counts > 0] / codes.size
    return float(-(p * np.log2(p)).sum())


def image_properties(image: np.ndarray) -> dict[str, float]:
    """Every property of one image by name."""
    return {"edge_density": edge_density(image), "colour_entropy": colour_entropy(image)}
