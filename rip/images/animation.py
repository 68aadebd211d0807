"""The recursion as a moving picture: an animated WebP of an image run's checkpoints.

Each frame is one checkpoint, scaled down to at most `FRAME_SIDE` px, over a dark band that
names its percent ("0 %" is the original). Lossy WebP at `QUALITY` keeps a run's animation to
a few tens of kilobytes (docs/running.md gives the measured size).
"""

import io
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FRAME_SIDE = 256  # px: the frames' width at most (the study's 512 px images are halved)
QUALITY = 80  # WebP's lossy quality, 0-100
FRAME_DURATION_MS = 700
BAND_FRACTION = 0.1  # height of the label band, as a fraction of the frame's width
BAND_COLOR = (24, 24, 24)
TEXT_COLOR = (255, 255, 255)


def frame_image(image: np.ndarray | Image.Image, side: int = FRAME_SIDE) -> Image.Image:
    """`image` as an RGB frame at most `side` px wide (Lanczos), its aspect kept; smaller ones unchanged."""
    picture = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    picture = picture.convert("RGB")
    if picture.width > side:
        picture = picture.resize((side, max(1, round(picture.height * side / picture.width))), Image.LANCZOS)
    return picture


def band_height(width: int) -> int:
    """Pixels of the label band under a frame `width` px wide."""
    return max(16, round(width * BAND_FRACTION))


def labelled(frame: Image.Image, label: str) -> Image.Image:
    """`frame` over a dark band with `label` written in it, centred."""
    band = band_height(frame.width)
    canvas = Image.new("RGB", (frame.width, frame.height + band), BAND_COLOR)
    canvas.paste(frame, (0, 0))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=round(band * 0.7))
    draw.text((frame.width / 2, frame.height + band / 2), label, fill=TEXT_COLOR, font=font, anchor="mm")
    return canvas


def animate(frames: Sequence[Image.Image], labels: Sequence[str], *, duration_ms: int = FRAME_DURATION_MS,
            quality: int = QUALITY) -> bytes:
    """An animated WebP, looping, of `frames` (equal sizes), each over a band with its label."""
    if not frames:
        raise ValueError("an animation needs at least one frame")
    if len(frames) != len(labels):
        raise ValueError(f"{len(frames)} frames but {len(labels)} labels")
    sizes = {frame.size for frame in frames}
    if len(sizes) > 1:
        raise ValueError(f"frames differ in size: {sorted(sizes)}")
    pictures = [labelled(frame.convert("RGB"), label) for frame, label in zip(frames, labels)]
    buffer = io.BytesIO()
    pictures[0].save(buffer, "WEBP", save_all=True, append_images=pictures[1:], duration=duration_ms, loop=0,
                     quality=quality, method=4)
    return buffer.getvalue()


def percent_label(percent: int) -> str:
    return f"{percent} %"


def checkpoint_animation(original: np.ndarray | Image.Image, generations: Mapping[int, np.ndarray | Image.Image],
                         *, side: int = FRAME_SIDE, duration_ms: int = FRAME_DURATION_MS) -> bytes:
    """The animation of one image run: the original ("0 %"), then the generation of each later
    checkpoint by percent inpainted, every frame at most `side` px wide."""
    later = sorted(percent for percent in generations if percent > 0)
    frames = [frame_image(original, side), *(frame_image(generations[percent], side) for percent in later)]
    return animate(frames, [percent_label(0), *map(percent_label, later)], duration_ms=duration_ms)
