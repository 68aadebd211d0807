"""How intricate one image is, measured on the image alone: originals and generations alike.

Every measure takes a uint8 RGB (H, W, 3) array and grows with detail: a flat image scores 0
(PNG: the few bits of a constant image). `complexity` measures one image inside a box (the
picture's area of a letterboxed image, without its bands) and names the values as logged.
"""

from collections.abc import Sequence

import numpy as np

ENTROPY_LEVELS = 8  # quantisation levels per channel for the colour histogram (8³ = 512 colours)
PNG_COMPRESSION = 6  # zlib's default level: the size, not the speed, is the measure
HIGH_FREQUENCY = 0.125  # cycles per pixel: detail finer than 8 pixels
COMPLEXITY_MEASURES = ("complexity-png-bpp", "complexity-edges", "complexity-entropy", "complexity-hf",
                       "complexity-colourfulness")
"""png-bpp: lossless PNG size in bits per pixel; edges: Canny edge density; entropy: colour
entropy in bits; hf: share of the spectral energy above HIGH_FREQUENCY; colourfulness:
Hasler–Süsstrunk's M."""
COMPLEXITY_KEYS = tuple(name.replace("-", "_") for name in COMPLEXITY_MEASURES)  # as logged


def png_bits_per_pixel(image: np.ndarray) -> float:
    """Size of the image as a lossless 8-bit PNG (zlib level PNG_COMPRESSION), in bits per pixel."""
    import cv2

    pixels = np.ascontiguousarray(_rgb(image)[..., ::-1])  # OpenCV writes BGR arrays as RGB files
    ok, encoded = cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    if not ok:
        raise ValueError(f"cannot encode a {pixels.shape} image as PNG")
    return 8 * len(encoded) / (pixels.shape[0] * pixels.shape[1])


def edge_density(image: np.ndarray, sigma: float = 1.0) -> float:
    """Fraction of pixels on a Canny edge of the grey image (skimage's thresholds; the image's
    own border is not an edge)."""
    from skimage.feature import canny

    return float(canny(_grey(image), sigma=sigma, mode="nearest").mean())


def colour_entropy(image: np.ndarray, levels: int = ENTROPY_LEVELS) -> float:
    """Shannon entropy in bits of the joint colour histogram, `levels` bins per channel.

    0 for a single colour; at most 3·log2(levels) (9 bits for 8 levels).
    """
    quantised = (_rgb(image).astype(np.int64) * levels) // 256
    codes = (quantised[..., 0] * levels + quantised[..., 1]) * levels + quantised[..., 2]
    counts = np.bincount(codes.ravel(), minlength=levels**3)
    p = counts[counts > 0] / codes.size
    return float(-(p * np.log2(p)).sum())


def high_frequency_share(image: np.ndarray, cutoff: float = HIGH_FREQUENCY) -> float:
    """Share of the grey image's spectral energy (mean removed, Hann-windowed so the image's edges
    add none) at spatial frequencies above `cutoff` cycles per pixel; 0 for a flat image."""
    grey = _grey(image)
    height, width = grey.shape
    window = np.outer(np.hanning(height), np.hanning(width)) if min(height, width) > 2 else np.ones_like(grey)
    power = np.abs(np.fft.rfft2((grey - grey.mean()) * window)) ** 2
    fy, fx = np.fft.fftfreq(height)[:, None], np.fft.rfftfreq(width)[None, :]
    weights = np.ones(power.shape[1])  # rfft2 holds each column but the first (and the last of an even width) once
    weights[1 : (width + 1) // 2] = 2
    total = float((power * weights).sum())
    if total <= 0:
        return 0.0
    return float((power * weights)[np.hypot(fy, fx) > cutoff].sum() / total)


def colourfulness(image: np.ndarray) -> float:
    """Hasler & Süsstrunk's (2003) colourfulness M on 0–255 values: 0 for greys, about 50 for
    "quite colourful", above 100 "extremely colourful"."""
    rgb = _rgb(image).astype(np.float64)
    rg = rgb[..., 0] - rgb[..., 1]
    yb = (rgb[..., 0] + rgb[..., 1]) / 2 - rgb[..., 2]
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


MEASURES = {"complexity_png_bpp": png_bits_per_pixel, "complexity_edges": edge_density,
            "complexity_entropy": colour_entropy, "complexity_hf": high_frequency_share,
            "complexity_colourfulness": colourfulness}


def complexity(image: np.ndarray, box: Sequence[int] | None = None) -> dict[str, float]:
    """Every measure of `image` (uint8 RGB (H, W, 3)) inside `box` = (top, left, height, width),
    the whole image when None, by logged key (COMPLEXITY_KEYS)."""
    return {key: measure(crop(image, box)) for key, measure in MEASURES.items()}


def crop(image: np.ndarray, box: Sequence[int] | None) -> np.ndarray:
    """The part of `image` inside `box` = (top, left, height, width); ValueError when it is empty
    or reaches outside the image."""
    if box is None:
        return image
    top, left, height, width = (int(v) for v in box)
    if height <= 0 or width <= 0 or top < 0 or left < 0 or top + height > image.shape[0] or left + width > image.shape[1]:
        raise ValueError(f"box {tuple(box)} (top, left, height, width) is not inside a {image.shape[:2]} image")
    return image[top : top + height, left : left + width]


def _rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] < 3 or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 (H, W, 3) RGB image, got {image.dtype} {image.shape}")
    return image[..., :3]


def _grey(image: np.ndarray) -> np.ndarray:
    """Luminance in [0, 1] (ITU-R BT.709 weights, as skimage's rgb2gray)."""
    return _rgb(image).astype(np.float64) @ np.array([0.2125, 0.7154, 0.0721]) / 255
