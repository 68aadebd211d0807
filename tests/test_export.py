"""`rip export`: a store's image runs as a dataset that `datasets.load_dataset` loads, value for value."""

import os
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient
from PIL import Image

from analysis.cli import export
from tests.conftest import BIN, REPO

pytestmark = pytest.mark.slow
EXPERIMENT = "export"
STYLES = {}  # image id -> the label set on its runs, filled by the fixture


@pytest.fixture(scope="module")
def store(mlflow_server, tmp_path_factory):
    """Two configurations (mask 32 and 16) of two sample photographs, made by `rip run`, their images labelled."""
    spool = tmp_path_factory.mktemp("export-spool")
    for mask in (32, 16):
        result = subprocess.run(
            [str(BIN / "rip"), "run", "--tracking-uri", mlflow_server.uri, "--experiment", EXPERIMENT,
             "--images", "sample:2", "--model", "telea", "--size", "64", "--mask", str(mask), "--percent", "100",
             "--step", "50", "--metrics", "stlpips-alex", "--batch-size", "2"],
            capture_output=True, text=True, cwd=REPO, env={**os.environ, "RIP_SPOOL": str(spool)})
        assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(mlflow_server.uri)
    experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
    for run in client.search_runs([experiment], "tags.`rip.kind` = 'image'"):
        image_id = run.data.tags["rip.image_id"]
        STYLES.setdefault(image_id, f"style {len(STYLES)}")
        client.set_tag(run.info.run_id, "rip.label.style", STYLES[image_id])
    return client


def column(param: str) -> str:
    """A parameter's column: its name, but for those named like the row's own columns."""
    return f"param_{param}" if param in ("percent", "experiment") else param


def load(folder, tmp_path, name=None):
    import datasets

    return datasets.load_dataset(str(folder), name, split="train", cache_dir=str(tmp_path / "hf-cache"))


def logged_png(client, run_id, path, folder) -> np.ndarray:
    with Image.open(client.download_artifacts(run_id, path, str(folder))) as image:
        return np.asarray(image.convert("RGB"))


def test_export_round_trips_every_value(store, mlflow_server, tmp_path):
    out = tmp_path / "dataset"
    result = CliRunner().invoke(export, ["--tracking-uri", mlflow_server.uri, "--experiment", EXPERIMENT, str(out)])
    assert result.exit_code == 0, result.output
    assert result.output == f"12 generations of 4 image runs and 2 originals in {out}: datasets.load_dataset('{out}')\n"
    generations = load(out, tmp_path)
    experiment = store.get_experiment_by_name(EXPERIMENT).experiment_id
    runs = {run.info.run_id: run for run in store.search_runs([experiment], "tags.`rip.kind` = 'image'")}
    assert len(generations) == 12 and set(generations["image_run_id"]) == set(runs)  # 4 runs x 0, 50, 100 %
    assert generations.features["image"].__class__.__name__ == "Image"
    assert generations.features["stlpips_alex"].dtype == "float64"
    metrics = {key for run in runs.values() for key in run.data.metrics} - {"iteration"}
    assert {"stlpips_alex", "coverage", "depth"} <= metrics
    params = {key for run in runs.values() for key in run.data.params}
    named = {column(key) for key in params}
    assert set(generations.column_names) == {"experiment", "configuration_run_id", "image_run_id", "image_id", "percent",
                                             "iteration", "label_style", "original_sha256", "image"} | metrics | named
    histories = {}
    for row in generations:
        run = runs[row["image_run_id"]]
        assert row["experiment"] == EXPERIMENT and row["image_id"] == run.data.tags["rip.image_id"]
        assert row["configuration_run_id"] == run.data.tags["mlflow.parentRunId"]
        assert row["label_style"] == STYLES[row["image_id"]]
        for key, value in run.data.params.items():
            assert row[column(key)] == value, key
        for key in metrics | {"iteration"}:
            if (run.info.run_id, key) not in histories:
                histories[run.info.run_id, key] = {m.step: m.value for m in store.get_metric_history(run.info.run_id, key)}
            assert row[key] == histories[run.info.run_id, key][row["percent"]], key  # exactly
        logged = logged_png(store, run.info.run_id, f"generations/{row['percent']:04d}.png", tmp_path / run.info.run_id)
        assert np.array_equal(np.asarray(row["image"].convert("RGB")), logged)
        assert row["image"].size == (64, 64)
    assert sorted(set(generations["percent"])) == [0, 50, 100]

    originals = load(out, tmp_path, "originals")
    assert len(originals) == 2  # both configurations letterbox the same two photographs alike
    for row in originals:
        assert sorted(row["image_run_ids"]) == sorted(r for r, run in runs.items()
                                                      if run.data.tags["rip.image_id"] == row["image_id"])
        assert row["origin"] == runs[row["image_run_ids"][0]].data.tags["rip.image_origin"]
        assert row["size"] == 64 and row["label_style"] == STYLES[row["image_id"]]
        logged = logged_png(store, row["image_run_ids"][0], "original.png", tmp_path / row["sha256"])
        assert np.array_equal(np.asarray(row["image"].convert("RGB")), logged)
        assert set(generations.filter(lambda g: g["image_id"] == row["image_id"])["original_sha256"]) == {row["sha256"]}
        assert row["licence"].endswith(("(scikit-image, skimage.data." + row["origin"].partition(":")[2] + ")",
                                        "as sample data)"))

    card = (out / "README.md").read_text()
    assert card.startswith("---\nconfigs:\n") and "config_name: originals" in card
    for text in ("## Protocol", "## Models", "- `telea`: no revision", "## Images and their licences",
                 f"rip export --experiment {EXPERIMENT} {out}", *set(generations["configuration_run_id"]),
                 *(row["licence"] for row in originals)):
        assert text.replace("|", "\\|") in card, text


def test_export_filters_as_analyze_does(store, mlflow_server, tmp_path):
    out = tmp_path / "mask32"
    result = CliRunner().invoke(export, ["--tracking-uri", mlflow_server.uri, "--experiment", EXPERIMENT,
                                         "--filter", "mask=32", str(out)])
    assert result.exit_code == 0, result.output
    generations = load(out, tmp_path)
    assert len(generations) == 6 and set(generations["mask"]) == {"32"}
    again = CliRunner().invoke(export, ["--tracking-uri", mlflow_server.uri, "--experiment", EXPERIMENT, str(out)])
    assert again.exit_code == 1 and f"{out} is not empty" in again.output
    unknown = CliRunner().invoke(export, ["--tracking-uri", mlflow_server.uri, "--filter", "colour=red",
                                          str(tmp_path / "none")])
    assert unknown.exit_code == 1 and "unknown parameter 'colour'" in unknown.output
    assert not (tmp_path / "none").exists()


def test_push_without_a_token_says_how_to_get_one_before_any_work(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")}
    result = subprocess.run([str(BIN / "rip"), "export", "--tracking-uri", "http://127.0.0.1:9", "--experiment", "x",
                             "--push-to-hub", "someone/recursion", str(tmp_path / "out")],
                            capture_output=True, text=True, cwd=REPO, env={**env, "HF_HOME": str(tmp_path / "hf")})
    assert result.returncode == 1
    assert result.stderr == "Error: --push-to-hub needs a Hugging Face token: set HF_TOKEN or run `hf auth login`\n"
    assert not (tmp_path / "out").exists()
