"""One image of a set, and the seeded draw of a subset of a set."""

from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Collection:
    """Where a set's images come from, for the record of a run's inputs."""

    kind: str  # "hub" (a Hugging Face dataset), "parquet" (a local copy of one), "folder" or "sample"
    location: str  # OWNER/NAME, a folder, or the packages that ship the photographs
    revision: str = ""  # a hub dataset's commit; a local copy's digest
    split: str = ""


SAMPLE_COLLECTION = Collection("sample", "scikit-image, matplotlib")


@dataclass(frozen=True)
class SourceImage:
    """One image of a set: `id` is unique in the set and safe in run names and artifact paths."""

    id: str
    origin: str  # a file path, "skimage:NAME" or "matplotlib:grace_hopper.jpg"
    labels: tuple[tuple[str, str], ...] = ()  # (name, value) pairs, e.g. WikiArt's style and genre
    collection: Collection | None = None  # where it was drawn from

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


def draw_indices(available: int, count: int, seed: int, spec: str) -> list[int]:
    """`count` of range(available) without replacement, sorted."""
    if count > available:
        raise ValueError(f"{spec!r} asks for {count} images but only {available} are available")
    return sorted(np.random.default_rng(seed).choice(available, size=count, replace=False).tolist())
