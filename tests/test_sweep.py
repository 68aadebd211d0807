"""Presets and sweeps: grid expansion, validation before any run, one MLflow run per configuration."""

import dataclasses

import pytest
import yaml
from click.testing import CliRunner
from mlflow import MlflowClient

from rip import artefacts
from rip.config import RunConfig
from rip.images import resolve_image_set
from rip.metrics.complexity import COMPLEXITY_KEYS
from rip.sweeps.cli import sweep
from rip.sweeps.presets import check, expand, load_preset, parse_overrides
from tests.conftest import REPO

PRESETS = REPO / "experiments"
DEFAULTS = RunConfig()


@pytest.mark.parametrize("name", ["replication", "variability", "demo", "models", "coverage"])
def test_presets_override_only_what_differs_from_the_defaults(name):
    preset = load_preset(PRESETS / f"{name}.yaml")
    for key, value in preset.items():
        single = expand({key: value})
        assert any(getattr(config, key) != getattr(DEFAULTS, key) for config in single), key


def test_the_studys_two_experiments():
    replication = expand(load_preset(PRESETS / "replication.yaml"))
    assert [c.mask for c in replication] == [64, 128, 256]
    for config in replication:
        assert (config.images, config.seed, config.percent, config.step, config.size) == ("wikiart:100@0", 0, 400, 50, 512)
        assert config.model == DEFAULTS.model and config.metrics == ("lpips-alex", "lpips-vgg", "lpips-squeeze")
    variability = expand(load_preset(PRESETS / "variability.yaml"))
    assert len(variability) == 30
    assert {(c.mask, c.seed) for c in variability} == {(m, s) for m in (64, 128, 256) for s in range(10)}
    assert {c.images for c in variability} == {"wikiart:100@0/10"}  # ten of the replication's hundred, the same for every seed
    demo = expand(load_preset(PRESETS / "demo.yaml"))
    assert len(demo) == 4 and {c.model for c in demo} == {"telea"}
    check(replication + variability + demo, resolve_images=False)


def test_the_models_preset_is_the_replication_over_the_model_families():
    replication = expand(load_preset(PRESETS / "replication.yaml"))
    models = expand(load_preset(PRESETS / "models.yaml"))
    families = [artefacts.STUDY_MODEL, artefacts.SD15_INPAINTING, artefacts.SDXL_INPAINTING,
                artefacts.KANDINSKY22_INPAINTING, artefacts.FLUX_FILL]
    assert sorted((c.model, c.mask) for c in models) == sorted(
        (model, mask) for model in [f.id for f in families] + ["telea", "biharmonic"] for mask in (64, 128, 256))
    protocol = ("images", "seed", "percent", "step", "size", "metrics", "prompt", "random_numbers")
    assert {tuple(getattr(c, name) for name in protocol) for c in models} == {
        tuple(getattr(c, name) for name in protocol) for c in replication}
    check(models, resolve_images=False)


def test_the_coverage_preset_crosses_classical_backends_masks_and_mask_orders():
    coverage = expand(load_preset(PRESETS / "coverage.yaml"))
    assert {(c.model, c.mask, c.mask_order) for c in coverage} == {
        (model, mask, order) for model in ("telea", "ns") for mask in (16, 32) for order in ("random", "shuffle")}
    # percent 400: the default
    assert {(c.percent, c.size, c.metrics, c.complexity) for c in coverage} == {(400, 128, ("stlpips-alex",), True)}
    check(coverage)  # offline: sample images, classical backends, ST-LPIPS ships its weights


def test_a_fixed_draw_seed_gives_every_run_the_same_images():
    assert resolve_image_set("sample:3@5", 0) == resolve_image_set("sample:3@5", 9) == resolve_image_set("sample:3", 5)
    assert resolve_image_set("sample:3", 0) != resolve_image_set("sample:3", 9)
    with pytest.raises(ValueError, match="malformed draw seed 'x'"):
        resolve_image_set("sample:3@x", 0)


def test_grid_order_ranges_and_metrics():
    configs = expand({"mask": [16, 32], "seed": "0..2", "size": 64, "metrics": ["ssim", "psnr"]})
    assert [(c.mask, c.seed) for c in configs] == [(16, 0), (16, 1), (16, 2), (32, 0), (32, 1), (32, 2)]
    assert {c.metrics for c in configs} == {("ssim", "psnr")}  # a list of names is one value
    grid = expand({"metrics": [["ssim"], "psnr,lpips-vgg"], "guidance": [7, 7.5], "steps": None})
    assert [(c.metrics, c.guidance) for c in grid] == [
        (("ssim",), 7.0), (("ssim",), 7.5), (("psnr", "lpips-vgg"), 7.0), (("psnr", "lpips-vgg"), 7.5)]
    assert parse_overrides(["mask=[16, 32]", "images=sample:2", "prompt="]) == {
        "mask": [16, 32], "images": "sample:2", "prompt": ""}


@pytest.mark.parametrize(
    "preset, fragment",
    [
        ({"maks": 64}, "unknown field(s) 'maks'"),
        ({"mask": "big"}, "mask must be int, got 'big'"),
        ({"paste_back": "yes"}, "paste_back must be bool"),
        ({"seed": "0..x"}, "malformed range '0..x'"),
        ({"mask": None}, "mask cannot be empty"),
    ],
)
def test_bad_entries_name_the_field(preset, fragment):
    with pytest.raises(ValueError) as error:
        expand(preset)
    assert fragment in str(error.value)


def write_preset(folder, name, **entries):
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(entries))
    return path


def test_an_invalid_configuration_stops_the_sweep_before_any_run(tmp_path, image_folder, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_preset(tmp_path, "bad", model="telea", images=str(image_folder), size=64, mask=[16, 60, 32],
                        metrics=["ssim", "fid"])
    result = CliRunner().invoke(sweep, [str(path), "--tracking-uri", f"sqlite:///{tmp_path / 'store.db'}"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "nothing was run" in result.output
    assert "configuration 2 (mask=60" in result.output and "unknown metric 'fid'" in result.output
    assert not (tmp_path / "store.db").exists()  # not even the store was touched


def test_dry_run_lists_every_configuration():
    result = CliRunner().invoke(sweep, [str(PRESETS / "variability"), "--dry-run", "--set", "mask=[64, 128]"])
    assert result.exit_code == 0, result.output
    assert "20 configuration(s)" in result.output and "all configurations are valid" in result.output
    assert "30. " not in result.output and "20. mask=128 images=wikiart:100@0/10 seed=9" in result.output


@pytest.mark.slow
def test_sweep_runs_each_configuration_once_loading_the_model_once(tmp_path, image_folder, monkeypatch):
    import rip.sweeps.models

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RIP_SPOOL", str(tmp_path / "spool"))
    loads = []
    real = rip.sweeps.models.load_inpainter
    monkeypatch.setattr(rip.sweeps.models, "load_inpainter",
                        lambda config, device: loads.append(config) or real(config, device))
    path = write_preset(tmp_path, "tiny-grid", experiment="sweep-test", model="telea", images=f"{image_folder}:2@0",
                        size=64, mask=32, seed=[0, 1], percent=100, metrics=["ssim"])
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    result = CliRunner().invoke(sweep, [str(path), "--tracking-uri", uri])
    assert result.exit_code == 0, result.output
    assert len(loads) == 1
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("sweep-test").experiment_id
    parents = client.search_runs([experiment], "tags.`rip.kind` = 'configuration'")
    assert sorted(int(p.data.params["seed"]) for p in parents) == [0, 1]
    assert {p.data.tags["rip.sweep"] for p in parents} == {"tiny-grid"}
    assert len({p.data.tags["rip.sweep_id"] for p in parents}) == 1
    assert all(p.info.status == "FINISHED" for p in parents)
    children = client.search_runs([experiment], "tags.`rip.kind` = 'image'")
    images = {(c.data.tags["mlflow.parentRunId"], c.data.tags["rip.image_id"]) for c in children}
    assert len(images) == 4 and len({image for _, image in images}) == 2  # the same two images for both seeds
    assert dataclasses.asdict(RunConfig.from_json(parents[0].data.tags["rip.config"]))["percent"] == 100


def test_shipped_presets_are_found_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(sweep, ["demo", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{PRESETS / 'demo.yaml'}: 4 configuration(s)")
    write_preset(tmp_path, "demo", model="telea", mask=[16, 32, 64], size=128)  # a file of that name wins
    result = CliRunner().invoke(sweep, ["demo", "--dry-run"])
    assert result.exit_code == 0 and result.output.startswith("demo.yaml: 3 configuration(s)"), result.output
    result = CliRunner().invoke(sweep, ["nonesuch"])
    assert result.exit_code == 1
    assert f"no preset 'nonesuch'; shipped presets (in {PRESETS}): coverage, demo, models, replication, variability" in result.output


def test_a_sweep_fills_each_call_from_all_its_configurations_with_the_results_of_each_alone(
    tmp_path, image_folder, monkeypatch
):
    import rip.sweeps.models
    from rip.runner import run_experiment
    from rip.sweeps.local import run_sweep

    monkeypatch.setenv("RIP_SPOOL", str(tmp_path / "spool"))
    calls = []
    real = rip.sweeps.models.load_inpainter

    def counted(config, device):
        inpainter = real(config, device)
        batch = inpainter.inpaint_batch
        inpainter.inpaint_batch = lambda images, masks, seeds: calls.append(len(seeds)) or batch(images, masks, seeds)
        return inpainter

    monkeypatch.setattr(rip.sweeps.models, "load_inpainter", counted)
    base = RunConfig(model="telea", images=f"{image_folder}:2@0", size=64, step=25, percent=50, metrics=("ssim",),
                     batch_size=4, experiment="together")
    configs = [dataclasses.replace(base, mask=16), dataclasses.replace(base, mask=32, seed=1, metrics=("psnr",))]
    lines = []
    together = run_sweep(configs, f"sqlite:///{tmp_path / 'together.db'}", progress=False, echo=lines.append)
    assert max(calls) == 4  # two images of each configuration in one call
    assert len(lines) == 2 and lines[0].startswith("[1/2] mask=16 ") and lines[1].startswith("[2/2] mask=32 ")

    alone_uri = f"sqlite:///{tmp_path / 'alone.db'}"
    alone = [run_experiment(config, alone_uri, progress=False) for config in configs]
    assert max(calls[-4:]) == 2  # alone, a call holds one configuration's two images

    def histories(uri, parent):
        client = MlflowClient(uri)
        run = client.get_run(parent)
        children = client.search_runs([run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'")
        assert run.info.status == "FINISHED" and len(children) == 2
        values = {(child.data.tags["rip.image_id"], key, m.step): m.value
                  for child in children for key in child.data.metrics
                  for m in client.get_metric_history(child.info.run_id, key)}
        measured = {key: value for key, value in run.data.metrics.items() if not key.startswith(("system/", "perf/"))}
        return values, measured  # not the telemetry, which differs from run to run

    for shared_id, alone_id in zip(together, alone):
        (shared_values, shared_aggregates), (alone_values, alone_aggregates) = (
            histories(f"sqlite:///{tmp_path / 'together.db'}", shared_id), histories(alone_uri, alone_id))
        # images x percents x keys (the metric, iteration, coverage, depth and the complexity measures)
        assert shared_values == alone_values and len(shared_values) == 2 * 3 * (4 + len(COMPLEXITY_KEYS))
        assert shared_aggregates == alone_aggregates


@pytest.mark.slow
def test_a_stopped_sweep_names_each_killed_run_and_how_to_continue_it(tmp_path, image_folder):
    import os
    import signal
    import subprocess

    from tests.conftest import BIN

    path = write_preset(tmp_path, "long", experiment="stopped", model="tiny", steps=2, images=f"{image_folder}:2@0",
                        size=64, mask=16, percent=1600, seed=[0, 1], metrics=["ssim"])
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    env = {**os.environ, "RIP_SPOOL": str(tmp_path / "spool"), "MLFLOW_DISABLE_TELEMETRY": "true"}
    process = subprocess.Popen([str(BIN / "rip"), "sweep", str(path), "--tracking-uri", uri], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line.startswith("[1/2]"):
            break
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-2000:]
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("stopped").experiment_id],
                              "tags.`rip.kind` = 'configuration'")
    assert runs and {run.info.status for run in runs} == {"KILLED"}
    assert "stopped by SIGTERM" in stderr and "Traceback" not in stderr
    for run in runs:
        assert f"run {run.info.run_id} is marked KILLED: continue it with `rip run --resume {run.info.run_id}`" in stderr


def test_status_counts_workers_not_their_claimed_units(tmp_path):
    import optuna

    from rip.sweeps.presets import describe
    from rip.sweeps.units import SweepPlan, register, status_lines
    from rip.sweeps.workqueue import WORKER_ATTR, claim

    configs = tuple(RunConfig(model="telea", size=64, mask=mask) for mask in (16, 32))
    plan = SweepPlan("status", configs, (2, 2), chunk_size=1)
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'queue.db'}")
    study = optuna.create_study(storage=storage, study_name=plan.study_name, direction="maximize")
    register(study, plan)
    claimed = [claim(study, storage, trial) for trial in study.get_trials()[:3]]  # one worker's batch of three
    for trial in claimed:
        trial.set_user_attr(WORKER_ATTR, "node:1")
    claimed[0].set_user_attr("rip.images_done", 1)
    study.tell(claimed[0], 1.0)
    lines = status_lines(study, plan, describe)
    assert lines[0].endswith("1/2 units done, 1 running, 0 failed, 0 waiting; 1/2 images")
    assert lines[-1].startswith(f"sweep {plan.study_name}: 1/4 units, 1/4 images finished, 1 worker(s) running; ")
    assert "images/min so far: about" in lines[-1]
    assert sum("running on node:1" in line for line in lines) == 2
