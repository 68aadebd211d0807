"""Several `rip tune` processes on one study in a real PostgreSQL, recording to one tracking server."""

import itertools
import os
import signal
import subprocess
import time

import optuna
import pytest
import sqlalchemy
from mlflow import MlflowClient

from tests.conftest import BIN, finish_logged, start_logged, ui_addresses

pytestmark = pytest.mark.slow
EXPERIMENT = "e2e-tune-workers"
FIXED = ["--model", "telea", "--size", "64", "--metrics", "ssim", "--heartbeat-interval", "1"]


def start_worker(server, storage, study, tmp_path, *options) -> subprocess.Popen:
    return start_logged([str(BIN / "rip"), "tune", *FIXED, "--storage", storage, "--study-name", study,
                         "--tracking-uri", server.uri, "--experiment", EXPERIMENT, "--output", str(tmp_path / "out"),
                         *options], tmp_path)


def finish(worker, timeout=240) -> str:
    return finish_logged(worker, timeout)


def storage_ready(storage: str) -> bool:
    """Whether a worker finished creating Optuna's tables (the schema version is stamped last)."""
    engine = sqlalchemy.create_engine(storage.replace("postgresql://", "postgresql+psycopg2://"))
    try:
        with engine.connect() as connection:
            if not sqlalchemy.inspect(connection).has_table("alembic_version"):
                return False
            return connection.execute(sqlalchemy.text("SELECT count(*) FROM alembic_version")).scalar() > 0
    finally:
        engine.dispose()


def trials_of(storage: str, study: str) -> list[optuna.trial.FrozenTrial]:
    storage = storage.replace("postgresql://", "postgresql+psycopg2://")  # SQLAlchemy 2.1 defaults to psycopg 3
    return optuna.load_study(study_name=study, storage=storage).trials


def trial_runs(client, study) -> dict:
    """The study's MLflow runs: its own, and its trials' by trial number."""
    experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
    [parent] = client.search_runs([experiment], f"tags.`rip.kind` = 'study' and tags.`rip.study` = '{study}'")
    runs = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    by_number = {int(run.data.tags["rip.trial"]): run for run in runs}
    assert len(by_number) == len(runs)
    return parent, by_number


def test_two_workers_share_a_grid_study(mlflow_server, image_folder, postgres_url, tmp_path):
    space = f"images={image_folder}:1,{image_folder}:2 mask=16,32 seed=0,1"
    options = ["--sampler", "grid", "--space", space, "--percent", "100", "--step", "50"]
    workers = [start_worker(mlflow_server, postgres_url, "grid", tmp_path, *options) for _ in range(2)]
    logs = [finish(worker) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], logs

    trials = trials_of(postgres_url, "grid")
    assert [t.number for t in trials] == list(range(8)) and {t.state.name for t in trials} == {"COMPLETE"}
    points = {(t.params["images"], t.params["mask"], t.params["seed"]) for t in trials}
    assert points == set(itertools.product([f"{image_folder}:1", f"{image_folder}:2"], [16, 32], [0, 1]))
    assert {t.user_attrs["rip.worker"].split(":")[1] for t in trials} == {str(w.pid) for w in workers}

    parent, runs = trial_runs(MlflowClient(mlflow_server.uri), "grid")
    assert sorted(runs) == list(range(8)) and parent.info.status == "FINISHED"
    for trial in trials:
        run = runs[trial.number]
        assert run.info.run_id == trial.user_attrs["rip.mlflow_run_id"] and run.info.status == "FINISHED"
        assert (run.data.params["images"], run.data.params["mask"], run.data.params["seed"]) == (
            trial.params["images"], str(trial.params["mask"]), str(trial.params["seed"]))
    # every worker names the study's run and the runs of the trials it computes, each once
    shown = [address for log in logs for address in ui_addresses(log)]
    assert sum(parent.info.run_id in address for address in shown) == 2
    assert {run.info.run_id for run in runs.values()} == {a.split("/runs/")[1].split("?")[0] for a in shown
                                                           if "/runs/" in a and parent.info.run_id not in a}
    # exactly one worker summarised the study
    assert sorted("best: trial" in log for log in logs) == [False, True]


def test_a_killed_workers_trial_is_retried_by_the_other(mlflow_server, image_folder, postgres_url, tmp_path):
    options = ["--space", "mask=16,32 mask_order", "--images", f"{image_folder}:2", "--percent", "400",
               "--step", "50", "--n-trials", "4", "--pruner", "none", "--grace-period", "3"]
    doomed, survivor = (start_worker(mlflow_server, postgres_url, "kill", tmp_path, *options) for _ in range(2))
    killed = None
    deadline = time.time() + 180
    while killed is None and time.time() < deadline and doomed.poll() is None:
        time.sleep(0.2)
        if not storage_ready(postgres_url):
            continue  # opening it now would create Optuna's tables alongside the workers
        try:
            trials = trials_of(postgres_url, "kill")
        except KeyError:
            continue  # no worker has created the study yet
        running = [t for t in trials if t.state.name == "RUNNING" and "rip.mlflow_run_id" in t.user_attrs
                   and "rip.reused_from" not in t.user_attrs and t.user_attrs["rip.worker"].endswith(f":{doomed.pid}")]
        if running:
            os.killpg(doomed.pid, signal.SIGKILL)
            killed = running[0]
    assert killed is not None, finish(doomed)
    log = finish(survivor)
    assert doomed.wait() == -signal.SIGKILL and survivor.returncode == 0, log

    trials = trials_of(postgres_url, "kill")
    assert [t.number for t in trials if t.state.name == "FAIL"] == [killed.number]
    assert sum(t.state.name == "COMPLETE" for t in trials) == 4 and len(trials) == 5
    [retry] = [t for t in trials if t.user_attrs.get("rip.retry_of") == killed.number]
    assert retry.state.name == "COMPLETE" and retry.params == killed.params
    assert retry.user_attrs["rip.worker"].endswith(f":{survivor.pid}")

    client = MlflowClient(mlflow_server.uri)
    parent, runs = trial_runs(client, "kill")
    computed = [t for t in trials if "rip.reused_from" not in t.user_attrs]  # the others reused a value
    assert sorted(runs) == [t.number for t in computed]
    dead = runs[killed.number]
    assert dead.info.status == "FAILED" and dead.data.tags["rip.trial_state"] == "FAIL"
    images = client.search_runs([dead.info.experiment_id], f"tags.`mlflow.parentRunId` = '{dead.info.run_id}'")
    assert "RUNNING" not in {image.info.status for image in images}
    if "rip.reused_from" not in retry.user_attrs:  # else a completed trial had already run its configuration
        assert runs[retry.number].data.tags["rip.retry_of"] == str(killed.number)
    assert {runs[t.number].info.status for t in computed if t.state.name == "COMPLETE"} == {"FINISHED"}
