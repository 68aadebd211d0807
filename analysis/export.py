"""Image runs on a tracking server -> a folder that 🤗 `datasets.load_dataset(FOLDER)` loads as it is.

Parquet with an `Image` feature (the logged PNG bytes as they are, every value as logged):

    README.md                                     the dataset card (analysis.dataset_card)
    generations/train-0000K-of-0000N.parquet      one row per (image run, checkpoint): the default configuration
    originals/train-00000-of-00001.parquet        one row per letterboxed original: configuration "originals"

Runs are chosen as `rip analyze` chooses them (`analysis.load`): experiments, `--filter`, FINISHED
image runs only.
"""

import hashlib
import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from mlflow import MlflowClient
from mlflow.entities import Run

from analysis.artifacts import run_image_files
from analysis.frames import LABEL_PREFIX
from analysis.load import load_runs, load_values, search_runs
from rip.images.licences import image_licence
from rip.tracking.tags import IMAGE_ORIGIN_TAG

ROW_GROUP = 100  # rows per Parquet row group, as `datasets` writes image datasets
RUNS_PER_SHARD = 100  # image runs per Parquet file of generations (about 9 x 0.3 MB each at 512 px)
IDENTITY = ("experiment", "configuration_run_id", "image_run_id", "image_id", "percent", "iteration")
NOT_PARAMS = {"image", "original_sha256"}  # further columns a parameter may not be named as


class ExportError(ValueError):
    """The export cannot be made (its folder is not empty, `datasets` is missing, ...); the message says why."""


@dataclass
class Exported:
    """What an export wrote, for the card and the command's last line."""

    folder: Path
    runs: pd.DataFrame  # one row per exported image run (analysis.load.load_runs)
    configurations: list[Run]
    originals: pd.DataFrame  # image_id, size, origin, licence, sha256, image_run_ids
    metrics: list[str]
    params: list[str]
    labels: list[str]
    rows: int = 0
    files: list[Path] = field(default_factory=list)


def export_runs(client: MlflowClient, folder: str | Path, experiments: Sequence[str] = (),
                filters: Sequence[str] = ()) -> Exported:
    """Write the matching FINISHED image runs of `experiments` (default: all) as a Parquet dataset into `folder`
    (new or empty), without its card; return what was written."""
    datasets = _datasets()
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise ExportError(f"{folder} is not empty: export into a new or empty folder")
    # 1. The runs, their values, parameters, origins and configurations
    runs = load_runs(client, experiments, filters)
    values = load_values(client, runs)
    ids = sorted(set(runs["experiment_id"]))
    image_runs = {run.info.run_id: run for run in search_runs(client, ids, "image") if run.info.run_id in set(runs["run_id"])}
    parents = {run.info.run_id: run for run in search_runs(client, ids, "configuration")}
    configurations = [parents[parent] for parent in dict.fromkeys(runs["parent_run_id"]) if parent in parents]
    metrics = sorted(values["metric"].unique())
    labels = sorted(column for column in runs.columns if column.startswith(LABEL_PREFIX))
    taken = set(IDENTITY) | set(metrics) | set(labels) | NOT_PARAMS
    params = sorted({name for run in image_runs.values() for name in run.data.params})
    columns = {name: f"param_{name}" if name in taken else name for name in params}
    features = datasets.Features({
        **{name: datasets.Value("int64" if name in ("percent", "iteration") else "string") for name in IDENTITY},
        **{columns[name]: datasets.Value("string") for name in params},
        **{name: datasets.Value("string") for name in labels},
        **{name: datasets.Value("float64") for name in metrics},
        "original_sha256": datasets.Value("string"),
        "image": datasets.Image(),
    })
    wide = values.pivot(index=["run_id", "percent"], columns="metric", values="value")
    exported = Exported(folder, runs, configurations, pd.DataFrame(), metrics, params, labels)
    # 2. Generations, a shard of runs at a time
    originals: dict[str, dict] = {}
    shards = [runs.iloc[start:start + RUNS_PER_SHARD] for start in range(0, len(runs), RUNS_PER_SHARD)]
    for number, shard in enumerate(shards):
        rows = []
        with tempfile.TemporaryDirectory() as downloads:
            for record in shard.itertuples(index=False):
                run = image_runs[record.run_id]
                original, generations = run_image_files(client, record.run_id, Path(downloads) / record.run_id)
                digest = _original(originals, original.read_bytes(), record, run, parents.get(record.parent_run_id))
                base = {"experiment": record.experiment, "configuration_run_id": record.parent_run_id,
                        "image_run_id": record.run_id, "image_id": record.image_id,
                        **{columns[name]: run.data.params.get(name) for name in params},
                        **{name: getattr(record, name) for name in labels}, "original_sha256": digest}
                for percent, file in generations.items():
                    measured = wide.loc[(record.run_id, percent)] if (record.run_id, percent) in wide.index else {}
                    rows.append({**base, "percent": percent,
                                 "iteration": round(percent * (record.size // record.mask) ** 2 / 100),
                                 **{name: _value(measured, name) for name in metrics},
                                 "image": {"bytes": file.read_bytes(), "path": None}})
            path = folder / "generations" / f"train-{number:05d}-of-{len(shards):05d}.parquet"
            exported.files.append(_write(rows, features, path))
            exported.rows += len(rows)
    # 3. The originals
    exported.originals = pd.DataFrame([{key: value for key, value in row.items() if key != "image"}
                                       for row in originals.values()])
    original_features = datasets.Features({
        "image_id": datasets.Value("string"), "size": datasets.Value("int64"), "origin": datasets.Value("string"),
        "licence": datasets.Value("string"), **{name: datasets.Value("string") for name in labels},
        "sha256": datasets.Value("string"), "image_run_ids": datasets.Sequence(datasets.Value("string")),
        "image": datasets.Image(),
    })
    exported.files.append(_write(list(originals.values()), original_features,
                                 folder / "originals" / "train-00000-of-00001.parquet"))
    return exported


def _original(originals: dict[str, dict], png: bytes, record, run: Run, parent: Run | None) -> str:
    """Add an image run's original to `originals` (one entry per distinct file); its SHA-256."""
    digest = hashlib.sha256(png).hexdigest()
    if digest not in originals:
        origin = run.data.tags.get(IMAGE_ORIGIN_TAG, "")
        originals[digest] = {"image_id": record.image_id, "size": int(record.size), "origin": origin,
                             "licence": image_licence(origin, *_collection(parent)),
                             **{name: getattr(record, name) for name in record._fields if name.startswith(LABEL_PREFIX)},
                             "sha256": digest, "image_run_ids": [], "image": {"bytes": png, "path": None}}
    originals[digest]["image_run_ids"].append(run.info.run_id)
    return digest


def _collection(parent: Run | None) -> tuple[str, str, str]:
    """(kind, location, revision) of the image set a configuration run logged as its dataset input."""
    for dataset_input in (parent.inputs.dataset_inputs if parent is not None and parent.inputs else []):
        source = json.loads(dataset_input.dataset.source or "{}")
        if dataset_input.dataset.source_type == "hugging_face":
            return "hub", source.get("path", ""), source.get("revision") or ""
        described = json.loads(source.get("tags", {}).get("images", "[]")) if "tags" in source else []
        if len(described) == 1:
            return described[0]["kind"], described[0]["location"], described[0].get("revision") or ""
    return "", "", ""


def _value(measured, name: str) -> float | None:
    value = measured.get(name) if len(measured) else None
    return None if value is None or pd.isna(value) else float(value)


def _write(rows: list[dict], features, path: Path) -> Path:
    """`rows` as a Parquet file whose schema carries `features` (what `datasets` reads back)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist([features.encode_example(row) for row in rows], schema=features.arrow_schema)
    pq.write_table(table, path, row_group_size=ROW_GROUP)
    return path


def _datasets():
    try:
        import datasets
    except ImportError as error:
        raise ExportError("rip export writes with the `datasets` package: pip install 'rip[export]'") from error
    return datasets


def hub_token_missing() -> str | None:
    """Why `--push-to-hub` cannot upload (no token), or None."""
    from huggingface_hub import get_token

    if get_token():
        return None
    return "--push-to-hub needs a Hugging Face token: set HF_TOKEN or run `hf auth login`"


def push_to_hub(folder: Path, repo: str, private: bool) -> str:
    """Upload an export as dataset repository `repo` (created if needed); its address."""
    from huggingface_hub import HfApi

    api = HfApi()
    url = api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(repo_id=repo, folder_path=folder, repo_type="dataset",
                      commit_message="rip export: generations, originals and the dataset card")
    return str(url)
