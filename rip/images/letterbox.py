"""Any image as the study's input: RGB, upright, scaled and centred on a square of bands."""

from typing import NamedTuple

import numpy as np
from PIL import Image, ImageColor, ImageOps

from rip.images.source import SourceImage

_WHITE = (255, 255, 255)


class Box(NamedTuple):
    """Where the picture lies in its letterboxed square, in pixels: the rest is bands."""

    top: int
    left: int
    height: int
    width: int


def content_box(width: int, height: int, size: int) -> Box:
    """The box a `width`×`height` picture (upright) fills once letterboxed to `size`×`size`."""
    _check_size(size)
    if not width or not height:
        raise ValueError(f"image has no pixels: {width}x{height}")
    scale = size / max(width, height)
    new_width, new_height = max(1, round(width * scale)), max(1, round(height * scale))
    return Box((size - new_height) // 2, (size - new_width) // 2, new_height, new_width)


def letterbox(image: Image.Image, size: int, pad_color: str = "white", resample: str = "lanczos") -> np.ndarray:
    """`image` as a uint8 (size, size, 3) RGB array: upright per EXIF, scaled with `resample`
    so its long side is `size`, centred on bands of `pad_color`; transparency is composited on
    white."""
    return letterbox_with_box(image, size, pad_color, resample)[0]


def letterbox_with_box(image: Image.Image, size: int, pad_color: str = "white",
                       resample: str = "lanczos") -> tuple[np.ndarray, Box]:
    """`letterbox`'s array and the box the picture fills in it (see `content_box`)."""
    _check_size(size)
    image = to_rgb(ImageOps.exif_transpose(image))
    box = content_box(*image.size, size)
    resized = image.resize((box.width, box.height), Image.Resampling[resample.upper()])
    canvas = np.empty((size, size, 3), dtype=np.uint8)
    canvas[:] = ImageColor.getcolor(pad_color, "RGB")
    canvas[box.top : box.top + box.height, box.left : box.left + box.width] = np.asarray(resized)
    return canvas, box


def load_images(
    sources: list[SourceImage], size: int, pad_color: str = "white", resample: str = "lanczos"
) -> list[np.ndarray]:
    """Every source letterboxed (see `letterbox`); ValueError naming the first unreadable one."""
    return load_letterboxed(sources, size, pad_color, resample)[0]


def load_letterboxed(
    sources: list[SourceImage], size: int, pad_color: str = "white", resample: str = "lanczos"
) -> tuple[list[np.ndarray], list[Box]]:
    """`load_images`' arrays and, for each, the box its picture fills (see `content_box`)."""
    _check_size(size)
    arrays, boxes = [], []
    for source in sources:
        image = source.load()
        try:
            array, box = letterbox_with_box(image, size, pad_color, resample)
        except (OSError, ValueError) as error:
            raise ValueError(f"cannot convert image {source.origin}: {error}") from error
        arrays.append(array)
        boxes.append(box)
    return arrays, boxes


def _check_size(size: int) -> None:
    if not isinstance(size, int) or size <= 0:
        raise ValueError(f"size must be a positive integer, got {size!r}")


def to_rgb(image: Image.Image) -> Image.Image:
    """Any mode to RGB: alpha over white, 16/32-bit greyscale scaled (not clipped) to 8 bits."""
    if image.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, _WHITE), rgba).convert("RGB")
    if image.mode.startswith("I"):  # I;16 variants and I: 16-bit range
        values = np.asarray(image.convert("I"), dtype=np.float64)
        image = Image.fromarray(np.round(np.clip(values, 0, 65535) / 257).astype(np.uint8))
    elif image.mode == "F":  # [0, 1] when it fits, else 0-255 like Pillow
        values = np.asarray(image, dtype=np.float64)
        if values.size and values.min() >= 0 and values.max() <= 1:
            values = values * 255
        image = Image.fromarray(np.round(np.clip(values, 0, 255)).astype(np.uint8))
    return image.convert("RGB")
