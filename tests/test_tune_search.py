"""`rip tune` with one worker: a SQLite study, a classical backend and a real tracking server."""

import json
import os
import statistics
import subprocess

import optuna
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from rip.cli import main
from tests.conftest import BIN, REPO

pytestmark = pytest.mark.slow
EXPERIMENT = "e2e-tune"
FIXED = ["--model", "telea", "--size", "64", "--percent", "100", "--step", "50", "--metrics", "ssim"]
SPACE = "mask=16,32 mask_order"
PLOTS = {"plots/history.png", "plots/importances.png", "plots/slice.png"}  # no contour: SPACE is all lists


def tune(server, folder, storage, study, *options, expect=0):
    args = ["tune", *FIXED, "--images", f"{folder}:2", "--tracking-uri", server.uri, "--experiment", EXPERIMENT,
            "--storage", f"sqlite:///{storage}", "--study-name", study, "--output", str(storage.parent / "out"),
            "--space", SPACE, *options]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == expect, result.output
    return result


def load(storage, study) -> optuna.Study:
    return optuna.load_study(study_name=study, storage=f"sqlite:///{storage}")


def study_run(client, study):
    experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
    runs = client.search_runs([experiment], f"tags.`rip.kind` = 'study' and tags.`rip.study` = '{study}'")
    assert len(runs) == 1
    return runs[0]


def children(client, run):
    return client.search_runs([run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{run.info.run_id}'")


def history(client, run_id, key):
    return {m.step: m.value for m in client.get_metric_history(run_id, key)}


@pytest.fixture(scope="module")
def seeded(mlflow_server, image_folder, tmp_path_factory):
    storage = tmp_path_factory.mktemp("tune") / "studies.db"
    result = tune(mlflow_server, image_folder, storage, "seeded", "--n-trials", "4", "--sampler-seed", "0",
                  "--pruner", "none")
    return storage, result


def test_trials_are_configuration_runs_under_one_study_run(mlflow_server, seeded):
    storage, result = seeded
    client = MlflowClient(mlflow_server.uri)
    study = load(storage, "seeded")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
    assert f"best: trial {study.best_trial.number}, maximized value" in result.output

    parent = study_run(client, "seeded")
    assert parent.info.status == "FINISHED"
    assert parent.data.params["space"] == "mask=16,32 mask_order=random,shuffle,scan"
    assert (parent.data.params["objective_metric"], parent.data.params["direction"]) == ("ssim", "maximize")
    assert parent.data.metrics["best_value"] == pytest.approx(study.best_value)
    assert parent.data.tags["rip.best_trial"] == str(study.best_trial.number)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    artifacts |= {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert {"best.json", "importances.json", "trials.csv"} | PLOTS <= artifacts
    assert "plots/contour.png" not in artifacts
    best = json.loads((storage.parent / "out" / "seeded" / "best.json").read_text())
    assert best["config"]["mask"] == study.best_params["mask"] and best["config"]["model"] == "telea"

    runs = {int(run.data.tags["rip.trial"]): run for run in children(client, parent)}
    # trial 2 proposes trial 1's configuration: it reuses trial 1's value and run, computing nothing
    assert sorted(runs) == [0, 1, 3]
    reused = study.trials[2]
    assert reused.user_attrs["rip.reused_from"] == 1 and reused.params == study.trials[1].params
    assert reused.value == study.trials[1].value and reused.user_attrs["rip.mlflow_run_id"] == runs[1].info.run_id
    assert "1 trial(s) proposed the configuration of a completed trial and reused its value" in result.output
    assert history(client, parent.info.run_id, "trial_value") == pytest.approx({t.number: t.value for t in study.trials})
    for trial in study.trials:
        if "rip.reused_from" in trial.user_attrs:
            continue
        run = runs[trial.number]
        assert trial.user_attrs["rip.mlflow_run_id"] == run.info.run_id
        assert run.info.status == "FINISHED" and run.data.tags["rip.trial_state"] == "COMPLETE"
        assert run.data.tags["rip.kind"] == "configuration" and run.data.tags["rip.worker"]
        assert run.data.params["mask"] == str(trial.params["mask"])
        assert run.data.params["mask_order"] == trial.params["mask_order"]
        assert run.data.metrics["objective_value"] == pytest.approx(trial.value)
        # the value is the mean over the image runs at the last percent, as the runner logged it
        images = children(client, run)
        assert len(images) == 2
        final = [history(client, image.info.run_id, "ssim")[100] for image in images]
        assert trial.value == pytest.approx(statistics.mean(final))
        assert history(client, run.info.run_id, "ssim_mean") == pytest.approx({0: 1.0, **trial.intermediate_values})
        assert history(client, run.info.run_id, "intermediate_value") == pytest.approx(trial.intermediate_values)


def test_the_same_sampler_seed_gives_the_same_trials(mlflow_server, image_folder, seeded):
    storage, _ = seeded
    tune(mlflow_server, image_folder, storage, "seeded-again", "--n-trials", "4", "--sampler-seed", "0",
         "--pruner", "none")
    tune(mlflow_server, image_folder, storage, "other-seed", "--n-trials", "2", "--sampler-seed", "1",
         "--pruner", "none")
    first, again, other = (load(storage, name).trials for name in ("seeded", "seeded-again", "other-seed"))
    assert [(t.params, t.value) for t in again] == [(t.params, t.value) for t in first]
    assert [t.params for t in other] != [t.params for t in first[:2]]


def test_median_pruning_stops_trials_below_the_median_at_a_checkpoint(mlflow_server, image_folder, tmp_path):
    storage = tmp_path / "studies.db"
    tune(mlflow_server, image_folder, storage, "pruned", "--n-trials", "5", "--sampler-seed", "7",
         "--pruner", "median", "--pruner-startup-trials", "1")
    trials = load(storage, "pruned").trials
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    assert pruned and len(trials) == 5 and {t.state.name for t in trials} == {"COMPLETE", "PRUNED"}
    for trial in trials:
        earlier = [t for t in trials if t.number < trial.number and t.state.name == "COMPLETE"
                   and "rip.reused_from" not in t.user_attrs]  # reused trials report no curve
        below = [  # checkpoints where the trial's mean was below the earlier complete trials' median
            step for step, value in sorted(trial.intermediate_values.items())
            if earlier and value < statistics.median(t.intermediate_values[step] for t in earlier)
        ]
        if trial.state.name == "PRUNED":  # stopped at its first checkpoint below the median
            assert below == [max(trial.intermediate_values)] and max(trial.intermediate_values) < 100
        else:
            assert below == []

    client = MlflowClient(mlflow_server.uri)
    runs = {int(r.data.tags["rip.trial"]): r for r in children(client, study_run(client, "pruned"))}
    for trial in pruned:
        run = runs[trial.number]
        assert run.info.status == "KILLED" and run.data.tags["rip.trial_state"] == "PRUNED"
        assert history(client, run.info.run_id, "intermediate_value") == pytest.approx(trial.intermediate_values)
        assert {image.info.status for image in children(client, run)} == {"KILLED"}


def test_a_study_continues_where_it_stopped_and_keeps_its_definition(mlflow_server, image_folder, tmp_path):
    storage = tmp_path / "studies.db"
    tune(mlflow_server, image_folder, storage, "resumed", "--n-trials", "1", "--pruner", "none")
    client = MlflowClient(mlflow_server.uri)
    first = study_run(client, "resumed")
    tune(mlflow_server, image_folder, storage, "resumed", "--n-trials", "2", "--pruner", "none")
    assert [t.state.name for t in load(storage, "resumed").trials] == ["COMPLETE"] * 2
    again = study_run(client, "resumed")
    assert again.info.run_id == first.info.run_id and again.info.status == "FINISHED"
    computed = [t for t in load(storage, "resumed").trials if "rip.reused_from" not in t.user_attrs]
    assert again.data.metrics["n_complete"] == 2 and len(children(client, again)) == len(computed)

    result = tune(mlflow_server, image_folder, storage, "resumed", "--n-trials", "3", "--metrics", "ssim,psnr",
                  expect=1)
    assert "study 'resumed' has config.metrics = ['ssim'], this worker ['ssim', 'psnr']" in result.output
    assert len(load(storage, "resumed").trials) == 2


def test_mlflow_run_entry_point_makes_the_study_run(mlflow_server, image_folder, tmp_path):
    command = [str(BIN / "mlflow"), "run", str(REPO), "-e", "tune", "--env-manager", "local",
               "--experiment-name", EXPERIMENT]
    params = dict(model="telea", images=f"{image_folder}:2", size=64, percent=100, step=50, metrics="ssim",
                  space=SPACE, n_trials=2, sampler_seed=0, storage=f"sqlite:///{tmp_path / 'studies.db'}", study_name="project",
                  output=str(tmp_path / "out"))
    for key, value in params.items():
        command += ["-P", f"{key}={value}"]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "MLFLOW_TRACKING_URI": mlflow_server.uri}
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(mlflow_server.uri)
    parent = study_run(client, "project")
    assert parent.data.tags["mlflow.project.entryPoint"] == "tune" and parent.info.run_name == "project"
    assert sorted(int(run.data.tags["rip.trial"]) for run in children(client, parent)) == [0, 1]
