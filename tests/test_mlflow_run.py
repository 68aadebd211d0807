"""End to end: `mlflow run` and `rip run` against a real tracking server on loopback."""

import os
import subprocess

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from PIL import Image
from skimage.metrics import structural_similarity

from rip.config import RunConfig
from rip.inpainters import load_inpainter
from rip.inpainters.base import Inpainter
from rip.runner import run_experiment
from tests.conftest import BIN, REPO, free_port

pytestmark = pytest.mark.slow
SMALL = dict(size=64, mask=32, percent=100, step=50, metrics="ssim,psnr")


def environment(server) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "MLFLOW_TRACKING_URI": server.uri, "MLFLOW_DISABLE_TELEMETRY": "true"}


def rip_run(server, experiment, **options) -> subprocess.CompletedProcess:
    args = [str(BIN / "rip"), "run", "--experiment", experiment]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return subprocess.run(args, env=environment(server), capture_output=True, text=True, cwd=REPO)


def runs_of(client, experiment):
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id]) if found else []


def split(runs):
    parents = [r for r in runs if r.data.tags.get("rip.kind") == "configuration"]
    children = [r for r in runs if r.data.tags.get("rip.kind") == "image"]
    return parents, children


def download_png(client, run_id, path, folder) -> np.ndarray:
    return np.asarray(Image.open(client.download_artifacts(run_id, path, str(folder))))


def test_mlflow_run_with_tiny_pipeline(mlflow_server, image_folder, tmp_path):
    client = MlflowClient(mlflow_server.uri)
    params = dict(SMALL, model="tiny", images=str(image_folder), steps=2, batch_size=2)
    command = [str(BIN / "mlflow"), "run", str(REPO), "--env-manager", "local", "--experiment-name", "e2e-mlflow-run"]
    for key, value in params.items():
        command += ["-P", f"{key}={value}"]
    result = subprocess.run(command, env=environment(mlflow_server), capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    parents, children = split(runs_of(client, "e2e-mlflow-run"))
    assert len(parents) == 1 and len(children) == 3
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.params["mask"] == "32" and parent.data.params["model"] == "tiny"
    assert parent.data.params["resolved_steps"] == "2"
    assert parent.data.params["guidance_skipped"] == "true"
    assert parent.data.tags["rip.meaningless_images"].startswith("true")
    assert RunConfig.from_json(parent.data.tags["rip.config"]).steps == 2
    assert sorted(c.data.tags["rip.image_id"] for c in children) == ["astronaut.png", "camera.png", "chelsea.jpg"]

    values = {}
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        for key in ("ssim", "psnr"):
            history = client.get_metric_history(child.info.run_id, key)
            assert sorted(m.step for m in history) == [0, 50, 100]
            values[child.data.tags["rip.image_id"], key] = {m.step: m.value for m in history}
        iterations = {m.step: m.value for m in client.get_metric_history(child.info.run_id, "iteration")}
        assert iterations == {0: 0, 50: 2, 100: 4}  # 4 squares of 32 px in 64 px: 2 per 50%
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"original.png", "generations", "images", "mask_schedule.csv", "metrics.csv"} <= artifacts
        generations = [a.path for a in client.list_artifacts(child.info.run_id, "generations")]
        assert generations == ["generations/0000.png", "generations/0050.png", "generations/0100.png"]
        ui_images = [a.path for a in client.list_artifacts(child.info.run_id, "images") if a.path.endswith(".png")]
        assert sorted(int(p.split("+step+")[1].split("+")[0]) for p in ui_images) == [0, 50, 100]
        folder = tmp_path / child.info.run_id
        schedule = pd.read_csv(client.download_artifacts(child.info.run_id, "mask_schedule.csv", str(folder)))
        assert len(schedule) == 4 and set(schedule["size"]) == {32}
        # the logged distance equals an independent computation on the logged images
        original = download_png(client, child.info.run_id, "original.png", folder)
        final = download_png(client, child.info.run_id, "generations/0100.png", folder)
        assert original.shape == final.shape == (64, 64, 3)
        expected = structural_similarity(original / 255.0, final / 255.0, channel_axis=2, data_range=1)
        assert values[child.data.tags["rip.image_id"], "ssim"][100] == pytest.approx(expected, abs=1e-6)

    for key in ("ssim", "psnr"):
        for percent in (0, 50, 100):
            column = [values[image, key][percent] for image in ("astronaut.png", "camera.png", "chelsea.jpg")]
            mean = {m.step: m.value for m in client.get_metric_history(parent.info.run_id, f"{key}_mean")}
            std = {m.step: m.value for m in client.get_metric_history(parent.info.run_id, f"{key}_std")}
            assert mean[percent] == pytest.approx(np.mean(column))
            assert std[percent] == pytest.approx(np.std(column, ddof=1) if percent else 0.0, abs=1e-9)


def test_rip_run_classical_is_deterministic(mlflow_server, image_folder):
    client = MlflowClient(mlflow_server.uri)
    for _ in range(2):
        result = rip_run(mlflow_server, "e2e-telea", model="telea", images=str(image_folder), seed=7, **SMALL)
        assert result.returncode == 0, result.stderr[-3000:]
    other = rip_run(mlflow_server, "e2e-telea", model="telea", images=str(image_folder), seed=8, **SMALL)
    assert other.returncode == 0, other.stderr[-3000:]
    parents, children = split(runs_of(client, "e2e-telea"))
    assert len(parents) == 3 and len(children) == 9
    by_parent = {}
    for child in children:
        metrics = {k: [(m.step, m.value) for m in client.get_metric_history(child.info.run_id, k)] for k in ("ssim", "psnr")}
        by_parent.setdefault(child.data.tags["mlflow.parentRunId"], {})[child.data.tags["rip.image_id"]] = metrics
    seeds = {p.info.run_id: p.data.params["seed"] for p in parents}
    same = [by_parent[run] for run, seed in seeds.items() if seed == "7"]
    different = [by_parent[run] for run, seed in seeds.items() if seed == "8"][0]
    assert same[0] == same[1]
    assert same[0] != different


@pytest.mark.parametrize(
    "options, fragment",
    [
        (dict(mask=60), "mask 60 does not divide size 64"),
        (dict(mask=32, step=10), "step 10% is not a whole number of iterations"),
        (dict(metrics="ssim,fid"), "unknown metric 'fid'"),
        (dict(model="my model"), "unknown model 'my model'"),
        (dict(images="/no/such/folder"), "/no/such/folder"),
        (dict(percent=0), "percent must be a positive integer, got 0"),
        (dict(steps="many"), "'many' is not a valid int"),
        (dict(model="tiny", scheduler="pndm", steps=2), "steps 2: PNDMScheduler without skip_prk_steps needs at least 4"),
    ],
)
def test_bad_input_fails_before_any_run(mlflow_server, image_folder, options, fragment):
    arguments = dict(SMALL, model="telea", images=str(image_folder))
    arguments.update(options)
    result = rip_run(mlflow_server, "e2e-bad-input", **arguments)
    assert result.returncode != 0
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr
    assert runs_of(MlflowClient(mlflow_server.uri), "e2e-bad-input") == []


def test_corrupt_image_is_named(mlflow_server, image_folder, tmp_path):
    folder = tmp_path / "corrupt"
    folder.mkdir()
    (folder / "good.png").write_bytes((image_folder / "astronaut.png").read_bytes())
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    result = rip_run(mlflow_server, "e2e-bad-input", model="telea", images=str(folder), **SMALL)
    assert result.returncode != 0 and "broken.png" in result.stderr and "Traceback" not in result.stderr
    assert runs_of(MlflowClient(mlflow_server.uri), "e2e-bad-input") == []


class BreaksAfter(Inpainter):
    """A real backend that raises on its n-th call, as a crashing GPU would."""

    name = "telea"

    def __init__(self, calls: int):
        self.inner = load_inpainter(RunConfig(model="telea"), "cpu")
        self.calls = calls

    def inpaint(self, images, masks, seeds):
        self.calls -= 1
        if self.calls < 0:
            raise RuntimeError("device lost")
        return self.inner.inpaint(images, masks, seeds)


def test_failure_mid_run_marks_failed_and_keeps_logged_values(mlflow_server, image_folder):
    client = MlflowClient(mlflow_server.uri)
    config = RunConfig(model="telea", images=str(image_folder), experiment="e2e-failure", batch_size=2,
                       size=64, mask=32, percent=100, step=50, metrics=("ssim",))
    # two images share 4 calls, the third gets 2 more (reaching 50%), then the device fails
    with pytest.raises(RuntimeError, match="device lost"):
        run_experiment(config, mlflow_server.uri, inpainter=BreaksAfter(6), progress=False)
    parents, children = split(runs_of(client, "e2e-failure"))
    assert [p.info.status for p in parents] == ["FAILED"]
    statuses = sorted((c.data.tags["rip.image_id"], c.info.status) for c in children)
    assert statuses == [("astronaut.png", "FINISHED"), ("camera.png", "FINISHED"), ("chelsea.jpg", "FAILED")]
    broken = [c for c in children if c.info.status == "FAILED"][0]
    assert [m.step for m in client.get_metric_history(broken.info.run_id, "ssim")] == [0, 50]
    parent = parents[0].info.run_id
    assert {a.path for a in client.list_artifacts(parent)} == {"metrics.csv", "images"}
    grids = [a.path for a in client.list_artifacts(parent, "images") if a.path.endswith(".png")]
    assert sorted(int(path.split("+step+")[1].split("+")[0]) for path in grids) == [0, 50]  # reached by every image


@pytest.mark.parametrize("command", [["run"], ["tune", "--storage", "sqlite:///studies.db"]])
def test_unreachable_server_is_named_before_anything_exists(command, image_folder, tmp_path):
    port = free_port()  # nothing listens there
    result = subprocess.run(
        [str(BIN / "rip"), *command, "--tracking-uri", f"http://127.0.0.1:{port}", "--model", "telea",
         "--images", str(image_folder), "--size", "64", "--mask", "32", "--metrics", "ssim"],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    assert result.returncode == 1
    assert f"Error: cannot reach the MLflow tracking server at http://127.0.0.1:{port}: Connection refused" \
        in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # no study storage, no local store
