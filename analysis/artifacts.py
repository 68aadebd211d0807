"""Images logged with the image runs: `original.png`, `generations/{percent:04d}.png` and `animation.webp`."""

import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from PIL import Image

from rip.tracking.tags import ANIMATION_ARTIFACT, IMAGE_TAG, PARENT_TAG

DOWNLOAD_THREADS = 4


def download_png(client: MlflowClient, run_id: str, path: str) -> np.ndarray:
    """One PNG artifact of a run as a uint8 array."""
    with tempfile.TemporaryDirectory() as folder:
        local = client.download_artifacts(run_id, path, folder)
        with Image.open(local) as image:
            return np.asarray(image.convert("RGB"))


def run_images(client: MlflowClient, run_id: str) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """A run's original and its generations by percent inpainted."""
    with tempfile.TemporaryDirectory() as folder:
        original, generations = run_image_files(client, run_id, Path(folder))
        with Image.open(original) as image:
            original_array = np.asarray(image.convert("RGB"))
        images = {}
        for percent, file in generations.items():
            with Image.open(file) as image:
                images[percent] = np.asarray(image.convert("RGB"))
    return original_array, images


def run_image_files(client: MlflowClient, run_id: str, folder: Path) -> tuple[Path, dict[int, Path]]:
    """A run's `original.png` and `generations/*.png` (by percent inpainted), downloaded into `folder` as logged."""
    original = Path(client.download_artifacts(run_id, "original.png", str(folder)))
    generations = Path(client.download_artifacts(run_id, "generations", str(folder)))
    return original, {int(file.stem): file for file in sorted(generations.glob("*.png"))}


def run_animation(client: MlflowClient, run_id: str) -> bytes | None:
    """A run's `animation.webp`; None for runs without one (`--animation false`, or recorded before it existed)."""
    if ANIMATION_ARTIFACT not in {artifact.path for artifact in client.list_artifacts(run_id)}:
        return None
    with tempfile.TemporaryDirectory() as folder:
        return Path(client.download_artifacts(run_id, ANIMATION_ARTIFACT, folder)).read_bytes()


def configuration_animations(client: MlflowClient, run_id: str) -> dict[str, bytes]:
    """The `animation.webp` of each image run of configuration run `run_id` that has one, by image id."""
    experiment_id = client.get_run(run_id).info.experiment_id
    children = client.search_runs([experiment_id], f"tags.`{PARENT_TAG}` = '{run_id}'")
    found = {child.data.tags[IMAGE_TAG]: run_animation(client, child.info.run_id) for child in children}
    return {image_id: animation for image_id, animation in found.items() if animation is not None}


def originals(client: MlflowClient, runs: pd.DataFrame) -> dict[tuple[str, int], np.ndarray]:
    """(image_id, size) -> the letterboxed original, one download per pair (from any of its runs)."""
    first = runs.drop_duplicates(["image_id", "size"])
    keys = list(zip(first["image_id"], first["size"]))
    with ThreadPoolExecutor(DOWNLOAD_THREADS) as pool:
        arrays = list(pool.map(lambda run_id: download_png(client, run_id, "original.png"), first["run_id"]))
    return dict(zip(keys, arrays))
