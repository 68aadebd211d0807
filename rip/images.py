"""Image sets (sample photographs, a folder, Hugging Face datasets such as WikiArt) and
letterboxing to a square."""

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageColor, ImageOps

SAMPLE_IMAGES = (
    "astronaut",
    "camera",
    "chelsea",
    "coffee",
    "coins",
    "grace_hopper",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "retina",
    "rocket",
)
"""Photographs shipped inside scikit-image (and matplotlib's grace_hopper), in this order."""

IMAGE_EXTENSIONS = (
    ".bmp", ".gif", ".jpe", ".jpeg", ".jpg", ".pbm", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp"
)

_COUNT = re.compile(r"[+-]?\d+")
_SUBDRAW = re.compile(r"\d+(@\d+)?")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_WHITE = (255, 255, 255)


@dataclass(frozen=True)
class SourceImage:
    """One image of a set: `id` is unique in the set and safe in run names and artifact paths."""

    id: str
    origin: str  # a file path, "skimage:NAME" or "matplotlib:grace_hopper.jpg"
    labels: tuple[tuple[str, str], ...] = ()  # (name, value) pairs, e.g. WikiArt's style and genre

    def load(self) -> Image.Image:
        """The raw image, fully decoded; ValueError naming the file when it cannot be read."""
        kind, _, name = self.origin.partition(":")
        if kind == "skimage":
            import skimage.data

            return Image.fromarray(getattr(skimage.data, name)())
        path = self.origin
        if kind == "matplotlib":
            from matplotlib.cbook import get_sample_data

            path = get_sample_data(name, asfileobj=False)
        try:
            with Image.open(path) as image:
                image.load()  # decode now so that truncated files fail here
        except Exception as error:  # decoders raise many types on corrupt data
            raise ValueError(f"cannot read image {path}: {error}") from error
        return image


def resolve_image_set(spec: str, seed: int) -> list[SourceImage]:
    """The images named by `spec`; `seed` draws the subsets.

    Specs: `sample` (photographs shipped with scikit-image and matplotlib), `sample:N`,
    `wikiart:N` (N images of the study's WikiArt set, pinned revision, downloaded once into the
    cache), `hf:REPO[@REVISION][:SPLIT]:N` (any image dataset in parquet, see rip.hub_images),
    `FOLDER` (every image file below FOLDER, recursively, hidden files and folders skipped,
    sorted by relative path) and `FOLDER:N`. N images are drawn without replacement with
    `numpy.random.default_rng(seed)` and kept in the set's order. `sample` and `wikiart` are
    keywords: write `./sample` for a folder of that name.

    A count may fix its own draw seed, `wikiart:100@0`, so that runs of different seeds share
    the same images; `SET/M` (or `SET/M@T`) draws M images of SET with the seed of SET's draw
    (or T): `wikiart:100@0/10` is ten of the hundred images of `wikiart:100@0`.
    """
    base, slash, sub = spec.rpartition("/")
    if slash and base and _SUBDRAW.fullmatch(sub) and not Path(spec).expanduser().is_dir():
        images = resolve_image_set(base, seed)
        count, _, fixed = sub.partition("@")
        base_seed = base.rpartition(":")[2].partition("@")[2]
        draw_seed = int(fixed or base_seed or seed)
        return _draw(images, _parse_count(spec, count), draw_seed, spec)
    head, _, tail = spec.rpartition(":")
    if head and "@" in tail:  # N@S: draw with seed S, not the run's seed
        tail, _, fixed = tail.partition("@")
        if not fixed.isdigit():
            raise ValueError(f"malformed draw seed {fixed!r} in {spec!r}: expected a non-negative integer")
        seed = int(fixed)
    if spec == "sample":
        return _sample_images()
    if head == "sample":
        return _draw(_sample_images(), _parse_count(spec, tail), seed, spec)
    if spec in ("wikiart", "hf") or spec.startswith("hf:") and not head.startswith("hf:"):
        raise ValueError(f"image set {spec!r} needs a count, e.g. wikiart:100 or hf:OWNER/NAME:train:100")
    if head in ("wikiart", "hf") or head.startswith("hf:"):
        from rip.hub_images import WIKIART, dataset_images, parse_dataset

        dataset = parse_dataset(WIKIART if head == "wikiart" else head, spec)
        return dataset_images(dataset, _parse_count(spec, tail), seed, spec)
    if spec and Path(spec).expanduser().is_dir():
        return _folder_images(Path(spec).expanduser())
    if head and Path(head).expanduser().is_dir():
        return _draw(_folder_images(Path(head).expanduser()), _parse_count(spec, tail), seed, spec)
    raise ValueError(
        f"unknown image set {spec!r}: expected sample, sample:N, wikiart:N, hf:OWNER/NAME[:SPLIT]:N, "
        "or an existing folder as FOLDER or FOLDER:N (any of them followed by /M for M of its images)"
    )


def letterbox(image: Image.Image, size: int, pad_color: str = "white", resample: str = "lanczos") -> np.ndarray:
    """`image` as a uint8 (size, size, 3) RGB array: upright per EXIF, scaled with `resample`
    so its long side is `size`, centred on bands of `pad_color`; transparency is composited on
    white."""
    _check_size(size)
    image = _to_rgb(ImageOps.exif_transpose(image))
    width, height = image.size
    if not width or not height:
        raise ValueError(f"image has no pixels: {width}x{height}")
    scale = size / max(width, height)
    new_width, new_height = max(1, round(width * scale)), max(1, round(height * scale))
    resized = image.resize((new_width, new_height), Image.Resampling[resample.upper()])
    canvas = np.empty((size, size, 3), dtype=np.uint8)
    canvas[:] = ImageColor.getcolor(pad_color, "RGB")
    top, left = (size - new_height) // 2, (size - new_width) // 2
    canvas[top : top + new_height, left : left + new_width] = np.asarray(resized)
    return canvas


def load_images(
    sources: list[SourceImage], size: int, pad_color: str = "white", resample: str = "lanczos"
) -> list[np.ndarray]:
    """Every source letterboxed (see `letterbox`); ValueError naming the first unreadable one."""
    _check_size(size)
    arrays = []
    for source in sources:
        image = source.load()
        try:
            arrays.append(letterbox(image, size, pad_color, resample))
        except (OSError, ValueError) as error:
            raise ValueError(f"cannot convert image {source.origin}: {error}") from error
    return arrays


def _check_size(size: int) -> None:
    if not isinstance(size, int) or size <= 0:
        raise ValueError(f"size must be a positive integer, got {size!r}")


def _to_rgb(image: Image.Image) -> Image.Image:
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


def _parse_count(spec: str, text: str) -> int:
    if not _COUNT.fullmatch(text):
        raise ValueError(f"malformed image count {text!r} in {spec!r}: expected a positive integer")
    count = int(text)
    if count <= 0:
        raise ValueError(f"image count must be positive, got {count} in {spec!r}")
    return count


def _draw_indices(available: int, count: int, seed: int, spec: str) -> list[int]:
    """`count` of range(available) without replacement, sorted."""
    if count > available:
        raise ValueError(f"{spec!r} asks for {count} images but only {available} are available")
    return sorted(np.random.default_rng(seed).choice(available, size=count, replace=False).tolist())


def _draw(images: list[SourceImage], count: int, seed: int, spec: str) -> list[SourceImage]:
    return [images[i] for i in _draw_indices(len(images), count, seed, spec)]


def _sample_images() -> list[SourceImage]:
    return [
        SourceImage(name, "matplotlib:grace_hopper.jpg" if name == "grace_hopper" else f"skimage:{name}")
        for name in SAMPLE_IMAGES
    ]


def _folder_images(folder: Path) -> list[SourceImage]:
    """Every image file below `folder`, sorted by relative path; ids from the relative path."""
    relative = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [name for name in dirs if not name.startswith(".")]
        relative += [
            Path(root, name).relative_to(folder)
            for name in files
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)
        ]
    if not relative:
        extensions = " ".join(IMAGE_EXTENSIONS)
        raise ValueError(f"no image files in folder {str(folder)!r} (looked for {extensions})")
    folder = Path(os.path.abspath(folder))
    images, taken = [], set()
    for path in sorted(relative, key=lambda path: path.parts):
        base = _UNSAFE.sub("_", "-".join(path.parts))
        image_id, copy = base, 1
        while image_id in taken:  # two names that differ only in replaced characters
            copy += 1
            image_id = f"{base}-{copy}"
        taken.add(image_id)
        images.append(SourceImage(image_id, str(folder / path)))
    return images
