"""Simulated studies whose observations are true or false by construction, to calibrate the verdicts.

`simulate(Study(...), rng)` draws the tidy frame `analysis.load_results` returns for one
experiment; `write_store` logs such a frame to a tracking server as `rip run` does (a
configuration run per mask and seed, a nested image run per image), for end-to-end tests and
benchmarks. The defaults of `Study` make every observation of the study true; each field
turns one off (see SCENARIOS in scripts/calibrate_verdicts.py).

The model, on the log scale, for image i, mask m (j-th smallest), network k, run r, percent p ≥ 50:
    log d = log(scale_k · h(p)) + j·log(1 + mask_step) + u_i + v_ik + s(m, p)·z_imrp + e_k·t_imkrp
h: the mean curve's shape; u_i ~ N(0, image_sd): the image's level; v_ik ~ N(0, network_sd): a
network's own view of it; z: run noise with unit variance, a share run_persistence of it fixed
per run; s(m, p) = run_sd · (1 + run_mask_step)^j · (p / 50)^−run_decay; t: each network's own response
to a run's image, normal for VGG (SD noise_sd), Student t for the others (SD other_noise_sd), both
times (p / 50)^−noise_decay. At 0 % d = 0.
"""

import os
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from PIL import Image

from rip.config import STUDY_MODEL, RunConfig
from rip.tracking.tags import CONFIG_TAG, FAILURE_TAG, IMAGE_TAG, KIND_TAG, LABEL_TAG, PARENT_TAG

SCALES = {"lpips_alex": 0.4, "lpips_squeeze": 0.35, "lpips_vgg": 0.5}  # typical levels of the study's networks
CURVES = {  # the mean curve's shape from 50 % on
    "saturating": lambda p: 1 - np.exp(-p / 150) + 0.3 * p / 400,  # rises ever more slowly, never flat
    "linear": lambda p: 0.3 + 0.7 * p / 400,  # a constant rate
    "plateau": lambda p: 1 - np.exp(-p / 30),  # flat well before the second half
    "flat": lambda p: np.ones_like(p, dtype=float),  # a jump at the first step, then nothing
}


@dataclass(frozen=True)
class Study:
    """A generative model of one experiment (see the module docstring)."""

    experiment: str = "sim-replication"
    images: int = 100
    runs: int = 1  # seeds per image and mask
    masks: tuple[int, ...] = (64, 128, 256)
    metrics: tuple[str, ...] = ("lpips_alex", "lpips_squeeze", "lpips_vgg")
    percents: tuple[int, ...] = tuple(range(0, 401, 50))
    curve: str = "saturating"
    growing: float = 1.0  # share of images whose curve has that shape; the others stay at their first level
    mask_step: float = 0.2  # each larger mask multiplies the distance by 1 + mask_step ...
    mask_share: float = 1.0  # ... for this share of images; the others drift alike under every mask
    image_sd: float = 0.3
    network_sd: float = 0.1
    growth_ratio: float = 1.0  # VGG's growth from the first checkpoint over the other networks'
    run_sd: float = 0.12
    run_persistence: float = 0.5
    run_mask_step: float = 0.5
    run_decay: float = 1.0
    noise_sd: float = 0.05
    other_noise_sd: float = 0.15
    other_tails: float = 3.0
    noise_decay: float = 1.0  # the networks' responses shrink as (p / 50)^−noise_decay  # degrees of freedom of the other networks' noise (np.inf: normal)
    failed: int = 0  # runs that end FAILED halfway
    labels: tuple[str, ...] = ()  # style labels given to the images in turn (tag rip.label.style)


def simulate(study: Study, rng: np.random.Generator) -> pd.DataFrame:
    """A tidy frame drawn from `study`: a row per (image run, metric, percent)."""
    n_i, n_m, n_k, n_r = study.images, len(study.masks), len(study.metrics), study.runs
    p = np.asarray(study.percents, dtype=float)
    later = p > 0
    shape = CURVES[study.curve](np.maximum(p, study.percents[1] if len(p) > 1 else 1))
    grows = rng.random(n_i) < study.growing
    curve = np.where(grows[:, None], shape, shape[later][0] if later.any() else 1.0)  # (images, percents)
    first = curve[:, [int(np.argmax(later))]]
    vgg = np.array([name.endswith("vgg") for name in study.metrics])
    ratio = np.where(vgg, study.growth_ratio, 1.0)
    curve = first[:, None, :] + ratio[None, :, None] * (curve - first)[:, None, :]  # (images, metrics, percents)
    steps = np.where(rng.random(n_i) < study.mask_share, 1.0, 0.0)[:, None] * np.arange(n_m)  # (images, masks)
    log = (np.log(np.maximum(curve, 1e-12))[:, None, :, None, :]
           + np.log([SCALES.get(name, 0.4) for name in study.metrics])[None, None, :, None, None]
           + (steps * np.log1p(study.mask_step))[:, :, None, None, None]
           + rng.normal(0, study.image_sd, n_i)[:, None, None, None, None]
           + rng.normal(0, study.network_sd, (n_i, n_k))[:, None, :, None, None])
    run_noise = (np.sqrt(study.run_persistence) * rng.normal(size=(n_i, n_m, 1, n_r, 1))
                 + np.sqrt(1 - study.run_persistence) * rng.normal(size=(n_i, n_m, 1, n_r, len(p))))
    decay = (np.maximum(p, 1) / 50) ** -study.run_decay
    run_scale = study.run_sd * (1 + study.run_mask_step) ** np.arange(n_m)[:, None] * decay  # (masks, percents)
    log = log + run_scale[None, :, None, None, :] * run_noise
    noise = rng.normal(size=(n_i, n_m, n_k, n_r, len(p)))
    if np.isfinite(study.other_tails):
        df = study.other_tails
        heavy = rng.standard_t(df, size=noise.shape) * np.sqrt((df - 2) / df)
        noise = np.where(vgg[None, None, :, None, None], noise, heavy)
    noise_decay = (np.maximum(p, 1) / 50) ** -study.noise_decay
    log = log + np.where(vgg, study.noise_sd, study.other_noise_sd)[None, None, :, None, None] * noise_decay * noise
    values = np.exp(np.where(later, log, -np.inf))  # 0 at 0 %
    return _frame(study, values, _failures(study, rng))


def _failures(study: Study, rng: np.random.Generator) -> dict[tuple[int, int, int], int]:
    """(image, mask, run) -> the number of checkpoints logged before the run failed."""
    cells = rng.choice(study.images * len(study.masks) * study.runs, size=study.failed, replace=False)
    stops = rng.integers(2, max(3, len(study.percents) - 1), size=study.failed)
    return {tuple(int(v) for v in np.unravel_index(c, (study.images, len(study.masks), study.runs))): int(s)
            for c, s in zip(cells, stops)}


def _frame(study: Study, values: np.ndarray, failed: dict) -> pd.DataFrame:
    n_i, n_m, n_k, n_r, n_p = values.shape
    i, m, k, r, q = (index.ravel() for index in np.indices(values.shape))
    masks, percents = np.asarray(study.masks), np.asarray(study.percents)
    images = np.array([f"image-{n:03d}" for n in range(n_i)], dtype=object)
    keep = np.ones(len(i), dtype=bool)
    status = np.full(len(i), "FINISHED", dtype=object)
    for (fi, fm, fr), stop in failed.items():
        run = (i == fi) & (m == fm) & (r == fr)
        keep &= ~(run & (q >= stop))
        status[run] = "FAILED"
    parent = np.array([[f"{study.experiment}-mask{mask}-seed{seed}" for seed in range(n_r)] for mask in masks], dtype=object)
    frame = pd.DataFrame({
        "experiment": study.experiment,
        "parent_run_id": parent[m, r],
        "run_id": parent[m, r] + "-" + images[i],
        "image_id": images[i],
        "model": STUDY_MODEL,
        "mask": masks[m],
        "seed": r,
        "metric": np.asarray(study.metrics, dtype=object)[k],
        "percent": percents[q],
        "iteration": percents[q] * (512 // masks[m]) ** 2 // 100,
        "value": values.ravel(),
        "status": status,
        "size": 512,
        "images": "wikiart:100@0" if n_r == 1 else "wikiart:100@0/10",
        "paste_back": False,
    })[keep]
    if study.labels:
        frame["label_style"] = np.asarray(study.labels, dtype=object)[i[keep] % len(study.labels)]
    return frame.reset_index(drop=True)


def write_store(client: MlflowClient, frame: pd.DataFrame, params: dict[str, str] | None = None,
                originals: bool = True, threads: int = 4) -> dict[str, str]:
    """Log `frame` (one experiment per value of its `experiment` column) as `rip run` does: per
    configuration a run tagged rip.kind=configuration with its rip.config, per image a nested run
    tagged rip.kind=image with its metrics at step = percent, labels as rip.label.<name>, and
    status FINISHED or FAILED (tagged rip.failure). `params` are added to every run's parameters;
    with `originals`, each image run logs an `original.png` (a small random image; no generations).
    Image runs are logged by `threads` threads. Returns the experiment ids by name."""
    ids, parents, jobs = {}, [], []
    labels = [c for c in frame.columns if c.startswith("label_")]
    for (experiment, parent), runs in frame.groupby(["experiment", "parent_run_id"], sort=True):
        if experiment not in ids:
            found = client.get_experiment_by_name(experiment)
            ids[experiment] = found.experiment_id if found else client.create_experiment(experiment)
        first = runs.iloc[0]
        config = RunConfig(mask=int(first["mask"]), seed=int(first["seed"]), images=str(first["images"]),
                           percent=int(frame["percent"].max()), model=str(first["model"]), size=int(first["size"]),
                           metrics=tuple(sorted(m.replace("_", "-") for m in runs["metric"].unique())),
                           experiment=experiment)
        run_params = [Param(key, value) for key, value in {**config.as_params(), **(params or {})}.items()]
        tags = {KIND_TAG: "configuration", CONFIG_TAG: config.to_json()}
        parent_id = client.create_run(ids[experiment], run_name=parent).info.run_id
        client.log_batch(parent_id, params=run_params, tags=[RunTag(k, v) for k, v in tags.items()])
        parents.append(parent_id)
        for image, rows in runs.groupby("image_id", sort=True):
            image_tags = {PARENT_TAG: parent_id, KIND_TAG: "image", IMAGE_TAG: image, CONFIG_TAG: config.to_json(),
                          **{f"{LABEL_TAG}.{c.removeprefix('label_')}": str(rows[c].iloc[0]) for c in labels}}
            jobs.append((ids[experiment], image, image_tags, run_params, rows))

    def image_run(job) -> None:
        experiment_id, image, image_tags, run_params, rows = job
        run_id = client.create_run(experiment_id, run_name=image, tags=image_tags).info.run_id
        if originals:
            _log_original(client, run_id, image)
        timestamp = int(time.time() * 1000)
        metrics = [Metric(key, float(value), timestamp, int(percent))
                   for key, value, percent in rows[["metric", "value", "percent"]].itertuples(index=False)]
        metrics += [Metric("iteration", float(it), timestamp, int(percent))
                    for percent, it in rows[["percent", "iteration"]].drop_duplicates().itertuples(index=False)]
        for start in range(0, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[start:start + 1000], params=run_params if start == 0 else [])
        status = rows["status"].iloc[0]
        if status == "FAILED":
            client.set_tag(run_id, FAILURE_TAG, f"{image}: simulated failure")
        client.set_terminated(run_id, status)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(image_run, jobs))
    for parent_id in parents:
        client.set_terminated(parent_id, "FINISHED")
    return ids


def _log_original(client: MlflowClient, run_id: str, image: str) -> None:
    """A small random picture as the run's original.png, the same for every run of `image`."""
    pixels = np.random.default_rng(zlib.crc32(image.encode())).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "original.png")
        Image.fromarray(pixels).save(path)
        client.log_artifact(run_id, path)
