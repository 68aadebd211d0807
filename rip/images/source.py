"""One image of a set, and the seeded draw of a subset of a set."""

from dataclasses import dataclass

import numpy as np
from PIL import Image


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


def draw_indices(available: int, count: int, seed: int, spec: str) -> list[int]:
    """`count` of range(available) without replacement, sorted."""
    if count > available:
        raise ValueError(f"{spec!r} asks for {count} images but only {available} are available")
    return sorted(np.random.default_rng(seed).choice(available, size=count, replace=False).tolist())
