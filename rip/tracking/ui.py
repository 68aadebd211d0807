"""What the MLflow UI shows of a run: its name, its address, the image grid of a configuration, the
page that plays an image run's animation."""

import base64
import dataclasses
import html
import math
import os
import sys
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from PIL import Image

from rip.config import FREE_FIELDS, RunConfig

# MLflow 3's UI opens an experiment in its GenAI mode (traces) unless the address selects this one
RUNS_VIEW = "workflowType=machine_learning"
LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` listens by default
NAME_FIELDS = ("model", "images", "mask", "size", "seed")  # every run name carries these
MAX_NAME = 250  # MLflow's limit on run names


# -- addresses ---------------------------------------------------------------------------------

def ui_address(tracking_uri: str) -> str:
    """The UI's address: the tracking server itself, or where `mlflow ui` serves a local store."""
    if urlparse(tracking_uri).scheme in ("http", "https"):
        return tracking_uri.rstrip("/")
    return LOCAL_UI


def runs_url(tracking_uri: str, experiment_id: str) -> str:
    """The experiment's runs list."""
    return f"{ui_address(tracking_uri)}/#/experiments/{experiment_id}/runs?{RUNS_VIEW}"


def run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """One run's page (its metrics, images and artifacts)."""
    return f"{ui_address(tracking_uri)}/#/experiments/{experiment_id}/runs/{run_id}?{RUNS_VIEW}"


def ui_command(tracking_uri: str) -> str | None:
    """The `mlflow ui` command that serves a local store (sqlite or folder); None for a server."""
    parsed = urlparse(tracking_uri)
    if parsed.scheme in ("http", "https", "databricks"):
        return None
    if parsed.scheme == "sqlite" and tracking_uri.startswith("sqlite:///") and parsed.path not in ("", "/:memory:"):
        path = tracking_uri.removeprefix("sqlite:///")
        tracking_uri = f"sqlite:///{Path(path).resolve()}"
    elif parsed.scheme in ("", "file"):
        tracking_uri = Path(parsed.path or tracking_uri).resolve().as_uri()
    return f"mlflow ui --backend-store-uri {tracking_uri}"


def print_own_addresses() -> None:
    """Switch off MLflow's two lines as each run ends (its experiment address opens the GenAI view):
    every command prints its own addresses, once. A user who set MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT
    to false gets MLflow's as well. Each command calls this, so that it holds however it is invoked."""
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def where_to_look(tracking_uri: str, experiment_id: str, run_id: str, run_name: str) -> list[str]:
    """Terminal lines with the run's and the experiment's addresses, as `mlflow run` prints them."""
    return Addresses().lines(tracking_uri, experiment_id, run_id, run_name)


class Addresses:
    """Where to look, for a command that makes or names runs: each run's address once, and its
    experiment's runs list (with the command that serves a local store) the first time that
    experiment comes up."""

    def __init__(self):
        self.shown: set[tuple[str, ...]] = set()

    def lines(self, tracking_uri: str, experiment_id: str, run_id: str, run_name: str) -> list[str]:
        lines = []
        if (tracking_uri, run_id) not in self.shown:
            lines.append(f"View run {run_name} at: {run_url(tracking_uri, experiment_id, run_id)}")
        if (tracking_uri, "experiment", experiment_id) not in self.shown:
            lines.append(f"View experiment at: {runs_url(tracking_uri, experiment_id)}")
            command = ui_command(tracking_uri)
            if command:
                lines.append(f"(a local store: serve it first with `{command}`)")
        self.shown |= {(tracking_uri, run_id), (tracking_uri, "experiment", experiment_id)}
        return lines


def above_progress(text: str, err: bool = True) -> None:
    """Lines on stderr (stdout with `err=False`) above the progress bars, which are redrawn below them."""
    from tqdm.auto import tqdm

    tqdm.write(text, file=sys.stderr if err else sys.stdout)


# -- run names ---------------------------------------------------------------------------------

def not_conditions() -> tuple[str, ...]:
    """Fields that change no result (batch size, device, ...) and what is measured."""
    return ("metrics", "complexity", *FREE_FIELDS)


def conditions(config: RunConfig) -> dict[str, str]:
    """Fields that differ from the study's defaults, beside the ones every name carries."""
    defaults, skipped = RunConfig(), NAME_FIELDS + not_conditions()
    return {
        field.name: short_value(getattr(config, field.name))
        for field in dataclasses.fields(config)
        if field.name not in skipped and getattr(config, field.name) != getattr(defaults, field.name)
    }


def configuration_name(config: RunConfig) -> str:
    """A parent run's name, e.g. `telea · sample:4 · mask 64 · 256px · seed 0 · paste_back=true`."""
    parts = [model_name(config.model), _image_set(config.images), f"mask {config.mask}", f"{config.size}px",
             f"seed {config.seed}", *(f"{key}={value}" for key, value in conditions(config).items())]
    return " · ".join(parts)[:MAX_NAME]


def image_name(image_id: str, config: RunConfig) -> str:
    """An image run's name, unambiguous in charts across configurations: `astronaut · telea m64 256px s0`."""
    parts = [f"{model_name(config.model)} m{config.mask} {config.size}px s{config.seed}",
             *(f"{key}={value}" for key, value in conditions(config).items())]
    return f"{image_id} · {' '.join(parts)}"[:MAX_NAME]


def model_name(model: str) -> str:
    """`sd2-community/stable-diffusion-2-inpainting` -> `stable-diffusion-2-inpainting`; telea -> telea."""
    return model.rstrip("/").split("/")[-1]


def _image_set(spec: str) -> str:
    """A folder's name instead of its path: `/data/paintings:10` -> `paintings:10`."""
    head, colon, tail = spec.partition(":")
    if head.startswith(("/", ".", "~")) or ("/" in head and Path(head).is_dir()):
        return Path(head).name + colon + tail
    return spec


def short_value(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    text = "default" if value is None else ",".join(value) if isinstance(value, tuple) else str(value)
    return text if len(text) <= 24 else text[:23] + "…"


# -- the configuration's image grid ------------------------------------------------------------

def grid_side(n_images: int, size: int) -> int:
    """The side of each image in a grid of `n_images`: at most 8 per row, rows at most 1024 px wide."""
    return min(size, max(64, 1024 // min(n_images, 8)))


def image_grid(images: list[np.ndarray], side: int) -> np.ndarray:
    """The images side by side (8 per row at most), each `side` px, 4 px apart on grey."""
    columns = min(len(images), 8)
    rows = math.ceil(len(images) / columns)
    gap = 4
    grid = Image.new("RGB", (columns * (side + gap) + gap, rows * (side + gap) + gap), (200, 200, 200))
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        picture = Image.fromarray(image)
        if picture.size != (side, side):
            picture = picture.resize((side, side), Image.LANCZOS)
        grid.paste(picture, (gap + column * (side + gap), gap + row * (side + gap)))
    return np.asarray(grid)


# -- animations --------------------------------------------------------------------------------

def animation_page(webp: bytes, title: str) -> str:
    """A self-contained HTML page playing the animated WebP `webp`: the MLflow UI's artifact view
    previews HTML (in a sandboxed frame) but not WebP."""
    data = base64.b64encode(webp).decode("ascii")
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title></head>"
            f'<body style="margin:0"><img alt="{html.escape(title)}" src="data:image/webp;base64,{data}">'
            "</body></html>\n")
