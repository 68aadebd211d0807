"""A configuration run's inputs where MLflow users look for them: the image set as an MLflow
dataset (its name, source and a digest of the drawn rows: the runs list's "Dataset" column tells
draws apart), and the model as an external logged model of the run (the runs list's "Models"
column; its page lists the hub id or folder, commit, variant and the SHA-256 of each weight file),
with those files also in `model_files.json` on the run.
"""

import hashlib
import json
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from mlflow import MlflowClient
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.data.huggingface_dataset_source import HuggingFaceDatasetSource
from mlflow.entities import Dataset, DatasetInput, InputTag, LoggedModelInput, LoggedModelStatus
from mlflow.models.utils import get_external_mlflow_model_spec
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT, MLFLOW_MODEL_IS_EXTERNAL

from rip.images import SourceImage
from rip.tracking.resilience import Retrying
from rip.tracking.tags import IMAGES_CONTEXT, MODEL_FILES_ARTIFACT, MODEL_SHA256_TAG

_NOT_IN_NAMES = re.compile(r"[/:.%\"']+")  # characters MLflow refuses in a logged model's name


def log_inputs(client: MlflowClient, call: Retrying, experiment_id: str, run_id: str, images: str,
               sources: Sequence[SourceImage], model_files: dict | None) -> None:
    """Record the image set (spec `images`, drawn as `sources`) and the model (its `model_files`,
    see `rip.inpainters.hub.ModelFiles`; None for a backend without weights) as inputs of `run_id`."""
    models = []
    if model_files is not None:
        _log_json(client, call, run_id, model_files)
        models.append(LoggedModelInput(_logged_model(client, call, experiment_id, run_id, model_files)))
    call(client.log_inputs, run_id, datasets=[image_set_input(images, sources)], models=models)


def image_set_input(images: str, sources: Sequence[SourceImage]) -> DatasetInput:
    """The image set as an MLflow dataset input: named by its spec, with the source it was drawn from
    and a digest of the rows drawn."""
    rows = "".join(f"{_collection_key(source)}\t{source.id}\n" for source in sources)
    source_type, source = _source(sources)
    dataset = Dataset(name=images, digest=hashlib.sha256(rows.encode()).hexdigest()[:12], source_type=source_type,
                      source=source.to_json(), profile=json.dumps({"num_rows": len(sources)}))
    return DatasetInput(dataset, tags=[InputTag(MLFLOW_DATASET_CONTEXT, IMAGES_CONTEXT)])


def _source(sources: Sequence[SourceImage]) -> tuple[str, object]:
    """MLflow's source type and description of where the images come from: a hub dataset, or (as JSON)
    folders or the sample photographs."""
    collections = sorted({source.collection for source in sources if source.collection is not None},
                         key=lambda collection: (collection.kind, collection.location))
    if len(collections) == 1 and collections[0].kind == "hub":
        collection = collections[0]
        return "hugging_face", HuggingFaceDatasetSource(collection.location, split=collection.split,
                                                        revision=collection.revision)
    described = [
        {"kind": collection.kind, "location": collection.location, "revision": collection.revision or None,
         "split": collection.split or None}
        for collection in collections
    ]
    return "code", CodeDatasetSource({"images": json.dumps(described)})


def _collection_key(source: SourceImage) -> str:
    collection = source.collection
    if collection is None:
        return source.origin
    return f"{collection.kind}:{collection.location}@{collection.revision}:{collection.split}"


def _logged_model(client: MlflowClient, call: Retrying, experiment_id: str, run_id: str, files: dict) -> str:
    """A new external logged model for the weights, made by `run_id` (the MLflow UI lists a run's models
    beside it, and each model's parameters on its page)."""
    name = _NOT_IN_NAMES.sub("-", Path(files["model"].rstrip("/")).name).strip("-") or "model"
    params = {"model": files["model"], "revision": files["revision"], "variant": files["variant"] or "none",
              "published": files["published"]}
    params.update({f"sha256.{file['path']}": file["sha256"] for file in files["files"]})
    tags = {MODEL_SHA256_TAG: files["digest"], MLFLOW_MODEL_IS_EXTERNAL: "true"}
    model = call(client.create_logged_model, experiment_id, name=name, source_run_id=run_id, tags=tags, params=params,
                 model_type="diffusers")
    with tempfile.TemporaryDirectory() as folder:  # as mlflow.create_external_model: an MLmodel file, to register it
        get_external_mlflow_model_spec(model).save(str(Path(folder) / "MLmodel"))
        (Path(folder) / MODEL_FILES_ARTIFACT).write_text(json.dumps(files, indent=1))
        call(client.log_model_artifacts, model.model_id, folder)
    call(client.finalize_logged_model, model.model_id, LoggedModelStatus.READY)
    return model.model_id


def _log_json(client: MlflowClient, call: Retrying, run_id: str, files: dict) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / MODEL_FILES_ARTIFACT
        path.write_text(json.dumps(files, indent=1))
        call(client.log_artifact, run_id, str(path))
