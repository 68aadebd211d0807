"""A configuration run's inputs in MLflow: the image set as a dataset, the model as a logged model."""

import hashlib
import json

import pytest
from mlflow import MlflowClient

from rip import artefacts
from rip.config import RunConfig
from rip.images import SourceImage
from rip.images.source import Collection
from rip.inpainters.tiny import build_tiny_pipeline
from rip.runner import run_experiment
from rip.tracking.lineage import image_set_input

SMALL = dict(size=64, mask=32, percent=50, step=50, metrics=("ssim",), steps=2)


def test_a_hub_dataset_is_its_repository_at_its_commit():
    wikiart = Collection("hub", artefacts.WIKIART.id, artefacts.WIKIART.revision, "train")
    sources = [SourceImage(f"wikiart-{i:05d}", f"/cache/{i:05d}.png", collection=wikiart) for i in (3, 17)]
    dataset_input = image_set_input("wikiart:2@0", sources)
    dataset = dataset_input.dataset
    assert dataset.name == "wikiart:2@0" and dataset.source_type == "hugging_face"
    source = json.loads(dataset.source)
    assert (source["path"], source["revision"], source["split"]) == (artefacts.WIKIART.id, artefacts.WIKIART.revision,
                                                                      "train")
    assert json.loads(dataset.profile) == {"num_rows": 2}
    assert [(tag.key, tag.value) for tag in dataset_input.tags] == [("mlflow.data.context", "images")]
    other_draw = image_set_input("wikiart:2@1", [sources[0], SourceImage("wikiart-00018", "", collection=wikiart)])
    assert other_draw.dataset.digest != dataset.digest  # the "Datasets used" column tells the draws apart
    assert image_set_input("again", sources).dataset.digest == dataset.digest  # rows, not names


@pytest.mark.slow
def test_runs_record_their_image_set_and_model(mlflow_server, image_folder, tmp_path):
    model = tmp_path / "tiny-model"
    build_tiny_pipeline().save_pretrained(model)
    client = MlflowClient(mlflow_server.uri)
    runs = [run_experiment(RunConfig(model=str(model), images=str(image_folder), experiment="lineage", seed=seed,
                                     **SMALL), mlflow_server.uri, spool_root=tmp_path / "spool", progress=False)
            for seed in (0, 1)]
    first, second = (client.get_run(run_id) for run_id in runs)

    [dataset_input] = first.inputs.dataset_inputs
    dataset = dataset_input.dataset
    assert dataset.name == str(image_folder) and dataset.source_type == "code"
    assert json.loads(json.loads(dataset.source)["tags"]["images"]) == [
        {"kind": "folder", "location": str(image_folder), "revision": None, "split": None}]
    assert json.loads(dataset.profile) == {"num_rows": 3}

    with open(client.download_artifacts(first.info.run_id, "model_files.json", str(tmp_path))) as handle:
        files = json.load(handle)
    assert files["revision"] == f"local:{model.resolve()}" and files["variant"] is None
    for file in files["files"]:
        assert file["sha256"] == hashlib.sha256((model / file["path"]).read_bytes()).hexdigest()
    assert first.data.tags["rip.model_sha256"] == files["digest"]
    assert first.data.params["resolved_revision"] == files["revision"]

    [model_input] = first.inputs.model_inputs
    logged = client.get_logged_model(model_input.model_id)
    assert logged.name == "tiny-model" and logged.source_run_id == first.info.run_id
    assert logged.tags["mlflow.model.isExternal"] == "true" and logged.tags["rip.model_sha256"] == files["digest"]
    assert logged.params["revision"] == files["revision"]
    assert str(logged.status) == "READY"
    [other] = second.inputs.model_inputs  # each run its own record of the same weights
    assert client.get_logged_model(other.model_id).tags["rip.model_sha256"] == files["digest"]
    assert client.get_logged_model(other.model_id).source_run_id == second.info.run_id
