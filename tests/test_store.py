"""Local SQLite tracking stores: many processes starting at once, artifacts beside the store."""

import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from rip.cli import main
from rip.tracking.store import ARTIFACT_ROOT_ENV, use_local_stores
from tests.conftest import BIN

RUN = ["run", "--model", "telea", "--images", "sample:1", "--size", "64", "--mask", "32", "--percent", "50",
       "--step", "50", "--metrics", "ssim"]


def artifact_files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


@pytest.mark.slow
def test_processes_started_together_on_a_fresh_store_all_succeed(tmp_path):
    store, elsewhere = tmp_path / "store", tmp_path / "elsewhere"
    store.mkdir()
    elsewhere.mkdir()
    uri = f"sqlite:///{store / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "RIP_SPOOL": str(tmp_path / "spool")}
    env.pop(ARTIFACT_ROOT_ENV, None)
    workers = [
        subprocess.Popen([str(BIN / "rip"), *RUN, "--seed", str(seed), "--tracking-uri", uri], cwd=elsewhere,
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for seed in range(3)
    ]
    outputs = [worker.communicate(timeout=300)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0, 0], outputs
    assert not any("Traceback" in output for output in outputs), outputs

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("recursive-inpainting")
    assert experiment.artifact_location == str(store / "mlartifacts" / experiment.experiment_id)
    parents = client.search_runs([experiment.experiment_id], "tags.`rip.kind` = 'configuration'")
    assert sorted(run.data.params["seed"] for run in parents) == ["0", "1", "2"]
    assert {run.info.status for run in parents} == {"FINISHED"}
    # the runs' files are beside the store, none in the folder the commands ran in
    assert list(elsewhere.iterdir()) == []
    for run in parents:
        assert artifact_files(store / "mlartifacts" / experiment.experiment_id / run.info.run_id)


def test_the_artifact_root_can_be_set(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(ARTIFACT_ROOT_ENV, "shared/artifacts")
    use_local_stores()
    (tmp_path / "store").mkdir()
    client = MlflowClient(f"sqlite:///{tmp_path / 'store' / 'runs.db'}")
    experiment = client.get_experiment(client.create_experiment("rooted"))
    assert experiment.artifact_location == str(tmp_path / "shared" / "artifacts" / experiment.experiment_id)
    assert client.get_experiment("0").artifact_location == str(tmp_path / "shared" / "artifacts" / "0")


def test_an_experiment_created_meanwhile_by_another_process_is_reused(tmp_path):
    use_local_stores()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = f"from mlflow import MlflowClient; print(MlflowClient({uri!r}).create_experiment('shared'))"
    other = subprocess.run([str(BIN / "python"), "-c", code], capture_output=True, text=True, check=True)
    assert MlflowClient(uri).create_experiment("shared") == other.stdout.strip().splitlines()[-1]


def test_a_store_in_a_missing_folder_is_one_message(tmp_path):
    uri = f"sqlite:///{tmp_path / 'no' / 'such' / 'mlflow.db'}"
    result = CliRunner().invoke(main, [*RUN, "--tracking-uri", uri])
    assert result.exit_code == 1, result.output
    assert f"cannot open the tracking store {uri}: folder {tmp_path / 'no' / 'such'} does not exist" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
