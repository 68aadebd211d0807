"""What the MLflow UI reads: run names, image sliders, addresses printed by `rip run`."""

import dataclasses
import os
import signal
import subprocess
import time

import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PROJECT_ENTRY_POINT
from PIL import Image

from rip.config import RunConfig
from rip.protocol.engine import Checkpoint
from rip.runner import StopRun, run_experiment
from rip.tracking.recorder import logged_steps
from rip.tracking.tags import GRID_KEY, UI_IMAGE_KEY
from rip.tracking.ui import NAME_FIELDS, configuration_name, image_name, not_conditions, runs_url, ui_command
from rip.tuning.tracking import SearchTracker
from tests.conftest import BIN, REPO, ui_addresses

SMALL = dict(model="telea", size=64, mask=32, percent=100, step=50, metrics=("ssim",), batch_size=2)


def changed(value):
    """Some other value of a field's type."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, tuple):
        return (*value, "other")
    return 7 if value is None else f"{value}x"


def test_every_non_default_condition_is_named():
    for field in dataclasses.fields(RunConfig):
        if field.name in NAME_FIELDS + not_conditions():
            continue
        config = dataclasses.replace(RunConfig(), **{field.name: changed(getattr(RunConfig(), field.name))})
        assert f"{field.name}=" in configuration_name(config), field.name
        assert f"{field.name}=" in image_name("astronaut", config), field.name
    assert configuration_name(RunConfig()) == "stable-diffusion-2-inpainting · sample · mask 64 · 512px · seed 0"
    named = RunConfig(model="telea", images="/data/paintings:10", mask=128, size=256, seed=3, paste_back=True,
                      batch_size=8, metrics=("ssim",))
    assert configuration_name(named) == "telea · paintings:10 · mask 128 · 256px · seed 3 · paste_back=true"
    assert image_name("astronaut", named) == "astronaut · telea m128 256px s3 paste_back=true"


def test_rip_switches_mlflows_own_address_lines_off_unless_the_user_set_the_variable(monkeypatch):
    from click.testing import CliRunner

    from rip.cli import main

    for given, kept in ((None, "true"), ("false", "false"), ("1", "1")):
        if given is None:
            monkeypatch.delenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", raising=False)
        else:
            monkeypatch.setenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", given)
        assert CliRunner().invoke(main, ["sweep", "demo", "--dry-run"]).exit_code == 0
        assert os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] == kept


def test_addresses_open_the_runs_view(tmp_path):
    assert runs_url("http://host:5000/", "7") == "http://host:5000/#/experiments/7/runs?workflowType=machine_learning"
    assert runs_url("sqlite:///mlflow.db", "7").startswith("http://127.0.0.1:5000/#/experiments/7/runs?")
    os.chdir(tmp_path)
    assert ui_command("sqlite:///mlflow.db") == f"mlflow ui --backend-store-uri sqlite:///{tmp_path}/mlflow.db"
    assert ui_command("http://host:5000") is None


def grid_pngs(client, run_id, key):
    """Every PNG `log_image` wrote for `key`, as {step: [arrays]}."""
    found = {}
    for artifact in client.list_artifacts(run_id, "images"):
        name = artifact.path.split("/")[-1]
        if name.startswith(f"{key}+step+") and name.endswith(".png"):
            step = int(name.split("+")[2])
            found.setdefault(step, []).append(artifact.path)
    return found


@pytest.mark.slow
def test_rip_run_names_runs_prints_addresses_and_logs_sliders(mlflow_server, image_folder, tmp_path):
    client = MlflowClient(mlflow_server.uri)
    args = [str(BIN / "rip"), "run", "--tracking-uri", mlflow_server.uri, "--experiment", "ui-records",
            "--images", str(image_folder), "--model", "telea", "--size", "64", "--mask", "32", "--percent", "100",
            "--metrics", "ssim", "--mask-order", "scan"]
    result = subprocess.run(args, capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, "RIP_SPOOL": str(tmp_path / "spool")})
    assert result.returncode == 0, result.stderr[-3000:]
    experiment = client.get_experiment_by_name("ui-records").experiment_id
    [parent] = client.search_runs([experiment], "tags.`rip.kind` = 'configuration'")
    name = parent.info.run_name
    assert name == f"telea · {image_folder.name} · mask 32 · 64px · seed 0 · percent=100 · mask_order=scan"
    runs_view = f"{mlflow_server.uri}/#/experiments/{experiment}/runs?workflowType=machine_learning"
    run_page = f"{mlflow_server.uri}/#/experiments/{experiment}/runs/{parent.info.run_id}?workflowType=machine_learning"
    assert f"experiment ui-records: run {name} ({parent.info.run_id})" in result.stderr
    # once, at the start, above the progress bar; MLflow's own lines (one pair per run it ends) are off
    assert ui_addresses(result.stdout + result.stderr) == [run_page, runs_view]
    assert f"View run {name} at: {run_page}\nView experiment at: {runs_view}\n" in result.stderr
    assert result.stdout == f"run {name} ({parent.info.run_id}) finished\n"

    children = client.search_runs([experiment], "tags.`rip.kind` = 'image'")
    assert sorted(c.info.run_name for c in children) == [
        f"{image} · telea m32 64px s0 percent=100 mask_order=scan" for image in ("astronaut.png", "camera.png", "chelsea.jpg")
    ]
    for run in (parent, *children):
        assert run.data.tags["mlflow.loggedImages"] == "True"
    for child in children:
        assert {step: len(paths) for step, paths in grid_pngs(client, child.info.run_id, UI_IMAGE_KEY).items()} == {
            0: 1, 50: 1, 100: 1}
        final = grid_pngs(client, child.info.run_id, UI_IMAGE_KEY)[100][0]
        slider = np.asarray(Image.open(client.download_artifacts(child.info.run_id, final, str(tmp_path))))
        kept = np.asarray(Image.open(client.download_artifacts(child.info.run_id, "generations/0100.png", str(tmp_path))))
        assert np.array_equal(slider, kept)  # the slider shows the lossless generation
    grids = grid_pngs(client, parent.info.run_id, GRID_KEY)
    assert {step: len(paths) for step, paths in grids.items()} == {0: 1, 50: 1, 100: 1}
    grid = np.asarray(Image.open(client.download_artifacts(parent.info.run_id, grids[0][0], str(tmp_path))))
    assert grid.shape == (4 + 64 + 4, 4 + 3 * (64 + 4), 3)  # three 64 px images side by side, 4 px apart


class StopAfter:
    """Observer that stops the run at the n-th checkpoint, as Ctrl-C would."""

    def __init__(self, checkpoints: int):
        self.left = checkpoints

    def __call__(self, event):
        if isinstance(event, Checkpoint):
            self.left -= 1
            if self.left == 0:
                raise StopRun("test")


@pytest.mark.slow
def test_resume_says_where_it_continues_and_logs_each_ui_image_once(mlflow_server, image_folder, tmp_path):
    client = MlflowClient(mlflow_server.uri)
    config = RunConfig(images=str(image_folder), experiment="ui-resume", **SMALL)
    with pytest.raises(StopRun) as stopped:
        run_experiment(config, mlflow_server.uri, observer=StopAfter(4), spool_root=tmp_path, progress=False)
    run_id = stopped.value.run_id
    assert logged_steps(client, run_id, GRID_KEY) == set()  # the third image had not started
    # a user who asks for MLflow's own address lines gets them as well
    result = subprocess.run([str(BIN / "rip"), "run", "--tracking-uri", mlflow_server.uri, "--resume", run_id],
                            capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, "RIP_SPOOL": str(tmp_path), "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "false"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("🏃 View run") == 4  # three image runs and the configuration run, as each ends
    assert f"experiment ui-resume: resuming run {client.get_run(run_id).info.run_name} ({run_id}) from 50 %, 3 of 3 images to go" in result.stderr
    assert {step: len(paths) for step, paths in grid_pngs(client, run_id, GRID_KEY).items()} == {0: 1, 50: 1, 100: 1}
    for child in client.search_runs([client.get_run(run_id).info.experiment_id], "tags.`rip.kind` = 'image'"):
        assert {s: len(p) for s, p in grid_pngs(client, child.info.run_id, UI_IMAGE_KEY).items()} == {0: 1, 50: 1, 100: 1}


@pytest.mark.slow
def test_mlflow_run_gets_a_name_and_ctrl_c_names_its_signal(mlflow_server, image_folder, tmp_path):
    client = MlflowClient(mlflow_server.uri)
    experiment = client.create_experiment("ui-project")
    project = client.create_run(experiment, run_name="random-name-42", tags={MLFLOW_PROJECT_ENTRY_POINT: "main"})
    config = RunConfig(images=str(image_folder), **SMALL)
    run_experiment(config, mlflow_server.uri, run_id=project.info.run_id, spool_root=tmp_path, progress=False)
    assert client.get_run(project.info.run_id).info.run_name == configuration_name(config)

    # long enough to be interrupted: 64 squares per image, 100,000 % in two checkpoints
    args = [str(BIN / "rip"), "run", "--tracking-uri", mlflow_server.uri, "--experiment", "ui-signal",
            "--images", str(image_folder), "--model", "telea", "--size", "64", "--mask", "8",
            "--percent", "100000", "--step", "50000", "--metrics", "ssim"]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                               env={**os.environ, "RIP_SPOOL": str(tmp_path)})
    deadline = time.time() + 120
    while time.time() < deadline and not client.get_experiment_by_name("ui-signal"):
        time.sleep(0.3)
    while time.time() < deadline and not client.search_runs(
            [client.get_experiment_by_name("ui-signal").experiment_id], "tags.`rip.kind` = 'image'"):
        time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-3000:]
    assert "stopped by SIGINT: run " in stderr and "is marked KILLED" in stderr and "View run telea" in stderr


@pytest.mark.slow
def test_trials_are_named_by_their_parameters(mlflow_server):
    client = MlflowClient(mlflow_server.uri)
    tracker = SearchTracker(client)
    experiment = client.create_experiment("ui-trials")
    study = tracker.start_study_run(experiment, "names", {"space": "mask=32,64 mask_order=random,scan"}, None)
    for number, (state, mask) in enumerate([("COMPLETE", 32), ("PRUNED", 64), ("FAIL", None)]):
        run_id = tracker.open_trial_run(study, "names", number, {})
        if mask:
            config = RunConfig(model="telea", mask=mask, mask_order="scan")
            client.set_tag(run_id, "rip.config", config.to_json())
        tracker.close_trial_run(run_id, state, 0.5 if state == "COMPLETE" else None, study, number)
    names = {run.info.run_name for run in client.search_runs([experiment], "tags.`rip.trial` != ''")}
    assert names == {"trial 0 · mask=32 mask_order=scan", "trial 1 · mask=64 mask_order=scan · pruned",
                     "trial 2 · failed"}
