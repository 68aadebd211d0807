"""Image sets: sample photographs, a folder, Hugging Face datasets such as WikiArt."""

import os
import re
from pathlib import Path

from rip.images.hub import WIKIART, dataset_images, parse_dataset
from rip.images.source import SAMPLE_COLLECTION, Collection, SourceImage, draw_indices

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

def resolve_image_set(spec: str, seed: int, progress: bool = False) -> list[SourceImage]:
    """The images named by `spec`; `seed` draws the subsets.

    Specs: `sample` (photographs shipped with scikit-image and matplotlib), `sample:N`,
    `wikiart:N` (N images of the study's WikiArt set, pinned revision, downloaded once into the
    cache), `hf:REPO[@REVISION][:SPLIT]:N` (any image dataset in parquet, see rip.images.hub),
    `FOLDER` (every image file below FOLDER, recursively, hidden files and folders skipped,
    sorted by relative path) and `FOLDER:N`. N images are drawn without replacement with
    `numpy.random.default_rng(seed)` and kept in the set's order. `sample` and `wikiart` are
    keywords: write `./sample` for a folder of that name.

    A count may fix its own draw seed, `wikiart:100@0`, so that runs of different seeds share
    the same images; `SET/M` (or `SET/M@T`) draws M images of SET with the seed of SET's draw
    (or T): `wikiart:100@0/10` is ten of the hundred images of `wikiart:100@0`. `SET#ID[,ID...]`
    picks SET's images of those ids, in SET's order: `sample#astronaut`. `progress` shows a bar
    while dataset rows are downloaded.
    """
    base, hash_sign, picked = spec.rpartition("#")
    if hash_sign and base and not Path(spec).expanduser().is_dir():
        return _pick(resolve_image_set(base, seed, progress), picked, spec)
    base, slash, sub = spec.rpartition("/")
    if slash and base and _SUBDRAW.fullmatch(sub) and not Path(spec).expanduser().is_dir():
        images = resolve_image_set(base, seed, progress)
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
        dataset = parse_dataset(WIKIART if head == "wikiart" else head, spec)
        return dataset_images(dataset, _parse_count(spec, tail), seed, spec, progress)
    if spec and Path(spec).expanduser().is_dir():
        return _folder_images(Path(spec).expanduser())
    if head and Path(head).expanduser().is_dir():
        return _draw(_folder_images(Path(head).expanduser()), _parse_count(spec, tail), seed, spec)
    raise ValueError(
        f"unknown image set {spec!r}: expected sample, sample:N, wikiart:N, hf:OWNER/NAME[:SPLIT]:N, "
        "or an existing folder as FOLDER or FOLDER:N (any of them followed by /M for M of its images)"
    )

def _parse_count(spec: str, text: str) -> int:
    if not _COUNT.fullmatch(text):
        raise ValueError(f"malformed image count {text!r} in {spec!r}: expected a positive integer")
    count = int(text)
    if count <= 0:
        raise ValueError(f"image count must be positive, got {count} in {spec!r}")
    return count

def _draw(images: list[SourceImage], count: int, seed: int, spec: str) -> list[SourceImage]:
    return [images[i] for i in draw_indices(len(images), count, seed, spec)]

def _pick(images: list[SourceImage], picked: str, spec: str) -> list[SourceImage]:
    """The images of `images` whose ids `picked` lists (comma-separated), in the set's order."""
    wanted = [name.strip() for name in picked.split(",")]
    ids = [image.id for image in images]
    unknown = [name for name in wanted if name not in ids]
    if not picked.strip() or unknown:
        shown = ", ".join(ids[:12]) + (", ..." if len(ids) > 12 else "")
        raise ValueError(f"image set {spec!r} picks {', '.join(unknown) or 'no id'}, not an image of the set "
                         f"(its ids: {shown})")
    return [image for image in images if image.id in wanted]

def _sample_images() -> list[SourceImage]:
    return [
        SourceImage(name, "matplotlib:grace_hopper.jpg" if name == "grace_hopper" else f"skimage:{name}",
                    collection=SAMPLE_COLLECTION)
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
    collection = Collection("folder", str(folder))
    images, taken = [], set()
    for path in sorted(relative, key=lambda path: path.parts):
        base = _UNSAFE.sub("_", "-".join(path.parts))
        image_id, copy = base, 1
        while image_id in taken:  # two names that differ only in replaced characters
            copy += 1
            image_id = f"{base}-{copy}"
        taken.add(image_id)
        images.append(SourceImage(image_id, str(folder / path), collection=collection))
    return images
