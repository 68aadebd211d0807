"""`rip demo` driven through its API by `gradio_client`, without network: each run is the run `rip run`
makes, two clients at once both finish, Stop ends a run KILLED, bad input is a message and no run."""

import os
import re
import shutil
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from mlflow import MlflowClient
from PIL import Image

from analysis.artifacts import run_animation
from rip.cli import main
from rip.demo.uploads import store_upload
from tests.conftest import REPO, free_port

SETTINGS = dict(model="telea", mask=32, size=128, percent=100, seed=0, metrics=["stlpips-alex"])
STEPS = [0, 50, 100]  # the checkpoints of SETTINGS


def start(client: Client, source: str, picture=None, sample="sample#astronaut", **settings):
    """Submit the demo's `run` event; the job streams the page's updates."""
    values = {**SETTINGS, **settings}
    return client.submit(source, picture, sample, None, values["model"], values["mask"], values["size"],
                         values["percent"], values["seed"], values["metrics"], api_name="/run")


def run_id_of(status: str) -> str:
    match = re.search(r"run `([0-9a-f]{32})`", status)
    assert match, status
    return match.group(1)


def runs_of(mlflow_client: MlflowClient, experiment: str, kind: str) -> list:
    found = mlflow_client.get_experiment_by_name(experiment)
    if found is None:
        return []
    return mlflow_client.search_runs([found.experiment_id], f"tags.`rip.kind` = '{kind}'")


def histories(mlflow_client: MlflowClient, run) -> dict[str, list[tuple[int, float]]]:
    """Every metric of a run but the timing and system ones, as (step, value) lists."""
    return {key: sorted((m.step, m.value) for m in mlflow_client.get_metric_history(run.info.run_id, key))
            for key in run.data.metrics if not key.startswith(("perf/", "system/"))}


def artifact_paths(mlflow_client: MlflowClient, run_id: str, path: str | None = None) -> list[str]:
    """Every artifact's path, the time and id MLflow writes into the names of logged images left out."""
    found = []
    for item in mlflow_client.list_artifacts(run_id, path):
        found += artifact_paths(mlflow_client, run_id, item.path) if item.is_dir else [item.path]
    return sorted(re.sub(r"\+timestamp\+\d+\+[0-9a-f-]+", "", path) for path in found)


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    """A 96×72 photograph to upload."""
    from skimage import data

    path = tmp_path_factory.mktemp("upload") / "chelsea.jpg"
    Image.fromarray(data.chelsea()).resize((96, 72)).save(path, quality=95)
    return path


@pytest.mark.slow
def test_a_demo_run_is_the_run_rip_run_makes(demo_server, mlflow_server, picture, tmp_path):
    client = Client(demo_server.url, verbose=False)
    job = start(client, "upload", handle_file(str(picture)))
    final = job.result(timeout=600)
    updates = job.outputs()
    run_id = run_id_of(final[0])
    assert final[0].startswith("Finished")
    # streamed: the run's link, then one update per checkpoint with the generation, the plot and the filmstrip
    link = next(update[1] for update in updates if isinstance(update[1], str) and "MLflow run" in update[1])
    assert f"/runs/{run_id}?workflowType=machine_learning" in link and mlflow_server.uri in link
    checkpoints = [update for update in updates if isinstance(update[4], list) and update[4]]
    assert [len(update[4]) for update in checkpoints] == [1, 2, 3]
    assert [item["caption"].split(" %")[0] for item in checkpoints[-1][4]] == ["0", "50", "100"]
    shown = np.asarray(Image.open(checkpoints[-1][2]))
    assert shown.shape == (512, 512, 3)  # 128 px enlarged four times
    plot = checkpoints[-1][3]
    assert plot["columns"] == ["percent", "metric", "value"] and [row[:2] for row in plot["data"]] == \
        [[percent, "stlpips-alex"] for percent in STEPS]

    mlflow_client = MlflowClient(mlflow_server.uri)
    parent = mlflow_client.get_run(run_id)
    assert parent.info.status == "FINISHED"
    assert mlflow_client.get_experiment(parent.info.experiment_id).name == "demo-tests"
    assert re.fullmatch(r".*/uploads/chelsea-[0-9a-f]{10}", parent.data.params["images"])

    # the same configuration through `rip run`
    options = ["--images", parent.data.params["images"], "--model", "telea", "--mask", "32", "--size", "128",
               "--percent", "100", "--seed", "0", "--metrics", "stlpips-alex"]
    result = CliRunner().invoke(main, ["run", *options, "--experiment", "demo-tests-cli",
                                       "--tracking-uri", mlflow_server.uri], env={"RIP_SPOOL": str(tmp_path / "spool")})
    assert result.exit_code == 0, result.output
    [cli_parent] = runs_of(mlflow_client, "demo-tests-cli", "configuration")

    def without_experiment(params):
        return {key: value for key, value in params.items() if key != "experiment"}

    assert without_experiment(parent.data.params) == without_experiment(cli_parent.data.params)
    assert parent.info.run_name == cli_parent.info.run_name
    assert set(parent.data.tags) == set(cli_parent.data.tags)
    assert parent.data.tags["rip.config"].replace('"demo-tests"', "") == \
        cli_parent.data.tags["rip.config"].replace('"demo-tests-cli"', "")
    assert histories(mlflow_client, parent) == histories(mlflow_client, cli_parent)
    assert artifact_paths(mlflow_client, run_id) == artifact_paths(mlflow_client, cli_parent.info.run_id)

    [child] = mlflow_client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'")
    [cli_child] = runs_of(mlflow_client, "demo-tests-cli", "image")
    assert child.data.tags["rip.image_id"] == "chelsea.jpg" and child.info.run_name == cli_child.info.run_name
    demo_values, cli_values = histories(mlflow_client, child), histories(mlflow_client, cli_child)
    assert [step for step, _ in demo_values["stlpips_alex"]] == STEPS
    assert demo_values == cli_values  # every metric equal, at every step
    assert [row[2] for row in plot["data"]] == pytest.approx([value for _, value in demo_values["stlpips_alex"]])
    assert artifact_paths(mlflow_client, child.info.run_id) == artifact_paths(mlflow_client, cli_child.info.run_id)

    # the page offers the image run's animation as a download: the file the run logged
    offered = Path(final[5])
    assert offered.name == f"{parent.data.params['images'].rsplit('/', 1)[-1]}-animation.webp"
    assert offered.read_bytes() == run_animation(mlflow_client, child.info.run_id)
    with Image.open(offered) as animation:
        assert animation.format == "WEBP" and animation.n_frames == len(STEPS)


@pytest.mark.slow
def test_two_clients_at_once_both_finish_in_runs_of_their_own(demo_server, mlflow_server):
    pictures = ("sample#camera", "sample#coins")
    jobs = [start(Client(demo_server.url, verbose=False), "sample photograph", sample=sample) for sample in pictures]
    finals = [job.result(timeout=600) for job in jobs]
    run_ids = [run_id_of(final[0]) for final in finals]
    assert all(final[0].startswith("Finished") for final in finals) and len(set(run_ids)) == 2
    mlflow_client = MlflowClient(mlflow_server.uri)
    for run_id, sample in zip(run_ids, pictures):
        parent = mlflow_client.get_run(run_id)
        assert parent.info.status == "FINISHED" and parent.data.params["images"] == sample
        [child] = mlflow_client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'")
        assert child.data.tags["rip.image_id"] == sample.partition("#")[2]
        assert [m.step for m in mlflow_client.get_metric_history(child.info.run_id, "stlpips_alex")] == STEPS


@pytest.mark.slow
def test_stop_ends_the_run_killed_and_keeps_what_it_logged(demo_server, mlflow_server):
    client = Client(demo_server.url, verbose=False)
    # biharmonic on 8-px squares: 1,024 inpaintings, seconds between checkpoints
    job = start(client, "sample photograph", sample="sample#moon", model="biharmonic", mask=8, percent=400)
    first_checkpoint = threading.Event()
    while not job.done():
        if any(isinstance(update[4], list) and update[4] for update in job.outputs()):
            first_checkpoint.set()
            break
        first_checkpoint.wait(0.2)
    assert first_checkpoint.is_set(), job.result()
    client.predict(api_name="/stop")
    final = job.result(timeout=600)
    assert final[0].startswith("Stopped") and "KILLED" in final[0]
    assert not any(isinstance(update[5], str) for update in job.outputs())  # logged at the last checkpoint only
    mlflow_client = MlflowClient(mlflow_server.uri)
    parent = mlflow_client.get_run(run_id_of(final[0]))
    assert parent.info.status == "KILLED"
    [child] = mlflow_client.search_runs([parent.info.experiment_id],
                                        f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    steps = [m.step for m in mlflow_client.get_metric_history(child.info.run_id, "stlpips_alex")]
    assert steps[:2] == [0, 50] and steps[-1] < 400  # what was computed before the stop is logged


@pytest.fixture
def bad_pictures(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not a picture at all\n" * 20)
    huge = tmp_path / "huge.png"
    Image.new("1", (9500, 9500)).save(huge)  # 90 million pixels, over Pillow's MAX_IMAGE_PIXELS
    return {"text": text, "huge": huge}


@pytest.mark.slow
@pytest.mark.parametrize("case, settings, message", [
    ("text", {}, "notes.png is not an image a run can read"),
    ("huge", {}, "huge.png is too large"),
    ("sample", {"mask": 256}, "mask 256 does not divide size 128"),
    ("sample", {"percent": 75}, "percent 75 is not a multiple of step 50"),
    ("sample", {"metrics": []}, "metrics must name at least one metric"),
    ("sample", {"seed": -1}, "seed must be a non-negative integer, got -1"),
    ("sample", {"model": "nobody/no-such-model"}, "nobody/no-such-model"),
    ("none", {}, "upload a picture first"),
])
def test_bad_input_is_a_message_and_no_run(demo_server, mlflow_server, bad_pictures, case, settings, message):
    mlflow_client = MlflowClient(mlflow_server.uri)
    before = len(runs_of(mlflow_client, demo_server.experiment, "configuration"))
    client = Client(demo_server.url, verbose=False)
    if case == "sample":
        job = start(client, "sample photograph", **settings)
    else:
        job = start(client, "upload", handle_file(str(bad_pictures[case])) if case in bad_pictures else None)
    with pytest.raises(AppError) as error:
        job.result(timeout=600)
    assert message in str(error.value) and "Traceback" not in str(error.value)
    assert len(runs_of(mlflow_client, demo_server.experiment, "configuration")) == before


@pytest.mark.parametrize("mode", ["CMYK", "I;16", "LA", "P"])
def test_odd_modes_are_kept_as_uploaded(tmp_path, mode):
    path = tmp_path / f"odd.{'tiff' if mode == 'I;16' else 'png' if mode != 'CMYK' else 'jpg'}"
    Image.new(mode, (40, 30)).save(path)
    folder = store_upload(path, tmp_path / "uploads")
    [kept] = (tmp_path / "uploads").glob("*/*")
    assert str(kept.parent) == folder and kept.read_bytes() == path.read_bytes()
    assert store_upload(path, tmp_path / "uploads") == folder  # the same picture, the same image set


def test_the_space_installs_what_the_package_needs():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["demo"]]
    lines = (REPO / "deploy/space/requirements.txt").read_text().splitlines()
    assert [line for line in lines if line and not line.startswith("#")] == wanted
    front = (REPO / "deploy/space/README.md").read_text().split("---")[1]
    assert "sdk: gradio" in front and "app_file: app.py" in front


@pytest.mark.slow
def test_the_space_serves_the_demo_from_its_own_folder(tmp_path):
    """Assembled as docs/demo.md says: deploy/space's files, rip/ and analysis/ beside them."""
    space = tmp_path / "space"
    shutil.copytree(REPO / "deploy/space", space)
    for package in ("rip", "analysis"):
        shutil.copytree(REPO / package, space / package, ignore=shutil.ignore_patterns("__pycache__"))
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "GRADIO_SERVER_PORT": str(port),
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "RIP_CACHE": str(tmp_path / "cache")}
    server = subprocess.Popen([sys.executable, str(space / "app.py")], cwd=tmp_path, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 180
        while time.time() < deadline and server.poll() is None:
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:  # not listening yet
                time.sleep(1)
        assert server.poll() is None, server.stdout.read()
        assert {"/run", "/stop"} <= set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
        final = client.predict("sample photograph", None, "sample#coins", None, "telea", 64, 128, 100, 0, ["ssim"],
                               api_name="/run")
        assert final[0].startswith("Finished")
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
