"""Shared sweeps: `rip sweep PRESET --storage URL` workers on one queue of units, one tracking server.

Every shared result is compared, value for value, with a one-process `rip sweep` of the same
preset; workers are real processes, killed with real signals.
"""

import os
import signal
import subprocess
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import optuna
import pytest
import yaml
from click.testing import CliRunner
from mlflow import MlflowClient

from rip.config import RunConfig
from rip.sweeps.cli import sweep
from rip.sweeps.units import DEFINITION_ATTR, SweepPlan, register
from tests.conftest import BIN, finish_logged, free_port, start_logged, ui_addresses

pytestmark = pytest.mark.slow
QUEUE = ["--heartbeat-interval", "1", "--grace-period", "3"]
KEYS = ("ssim", "iteration")


@pytest.fixture(scope="module")
def preset(image_folder, tmp_path_factory):
    """Two configurations (masks 16 and 32) of three small images, Telea, SSIM."""
    path = tmp_path_factory.mktemp("preset") / "grid.yaml"
    path.write_text(yaml.safe_dump(dict(model="telea", images=str(image_folder), size=64, mask=[16, 32],
                                        percent=200, step=50, metrics=["ssim"])))
    return path


def environment(tmp_path, **extra):
    return {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "RIP_SPOOL": str(tmp_path / "spool"), **extra}


def sweep_args(preset, server, experiment, *options):
    return [str(BIN / "rip"), "sweep", str(preset), "--tracking-uri", server.uri, "--set", f"experiment={experiment}",
            *options]


def start(args, tmp_path, **env) -> subprocess.Popen:
    return start_logged(args, tmp_path, {"RIP_SPOOL": str(tmp_path / "spool"), **env})


finish = finish_logged


def results(client, experiment) -> dict:
    """Per mask: the configuration run, each image's metric histories, the aggregates and metrics.csv."""
    found = client.get_experiment_by_name(experiment).experiment_id
    parents = client.search_runs([found], "tags.`rip.kind` = 'configuration'")
    by_mask = {}
    for parent in parents:
        mask = parent.data.params["mask"]
        assert mask not in by_mask, f"two runs of mask {mask}"
        children = client.search_runs([found], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
        images = {}
        for child in children:
            image = child.data.tags["rip.image_id"]
            assert image not in images, f"two runs of image {image}"
            images[image] = dict(status=child.info.status, **{
                key: [(m.step, m.value) for m in client.get_metric_history(child.info.run_id, key)] for key in KEYS})
        aggregates = {key: [(m.step, m.value) for m in client.get_metric_history(parent.info.run_id, key)]
                      for key in ("ssim_mean", "ssim_std")}
        with tempfile.TemporaryDirectory() as folder:
            table = Path(client.download_artifacts(parent.info.run_id, "metrics.csv", folder)).read_text()
        by_mask[mask] = dict(run=parent, images=images, aggregates=aggregates, table=table)
    return by_mask


def assert_equal_results(shared, reference):
    assert shared.keys() == reference.keys() == {"16", "32"}
    for mask, expected in reference.items():
        got = shared[mask]
        assert got["run"].info.status == "FINISHED"
        assert got["images"].keys() == expected["images"].keys() and len(got["images"]) == 3
        for image, histories in expected["images"].items():
            assert got["images"][image]["status"] == "FINISHED"
            for key in KEYS:  # same values at the same steps, each step once
                assert sorted(got["images"][image][key]) == sorted(histories[key]), (mask, image, key)
                assert len({step for step, _ in got["images"][image][key]}) == 5
        assert got["aggregates"] == expected["aggregates"] and len(got["aggregates"]["ssim_mean"]) == 5
        assert got["table"] == expected["table"]


@pytest.fixture(scope="module")
def reference(mlflow_server, preset, tmp_path_factory):
    """The same preset in one process, without --storage."""
    folder = tmp_path_factory.mktemp("reference")
    done = subprocess.run(sweep_args(preset, mlflow_server, "sweep-reference"), env=environment(folder),
                          capture_output=True, text=True, cwd=folder)
    assert done.returncode == 0, done.stderr[-3000:]
    # each configuration's run once, the experiment's runs list once
    assert len(ui_addresses(done.stdout + done.stderr)) == len(set(ui_addresses(done.stdout + done.stderr))) == 3
    return results(MlflowClient(mlflow_server.uri), "sweep-reference")


def units_of(storage) -> list[optuna.trial.FrozenTrial]:
    storage = storage.replace("postgresql://", "postgresql+psycopg2://")
    [summary] = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage).trials


def wait_for_checkpoints(client, experiment, count, workers, timeout=600):
    """Wait until some image run has `count` checkpoints while `workers` still run."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert all(w.poll() is None for w in workers), [finish(w) for w in workers]
        found = client.get_experiment_by_name(experiment)
        if found:
            for child in client.search_runs([found.experiment_id], "tags.`rip.kind` = 'image'"):
                if len(client.get_metric_history(child.info.run_id, "ssim")) >= count:
                    return
        time.sleep(0.2)
    raise AssertionError("no checkpoint logged in time")


def test_two_workers_share_a_sweep_registered_once_with_the_one_process_values(
        mlflow_server, preset, reference, postgres_url, tmp_path):  # noqa: F811
    args = sweep_args(preset, mlflow_server, "sweep-two", "--storage", postgres_url, "--chunk-size", "1", *QUEUE)
    workers = [start(args, tmp_path) for _ in range(2)]  # both start on an empty database
    logs = [finish(worker) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], logs

    trials = units_of(postgres_url)
    assert len(trials) == 6 and {t.state.name for t in trials} == {"COMPLETE"}  # each unit once, none twice
    assert sorted(tuple(t.user_attrs["rip.unit"]) for t in trials) == [
        (c, i, i + 1) for c in (0, 1) for i in range(3)]
    assert {t.user_attrs["rip.worker"].split(":")[1] for t in trials} == {str(w.pid) for w in workers}
    assert sum("registered now" in log for log in logs) == 1
    for log in logs:  # each configuration a worker works on, once; the experiment's runs list once
        assert len(ui_addresses(log)) == len(set(ui_addresses(log))) >= 2, log
    assert "batched with unit(s)" in "".join(logs)  # units of one image join a batch of four
    assert_equal_results(results(MlflowClient(mlflow_server.uri), "sweep-two"), reference)
    runs = [r["run"] for r in results(MlflowClient(mlflow_server.uri), "sweep-two").values()]
    assert {r.data.tags["rip.sweep_key"] for r in runs} == {units_of_name(postgres_url)}
    assert len({r.data.tags["rip.config_hash"] for r in runs}) == 2

    status = subprocess.run([*args, "--status"], capture_output=True, text=True, env=environment(tmp_path))
    assert status.returncode == 0, status.stderr
    assert "3/3 units done, 0 running, 0 failed, 0 waiting; 3/3 images" in status.stdout
    assert "6/6 units, 6/6 images finished" in status.stdout
    assert sorted(ui_addresses(status.stdout)) == sorted({address for log in logs for address in ui_addresses(log)})


def units_of_name(storage) -> str:
    storage = storage.replace("postgresql://", "postgresql+psycopg2://")
    return optuna.get_all_study_summaries(storage)[0].study_name


def test_a_killed_workers_unit_is_finished_by_another(mlflow_server, preset, reference, tmp_path):
    storage = f"sqlite:///{tmp_path / 'queue.db'}"
    args = sweep_args(preset, mlflow_server, "sweep-kill", "--storage", storage, "--chunk-size", "3", *QUEUE)
    client = MlflowClient(mlflow_server.uri)
    doomed = start(args, tmp_path)
    wait_for_checkpoints(client, "sweep-kill", 3, [doomed])
    survivor = start(args, tmp_path)
    os.killpg(doomed.pid, signal.SIGKILL)
    log = finish(survivor)
    assert doomed.wait() == -signal.SIGKILL and survivor.returncode == 0, log

    # the doomed worker had claimed both units (3 images each, a batch of 4 takes both)
    trials = units_of(storage)
    lost = [t for t in trials if t.state.name == "FAIL"]
    assert len(lost) == 2 and len(trials) == 4
    for unit in lost:
        assert unit.user_attrs["rip.worker"].endswith(f":{doomed.pid}")
        [retry] = [t for t in trials if t.user_attrs.get("rip.retry_of") == unit.number]
        assert retry.state.name == "COMPLETE" and retry.user_attrs["rip.unit"] == unit.user_attrs["rip.unit"]
        assert retry.user_attrs["rip.worker"].endswith(f":{survivor.pid}")
        assert f"retry of unit {unit.number}" in log
    assert "batched with unit(s)" in log
    assert_equal_results(results(client, "sweep-kill"), reference)  # no step computed twice, none missing


def test_every_worker_killed_then_the_command_again_completes(mlflow_server, preset, reference, tmp_path):
    storage = f"sqlite:///{tmp_path / 'queue.db'}"
    args = sweep_args(preset, mlflow_server, "sweep-again", "--storage", storage, "--chunk-size", "2", *QUEUE)
    client = MlflowClient(mlflow_server.uri)
    workers = [start(args, tmp_path) for _ in range(2)]
    wait_for_checkpoints(client, "sweep-again", 2, workers)
    for worker in workers:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    status = subprocess.run([*args, "--status"], capture_output=True, text=True, env=environment(tmp_path))
    assert status.returncode == 0 and " running on " in status.stdout, status.stdout + status.stderr

    again = start(args, tmp_path)
    log = finish(again)
    assert again.returncode == 0, log
    assert {t.state.name for t in latest(units_of(storage))} == {"COMPLETE"}
    assert_equal_results(results(client, "sweep-again"), reference)


def latest(trials):
    by_unit = {}
    for trial in sorted(trials, key=lambda t: t.number):
        by_unit[tuple(trial.user_attrs["rip.unit"])] = trial
    return list(by_unit.values())


def test_workers_started_by_submitit_share_the_sweep(mlflow_server, preset, reference, tmp_path):
    storage = f"sqlite:///{tmp_path / 'queue.db'}"
    command = ["submit", "--cluster", "local", "--workers", "2", "--folder", str(tmp_path / "jobs"), "--wait",
               "--", "sweep", str(preset), "--tracking-uri", mlflow_server.uri, "--set", "experiment=sweep-submitit",
               "--storage", storage, "--chunk-size", "1", *QUEUE]
    done = subprocess.run([str(BIN / "rip"), *command], capture_output=True, text=True, env=environment(tmp_path),
                          cwd=tmp_path, timeout=1200)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(": done") == 2
    printed = [address for log in (tmp_path / "jobs").rglob("*.out") for address in ui_addresses(log.read_text())]
    assert len(set(printed)) == 3  # the workers' output: the two configurations' runs and the experiment's
    ui_addresses(done.stdout + done.stderr + "".join(log.read_text() for log in (tmp_path / "jobs").rglob("*.err")))
    trials = units_of(storage)
    assert len(trials) == 6 and {t.state.name for t in trials} == {"COMPLETE"}
    assert_equal_results(results(MlflowClient(mlflow_server.uri), "sweep-submitit"), reference)


def test_bad_queue_options_stop_before_anything_exists(preset, tmp_path):
    storage = f"sqlite:///{tmp_path / 'queue.db'}"
    cases = [
        (["--storage", storage, "--chunk-size", "0"], "--chunk-size must be a positive integer, got 0"),
        (["--status"], "--status need(s) --storage"),
        (["--storage", "mysql://db/x"], "unsupported storage"),
        (["--storage", storage, "--status"], "no sweep sweep-grid-"),
    ]
    for options, fragment in cases:
        result = CliRunner().invoke(sweep, [str(preset), "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}", *options])
        assert result.exit_code == 1 and fragment in result.output, result.output
    assert not (tmp_path / "m.db").exists()


def test_a_study_of_another_sweep_is_refused(tmp_path):
    plan = SweepPlan("grid", (RunConfig(mask=16), RunConfig(mask=32)), (3, 3), chunk_size=2)
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'q.db'}", study_name=plan.study_name)
    assert register(study, plan) == 4 and register(study, plan) == 0
    other = SweepPlan("grid", plan.configs, plan.image_counts, chunk_size=3)
    assert other.study_name != plan.study_name  # another chunk size is another sweep
    study.set_user_attr(DEFINITION_ATTR, other.definition)  # as if the name were reused
    with pytest.raises(ValueError, match="holds another sweep"):
        register(study, plan)


AUTH_CONFIG = """[mlflow]
default_permission = READ
database_uri = sqlite:///{folder}/users.db
admin_username = admin
admin_password = {password}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
"""


def start_authenticated_server(folder: Path, password: str, timeout=400) -> tuple[subprocess.Popen, str]:
    """`mlflow server --app-name basic-auth` on loopback; its admin's password is in a file, not argv."""
    folder.mkdir(parents=True)
    (folder / "auth.ini").write_text(AUTH_CONFIG.format(folder=folder, password=password))
    port = free_port()
    env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(folder / "auth.ini"),
           "MLFLOW_FLASK_SERVER_SECRET_KEY": uuid.uuid4().hex, "MLFLOW_DISABLE_TELEMETRY": "true"}
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--app-name", "basic-auth", "--backend-store-uri",
         f"sqlite:///{folder / 'mlflow.db'}", "--artifacts-destination", str(folder / "artifacts"),
         "--serve-artifacts", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=open(folder / "server.log", "w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert server.poll() is None, (folder / "server.log").read_text()[-2000:]
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2):
                return server, uri
        except OSError:
            time.sleep(0.5)
    os.killpg(server.pid, signal.SIGKILL)
    raise AssertionError("the authenticated server did not start")


def test_an_authenticated_server_takes_a_worker_with_credentials_only(preset, image_folder, tmp_path, monkeypatch):
    password = uuid.uuid4().hex
    server, uri = start_authenticated_server(tmp_path / "server", password)
    try:
        storage = tmp_path / "queue.db"
        args = [str(BIN / "rip"), "sweep", str(preset), "--tracking-uri", uri, "--storage", f"sqlite:///{storage}",
                "--set", "experiment=sweep-auth", "--set", f"images={image_folder}:1@0", "--set", "mask=32",
                "--set", "percent=100"]
        refused = subprocess.run(args, capture_output=True, text=True, env=environment(tmp_path), cwd=tmp_path)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert refused.stderr.count("Error:") == 1 and "requires a login" in refused.stderr
        assert "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD" in refused.stderr
        assert not storage.exists()  # refused before the queue was touched

        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
        client = MlflowClient(uri)
        assert client.get_experiment_by_name("sweep-auth") is None  # no run, not even an experiment
        done = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, env=environment(
            tmp_path, MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=password))
        assert done.returncode == 0, done.stderr[-3000:]
        experiment = client.get_experiment_by_name("sweep-auth").experiment_id
        [parent] = client.search_runs([experiment], "tags.`rip.kind` = 'configuration'")
        [image] = client.search_runs([experiment], "tags.`rip.kind` = 'image'")
        assert parent.info.status == image.info.status == "FINISHED"
        assert len(client.get_metric_history(image.info.run_id, "ssim")) == 3
        assert [m.step for m in client.get_metric_history(parent.info.run_id, "ssim_mean")] == [0, 50, 100]
        assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"metrics.csv"}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
