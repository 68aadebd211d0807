"""Stores whose collection-level findings are true or false by construction, written as `rip run`
writes them: the real engine and recorder, with an inpainter whose effect is known.

- `SharedTarget`: blends each inpainted square 90 % of the way to the same square of one shared picture: every
  image falls toward it (diversity falls: C1 holds) and the runs of an image meet there.
- `OwnTexture`: turns the square by a multiple of 90° drawn from its seed (image, run, iteration):
  each image drifts on its own, from its own pixels (diversity kept: C1 does not hold), and the runs
  of one image stay apart at equal distance from the original (C2a does not hold).
- `TowardPosterized`: posterizes the square (a second visit changes nothing): every run of an image
  approaches the same posterized picture whatever squares it drew (C2a holds).
- `Unchanged`: gives the image back (no drift: C3a does not hold).

    write_collection_store(uri, "shared", SharedTarget(), images="sample:11", seeds=(0,))
"""

import numpy as np

from rip.config import RunConfig
from rip.inpainters.base import Inpainter

SMALL = dict(size=64, mask=16, step=50, percent=200, metrics=("stlpips-alex",), complexity=False,
             system_metrics=False, device="cpu")


class SharedTarget(Inpainter):
    """Each masked pixel moves `weight` of the way to the shared picture's pixel."""

    name = "shared-target"

    def __init__(self, weight: float = 0.9, seed: int = 0):
        self.weight, self.seed = weight, seed

    def inpaint(self, images, masks, seeds):
        target = smooth_picture(images[0].shape[0], self.seed)
        out = []
        for image, mask in zip(images, masks):
            blended = np.rint((1 - self.weight) * image + self.weight * target).astype(np.uint8)
            out.append(np.where(mask[..., None], blended, image))
        return out


class OwnTexture(Inpainter):
    """Each inpainted square turned by 90°, 180° or 270° (from the run's seed): every image keeps its
    own colours and texture, rearranged, so images stay as different as they were."""

    name = "own-texture"

    def inpaint(self, images, masks, seeds):
        out = []
        for image, mask, seed in zip(images, masks, seeds):
            rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            top, left, side = rows[0], cols[0], len(rows)
            turned = image.copy()
            turned[top:top + side, left:left + side] = np.rot90(image[top:top + side, left:left + side], 1 + seed % 3)
            out.append(turned)
        return out


class TowardPosterized(Inpainter):
    """Each masked pixel moves `share` of the way to its value rounded to `levels` levels per channel
    (all the way by default, which a second visit leaves unchanged): every run of an image approaches
    the same posterized picture, whatever squares it drew."""

    name = "toward-posterized"

    def __init__(self, levels: int = 2, share: float = 1.0):
        self.levels, self.share = levels, share

    def inpaint(self, images, masks, seeds):
        step = 255 / (self.levels - 1)
        out = []
        for image, mask in zip(images, masks):
            target = np.rint(image / step) * step
            moved = np.rint(image + self.share * (target - image)).astype(np.uint8)
            out.append(np.where(mask[..., None], moved, image))
        return out


class Unchanged(Inpainter):
    """Gives every image back as it was."""

    name = "unchanged"

    def inpaint(self, images, masks, seeds):
        return [image.copy() for image in images]


def smooth_picture(size: int, seed: int) -> np.ndarray:
    """A smooth random RGB picture, uint8 (size, size, 3)."""
    from PIL import Image

    small = np.random.default_rng(seed).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((size, size), Image.BICUBIC)).astype(np.float64)


def write_collection_store(tracking_uri: str, experiment: str, inpainter: Inpainter, images: str = "sample:11",
                           seeds=(0,), **changes) -> list[str]:
    """One configuration run per seed of `images` under `inpainter` (SMALL settings, `changes` on top),
    through `rip.runner.run_experiment`; returns the configuration run ids."""
    from rip.runner import run_experiment

    return [run_experiment(RunConfig(images=images, seed=seed, model="telea", experiment=experiment,
                                     **{**SMALL, **changes}), tracking_uri, inpainter=inpainter, progress=False)
            for seed in seeds]
