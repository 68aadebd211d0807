"""Interrupted runs: SIGKILL and resume, SIGTERM, server outages, bad resumes."""

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from PIL import Image

from rip.config import RunConfig
from tests.conftest import BIN, REPO, MlflowServer, free_port

pytestmark = pytest.mark.slow
OPTIONS = dict(model="tiny", size=64, mask=16, percent=200, step=50, metrics="ssim,psnr", steps=2, batch_size=2)


def command(uri, experiment, folder, **overrides):
    args = [str(BIN / "rip"), "run", "--tracking-uri", uri, "--experiment", experiment, "--images", str(folder)]
    for key, value in {**OPTIONS, **overrides}.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return args


def env(spool: Path) -> dict[str, str]:
    return {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "RIP_SPOOL": str(spool)}


def parent_of(client, experiment):
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs([found.experiment_id], "tags.`rip.kind` = 'configuration'")
    return runs[0] if runs else None


def children_of(client, parent):
    return client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")


def wait_for_checkpoints(client, experiment, count, process, timeout=240):
    """Wait until some image run has `count` checkpoints; return the parent run."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert process.poll() is None, process.communicate()[1][-3000:]
        parent = parent_of(client, experiment)
        if parent:
            for child in children_of(client, parent):
                if len(client.get_metric_history(child.info.run_id, "psnr")) >= count:
                    return parent
        time.sleep(0.2)
    raise AssertionError("no checkpoint logged in time")


def record(client, experiment, folder: Path):
    """Every image's metric histories and generations, keyed by image id."""
    parent = parent_of(client, experiment)
    result = {"parent": parent, "images": {}}
    for child in children_of(client, parent):
        image_id = child.data.tags["rip.image_id"]
        histories = {key: [(m.step, m.value) for m in client.get_metric_history(child.info.run_id, key)]
                     for key in ("ssim", "psnr", "iteration")}
        local = folder / child.info.run_id
        generations = {
            Path(a.path).name: np.asarray(Image.open(client.download_artifacts(child.info.run_id, a.path, str(local))))
            for a in client.list_artifacts(child.info.run_id, "generations")
        }
        ui = [a.path for a in client.list_artifacts(child.info.run_id, "images") if a.path.endswith(".png")]
        result["images"][image_id] = dict(status=child.info.status, histories=histories,
                                          generations=generations, ui_images=len(ui))
    return result


def assert_same_results(resumed, reference):
    assert resumed["images"].keys() == reference["images"].keys()
    for image_id, expected in reference["images"].items():
        got = resumed["images"][image_id]
        assert got["status"] == "FINISHED"
        for key, history in expected["histories"].items():
            assert sorted(got["histories"][key]) == sorted(history), (image_id, key)  # bit-identical, no duplicates
        assert got["generations"].keys() == expected["generations"].keys()
        for name, image in expected["generations"].items():
            assert np.array_equal(got["generations"][name], image), (image_id, name)
        assert got["ui_images"] == expected["ui_images"] == 5  # 0, 50, ..., 200


@pytest.fixture(scope="module")
def reference(mlflow_server, image_folder, tmp_path_factory):
    folder = tmp_path_factory.mktemp("reference")
    subprocess.run(command(mlflow_server.uri, "resume-reference", image_folder), env=env(folder / "spool"),
                   check=True, capture_output=True, cwd=REPO)
    return record(MlflowClient(mlflow_server.uri), "resume-reference", folder)


def test_sigkill_then_resume_equals_uninterrupted(mlflow_server, image_folder, reference, tmp_path):
    client = MlflowClient(mlflow_server.uri)
    process = subprocess.Popen(command(mlflow_server.uri, "resume-killed", image_folder), env=env(tmp_path / "spool"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    parent = wait_for_checkpoints(client, "resume-killed", 2, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert client.get_run(parent.info.run_id).info.status == "RUNNING"  # nobody closed it

    resumed = subprocess.run([str(BIN / "rip"), "run", "--tracking-uri", mlflow_server.uri,
                              "--resume", parent.info.run_id],
                             env=env(tmp_path / "spool"), capture_output=True, text=True, cwd=REPO)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    result = record(client, "resume-killed", tmp_path)
    assert result["parent"].info.run_id == parent.info.run_id
    assert result["parent"].info.status == "FINISHED"
    assert_same_results(result, reference)
    for key in ("ssim_mean", "psnr_std"):
        got = client.get_metric_history(parent.info.run_id, key)
        expected = client.get_metric_history(reference["parent"].info.run_id, key)
        assert [(m.step, m.value) for m in got] == [(m.step, m.value) for m in expected]


def test_sigterm_marks_killed_and_keeps_checkpoints(mlflow_server, image_folder, tmp_path):
    client = MlflowClient(mlflow_server.uri)
    # long enough to be still running when the signal comes
    process = subprocess.Popen(command(mlflow_server.uri, "resume-terminated", image_folder, percent=1600),
                               env=env(tmp_path / "spool"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=REPO)
    parent = wait_for_checkpoints(client, "resume-terminated", 2, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-3000:]
    assert f"run {parent.info.run_id} is marked KILLED" in stderr and "Traceback" not in stderr
    assert f"rip run --resume {parent.info.run_id}" in stderr
    assert client.get_run(parent.info.run_id).info.status == "KILLED"
    children = children_of(client, parent)
    assert {c.info.status for c in children} <= {"KILLED", "FINISHED"}
    assert any(len(client.get_metric_history(c.info.run_id, "psnr")) >= 2 for c in children)


def rip_resume(uri, run_id, spool, *extra):
    return subprocess.run([str(BIN / "rip"), "run", "--tracking-uri", uri, "--resume", run_id, *extra],
                          env=env(spool), capture_output=True, text=True, cwd=REPO)


def test_bad_resumes_are_explained(mlflow_server, reference, tmp_path):
    client = MlflowClient(mlflow_server.uri)
    finished = reference["parent"].info.run_id
    cases = [
        ("0123456789abcdef0123456789abcdef", (), "no run '0123456789abcdef0123456789abcdef'"),
        (finished, (), "already finished"),
    ]
    experiment = client.get_experiment_by_name("resume-reference").experiment_id
    unfinished = client.create_run(experiment, tags={"rip.kind": "configuration",
                                                     "rip.config": RunConfig(**{**OPTIONS, "metrics": ("ssim", "psnr")}).to_json()})
    client.log_param(unfinished.info.run_id, "version_rip", "0.0.1")
    image_run = children_of(client, reference["parent"])[0].info.run_id
    cases += [
        (unfinished.info.run_id, ("--mask", "32"), "different configuration: mask 32 (run has 16)"),
        (unfinished.info.run_id, (), "another code version: version_rip"),
        (image_run, (), "not a configuration run"),
    ]
    for run_id, extra, fragment in cases:
        result = rip_resume(mlflow_server.uri, run_id, tmp_path, *extra)
        assert result.returncode != 0
        assert fragment in result.stderr, result.stderr[-2000:]
        assert "Traceback" not in result.stderr


def test_server_restart_mid_run_loses_nothing(image_folder, reference, tmp_path):
    server = MlflowServer(tmp_path / "server", port=free_port()).start()
    client = MlflowClient(server.uri)
    try:
        process = subprocess.Popen(command(server.uri, "resume-reference", image_folder), env=env(tmp_path / "spool"),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=REPO)
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)
        reader.start()
        wait_for_checkpoints(client, "resume-reference", 2, process)
        server.stop()
        deadline = time.time() + 300  # down until the run has met the outage (its next call may be a while)
        while not any("retrying" in line for line in lines) and process.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        server.start()
        process.wait(timeout=600)
        reader.join(timeout=10)
        assert process.returncode == 0, "".join(lines)[-3000:]
        assert any("retrying" in line for line in lines)
        assert_same_results(record(client, "resume-reference", tmp_path), reference)
    finally:
        server.stop()


def test_long_outage_spools_then_resume_uploads(image_folder, reference, tmp_path):
    server = MlflowServer(tmp_path / "server", port=free_port()).start()
    client = MlflowClient(server.uri)
    spool = tmp_path / "spool"
    try:
        process = subprocess.Popen(command(server.uri, "resume-reference", image_folder, outage_limit=2),
                                   env=env(spool), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
        parent = wait_for_checkpoints(client, "resume-reference", 2, process)
        server.stop()
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 1
        assert "unreachable" in stderr and f"--resume {parent.info.run_id}" in stderr and "Traceback" not in stderr
        spooled = list((spool / parent.info.run_id).glob("*/[0-9]*/record.json"))
        assert spooled
        server.start()
        resumed = rip_resume(server.uri, parent.info.run_id, spool)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert not (spool / parent.info.run_id).exists()
        assert_same_results(record(client, "resume-reference", tmp_path), reference)
    finally:
        server.stop()
