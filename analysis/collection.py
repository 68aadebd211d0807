"""What recursion does to a collection, computed from the logged generations and logged back onto
each configuration run, cached there.

Per configuration run (its images, one run each) and checkpoint:
- `set-diversity-<metric>`: the mean pairwise distance among its images' generations (`analysis.diversity`),
  with `set-diversity-<metric>-se` where the pairs are a sample;
- `set-kid-<features>` (and `-sd`), `set-fid-`, `set-precision-`, `set-recall-`, `set-density-`,
  `set-coverage-<features>`: the generations against the originals as distributions in the feature
  space `<features>` (`analysis.distribution`, `analysis.features`).
Per image with runs in several configurations (seeds): the distance between its runs' generations
at each checkpoint, the cross-run distance (`analysis.convergence` reads it).

Each part (a diversity per metric, the features of one network, a cross-run distance per metric) is
an artifact of its configuration run under `set-measures/`, with a tag `rip.set_cache.<part>` holding
a digest of the image runs and checkpoints it was computed from. An analysis whose digest matches
downloads the part and reads the logged metrics back; only a changed or new part is computed (a
resumed configuration that gained images, another feature network). This is the analysis's only
write to the image runs' configurations.
"""

import hashlib
import json
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric, RunTag

from analysis import distribution
from analysis.diversity import PAIR_COLUMNS, choose_pairs, diversity_metrics, diversity_series, pair_distances
from analysis.frames import condition_keys
from analysis.generations import RunImages
from analysis.history import metric_histories
from rip.tracking.tags import SET_CACHE_FOLDER, SET_CACHE_TAG, SET_PREFIX

VERSION = 1  # of the computation: a change makes every cached part stale
CROSS_COLUMNS = ["run_a", "run_b", "image_id", "percent", "distance"]
METRIC_BATCH = 1000
logger = logging.getLogger(__name__)


@dataclass
class Vectors:
    """One configuration's images in a feature space: originals (n, dim) and generations
    (n, checkpoints, dim), NaN where an image has no generation at a checkpoint."""

    image_ids: list[str]
    percents: list[int]
    originals: np.ndarray
    generations: np.ndarray

    def at(self, percent: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Originals and generations of the images with a generation at `percent`, and their ids."""
        here = self.generations[:, self.percents.index(percent)]
        keep = np.isfinite(here).all(axis=1)
        return self.originals[keep], here[keep], [i for i, k in zip(self.image_ids, keep) if k]


@dataclass
class Collection:
    """Everything `collect` found: the parts' values, the set series, why some are missing."""

    features: str
    diversity: pd.DataFrame  # parent_run_id, metric, image_a, image_b, percent, distance
    cross_run: pd.DataFrame  # metric, run_a, run_b, image_id, percent, distance
    vectors: dict[str, Vectors]  # by configuration run
    series: pd.DataFrame  # parent_run_id, key, percent, value
    notes: list[str] = field(default_factory=list)
    computed: int = 0  # images embedded and distances computed by this call (0: all from the cache)


def set_key(measure: str, name: str) -> str:
    """A set metric's key: set-kid-inception, set-diversity-lpips-vgg, ..."""
    return f"{SET_PREFIX}{measure}-{name}"


def collect(client: MlflowClient, frame: pd.DataFrame, features: str, device: str = "cpu") -> Collection:
    """The set measures of every configuration run in `frame` (its finished image runs), computed
    where not cached, and logged back. `features`: a name of `analysis.features.FEATURES`."""
    runs = _runs(frame)
    metrics = diversity_metrics(frame["metric"].unique())
    with tempfile.TemporaryDirectory() as folder:
        work = _Work(client, RunImages(client, Path(folder) / "images"), Path(folder) / "parts", features, metrics,
                     device)
        for parent, rows in runs.groupby("parent_run_id", sort=True):
            work.configuration(parent, rows)
        work.cross_runs(runs)
    series = pd.DataFrame(work.series, columns=["parent_run_id", "key", "percent", "value"])
    return Collection(features, pd.concat(work.diversity, ignore_index=True) if work.diversity else
                      pd.DataFrame(columns=["parent_run_id", "metric", *PAIR_COLUMNS]),
                      pd.concat(work.cross, ignore_index=True) if work.cross else
                      pd.DataFrame(columns=["metric", *CROSS_COLUMNS]),
                      work.vectors, series, work.notes, work.computed)


def _runs(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per image run: its ids, conditions, and the checkpoints it logged."""
    keys = [k for k in condition_keys(frame) if k != "experiment"]
    percents = frame.groupby("run_id")["percent"].apply(lambda p: tuple(sorted(set(int(v) for v in p))))
    runs = frame.drop_duplicates("run_id")[["experiment", "parent_run_id", "run_id", "image_id", "mask", "seed",
                                            *keys]].copy()
    runs["percents"] = runs["run_id"].map(percents)
    runs["group"] = runs[["experiment", *keys, "mask"]].astype(str).agg("|".join, axis=1)
    return runs.sort_values(["parent_run_id", "image_id", "run_id"]).reset_index(drop=True)


def _digest(part: str, runs: list[tuple[str, tuple[int, ...]]]) -> str:
    text = json.dumps({"version": VERSION, "part": part, "runs": sorted([r, list(p)] for r, p in runs)})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class _Work:
    """The state of one `collect` call."""

    def __init__(self, client, images: RunImages, folder: Path, features: str, metrics: list[str], device: str):
        self.client, self.images, self.folder, self.features = client, images, folder, features
        self.metric_names, self.device = metrics, device
        self.folder.mkdir(parents=True)
        self.loaded_metrics: dict = {}
        self.network = None
        self.diversity, self.cross, self.series, self.notes = [], [], [], []
        self.vectors: dict[str, Vectors] = {}
        self.computed = 0
        self.tags: dict[str, dict[str, str]] = {}

    # -- one configuration --------------------------------------------------------------------

    def configuration(self, parent: str, rows: pd.DataFrame) -> None:
        """Its features and its diversity under each metric."""
        runs = list(zip(rows["run_id"], rows["percents"]))
        seed = int(rows["seed"].iloc[0])
        part = f"features-{self.features}"
        vectors, fresh = self._part(parent, part, _digest(part, runs), lambda: self._embed(rows), VECTORS)
        if vectors is not None:
            self.vectors[parent] = vectors
            self._distribution_series(parent, vectors, seed, fresh)
        for metric in self.metric_names:
            part = f"diversity-{metric}"
            pairs, fresh = self._part(parent, part, _digest(part, runs), lambda: self._pairs(rows, metric, seed),
                                      FRAME)
            if pairs is None:
                continue
            self.diversity.append(pairs.assign(parent_run_id=parent, metric=metric))
            key = set_key("diversity", metric)
            series = (diversity_series(pairs, len(rows)) if fresh
                      else pd.DataFrame(columns=["percent", "diversity", "se"]))
            values = [(key, int(p), float(v)) for p, v in zip(series["percent"], series["diversity"])]
            if series["se"].gt(0).any():  # a sample of the pairs; with every pair there is no sampling error
                values += [(key + "-se", int(p), float(v)) for p, v in zip(series["percent"], series["se"])]
            self._series(parent, values, fresh, [key, key + "-se"])

    def _embed(self, rows: pd.DataFrame) -> Vectors | None:
        ids = list(rows["run_id"])
        self.images.fetch(ids)
        with_images = [run for run in ids if self.images.has_generations(run)]
        if len(with_images) < len(ids):
            self.notes.append(f"configuration {rows['parent_run_id'].iloc[0]}: {len(ids) - len(with_images)} of "
                              f"{len(ids)} image runs logged no generations; left out of the set measures")
        rows = rows[rows["run_id"].isin(with_images)]
        if rows.empty:
            return None
        network = self._network()
        percents = sorted(set().union(*rows["percents"]))
        originals = network.embed([self.images.original(run) for run in rows["run_id"]])
        generations = np.full((len(rows), len(percents), network.dim), np.nan, dtype=np.float32)
        for j, percent in enumerate(percents):
            found = [(i, self.images.generation(run, percent)) for i, run in enumerate(rows["run_id"])]
            found = [(i, image) for i, image in found if image is not None]
            if found:
                generations[[i for i, _ in found], j] = network.embed([image for _, image in found])
        self.computed += len(rows) * (len(percents) + 1)
        return Vectors(list(rows["image_id"]), percents, originals, generations)

    def _pairs(self, rows: pd.DataFrame, metric: str, seed: int) -> pd.DataFrame | None:
        self.images.fetch(rows["run_id"])
        rows = rows[[self.images.has_generations(run) for run in rows["run_id"]]]
        if len(rows) < 2:
            return None
        run_of = dict(zip(rows["image_id"], rows["run_id"]))
        pairs, _ = choose_pairs(list(run_of), seed)
        out = self._distances(metric, pairs, sorted(set().union(*rows["percents"])),
                              lambda image, percent: self.images.generation(run_of[image], percent))
        return pd.DataFrame(out, columns=PAIR_COLUMNS)

    def _distances(self, metric: str, pairs: list[tuple[str, str]], percents, image) -> list[tuple]:
        """(first, second, percent, distance) for each pair of keys at each percent where both have an
        image (`image(key, percent)`, None where there is none), batched per percent."""
        keys = list(dict.fromkeys(key for pair in pairs for key in pair))
        out = []
        for percent in percents:
            images = {key: image(key, percent) for key in keys}
            here = [pair for pair in pairs if images[pair[0]] is not None and images[pair[1]] is not None]
            if here:
                distances = pair_distances(self._metric(metric), images, here)
                out += [(a, b, percent, d) for (a, b), d in zip(here, distances)]
                self.computed += len(here)
        return out

    def _distribution_series(self, parent: str, vectors: Vectors, seed: int, fresh: bool) -> None:
        values, lacking = [], []
        for percent in vectors.percents:
            originals, generations, _ = vectors.at(percent)
            why = distribution.too_few(len(originals))
            if why:
                lacking.append((percent, why))
            elif fresh:
                measured = distribution.set_measures(originals, generations, seed)
                values += [(set_key(name, self.features), percent, value) for name, value in measured.items()]
        if lacking:
            where = "every checkpoint" if len(lacking) == len(vectors.percents) else \
                ", ".join(f"{p} %" for p, _ in lacking)
            self.notes.append(f"configuration {parent}, {where}: {lacking[-1][1]}")
        keys = [set_key(name, self.features) for name in distribution.MEASURES]
        self._series(parent, values, fresh, keys)

    # -- images of one picture across configurations -------------------------------------------

    def cross_runs(self, runs: pd.DataFrame) -> None:
        """For every image with runs in several configurations: the distance between each two runs'
        generations at each checkpoint, cached on the configuration of the pair's first run."""
        jobs: dict[str, list] = {}
        for _, image_runs in runs.groupby(["group", "image_id"], sort=True):
            if image_runs["parent_run_id"].nunique() < 2:
                continue
            listed = list(image_runs.sort_values("run_id").itertuples(index=False))
            for i, a in enumerate(listed):
                for b in listed[i + 1:]:
                    jobs.setdefault(a.parent_run_id, []).append((a, b))
        for parent, pairs in sorted(jobs.items()):
            used = {(run.run_id, run.percents) for pair in pairs for run in pair}
            for metric in self.metric_names:
                part = f"cross-run-{metric}"
                found, _ = self._part(parent, part, _digest(part, list(used)), lambda: self._cross(pairs, metric),
                                      FRAME)
                if found is not None:
                    self.cross.append(found.assign(metric=metric))

    def _cross(self, pairs, metric: str) -> pd.DataFrame:
        self.images.fetch([run.run_id for pair in pairs for run in pair])
        image_of = {run.run_id: run.image_id for pair in pairs for run in pair}
        percents = sorted(set().union(*(set(a.percents) & set(b.percents) for a, b in pairs)))
        out = self._distances(metric, [(a.run_id, b.run_id) for a, b in pairs], percents, self.images.generation)
        return pd.DataFrame([(a, b, image_of[a], percent, d) for a, b, percent, d in out], columns=CROSS_COLUMNS)

    # -- the cache, and the one place that writes -------------------------------------------------

    def _part(self, parent: str, part: str, digest: str, compute, codec: "_Codec"):
        """(the part's values, whether computed now): from the run's artifact when its tag holds
        `digest`, else computed, logged as the artifact and tagged. None when there is nothing."""
        tag = f"{SET_CACHE_TAG}.{part}"
        if self._tags(parent).get(tag) == digest:
            with tempfile.TemporaryDirectory() as local:
                path = self.client.download_artifacts(parent, f"{SET_CACHE_FOLDER}/{part}{codec.suffix}", local)
                return codec.load(Path(path)), False
        value = compute()
        if value is None:
            return None, True
        path = self.folder / f"{part}{codec.suffix}"
        codec.save(value, path)
        self.client.log_artifact(parent, str(path), SET_CACHE_FOLDER)
        self.client.log_batch(parent, tags=[RunTag(tag, digest)])
        return value, True

    def _series(self, parent: str, values: list[tuple[str, int, float]], fresh: bool, keys: list[str]) -> None:
        """Log fresh values at step = percent; read cached ones back from the run's history."""
        if fresh:
            timestamp = int(time.time() * 1000)
            metrics = [Metric(key, value, timestamp, percent) for key, percent, value in values]
            for start in range(0, len(metrics), METRIC_BATCH):
                self.client.log_batch(parent, metrics=metrics[start:start + METRIC_BATCH])
        else:
            history = metric_histories(self.client, {parent: keys})
            history = history.sort_values("timestamp", kind="stable").drop_duplicates(["key", "step"], keep="last")
            values = list(zip(history["key"], history["step"].astype(int), history["value"]))
        self.series += [(parent, key, percent, value) for key, percent, value in values]

    def _tags(self, parent: str) -> dict[str, str]:
        if parent not in self.tags:
            self.tags[parent] = self.client.get_run(parent).data.tags
        return self.tags[parent]

    def _network(self):
        if self.network is None:
            from analysis.features import load_features

            self.network = load_features(self.features, self.device)
        return self.network

    def _metric(self, name: str):
        if name not in self.loaded_metrics:
            from rip.metrics import load_metrics

            self.loaded_metrics[name] = load_metrics([name], self.device)[0]
        return self.loaded_metrics[name]


def _save_frame(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False)


def _load_frame(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"image_a": str, "image_b": str, "image_id": str, "run_a": str, "run_b": str})


def _save_vectors(vectors: Vectors, path: Path) -> None:
    np.savez_compressed(path, image_ids=np.array(vectors.image_ids, dtype=str), percents=np.array(vectors.percents),
                        originals=vectors.originals, generations=vectors.generations)


def _load_vectors(path: Path) -> Vectors:
    with np.load(path, allow_pickle=False) as data:
        return Vectors([str(i) for i in data["image_ids"]], [int(p) for p in data["percents"]], data["originals"],
                       data["generations"])


@dataclass(frozen=True)
class _Codec:
    """How a part is written to, and read from, its artifact file."""

    suffix: str
    save: object
    load: object


FRAME = _Codec(".csv", _save_frame, _load_frame)
VECTORS = _Codec(".npz", _save_vectors, _load_vectors)
