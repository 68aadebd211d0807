"""The search's parts without a server: spaces, objectives, reporting and pruning, bad input."""

import dataclasses

import numpy as np
import optuna
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient
from optuna.trial import FixedTrial

from rip.cli import main
from rip.config import RunConfig
from rip.inpainters import load_inpainter
from rip.protocol.engine import Checkpoint
from rip.protocol.masks import Square
from rip.tuning.objective import Backends, Pruned, Reporter, Target
from rip.tuning.pruning import MedianAtStep
from rip.tuning.settings import SearchSettings
from rip.tuning.space import parse_space
from tests.conftest import random_image

TELEA = RunConfig(model="telea", size=64, mask=32, percent=100, step=50, metrics=("ssim",))
TINY = RunConfig(model="tiny", size=64, mask=32, percent=100, step=50, metrics=("ssim",))


def test_default_space_is_what_the_backend_can_use():
    assert parse_space("", RunConfig(model="telea")).names == ["mask", "mask_order"]
    study_size = RunConfig(model="tiny")
    assert parse_space("", study_size).names == ["mask", "mask_order", "steps", "strength", "paste_back", "scheduler"]
    prompted = RunConfig(model="tiny", prompt="a painting")
    assert parse_space("", prompted).names == [
        "mask", "mask_order", "prompt", "guidance", "steps", "strength", "paste_back", "scheduler"
    ]
    assert str(parse_space("", study_size)) == (
        "mask=64,128,256 mask_order=random,shuffle,scan steps=10:50:log strength=0.5:1.0 "
        "paste_back=false,true scheduler=ddim,pndm,euler,euler-ancestral,dpm-solver,lms"
    )


@pytest.mark.parametrize("size, step, masks", [(512, 50, "64,128,256"), (64, 50, "8,16,32"), (96, 50, "16,24,48"),
                                               (80, 10, "2,4,8"), (48, 50, "8,12,24")])
def test_default_masks_follow_the_size(size, step, masks):
    base = dataclasses.replace(TELEA, size=size, step=step, percent=100)
    space = parse_space("", base)
    assert str(space).startswith(f"mask={masks} ")
    for mask in space.values("mask", base):  # each a whole number of iterations per step
        dataclasses.replace(base, mask=mask).validate()
    assert str(parse_space("mask mask_order", base)) == str(space)


def test_no_default_mask_fits_is_one_message():
    with pytest.raises(ValueError, match="no mask divides size 64 into a whole number of iterations per step 10%"):
        parse_space("", dataclasses.replace(TELEA, step=10))


def test_objective_metric_takes_names_and_mlflow_keys():
    assert SearchSettings(objective_metric="lpips_vgg").objective_metric == "lpips-vgg"
    assert SearchSettings(objective_metric="stlpips-alex").validate().objective_metric == "stlpips-alex"
    with pytest.raises(ValueError, match="unknown objective metric 'lpips-foo'"):
        SearchSettings(objective_metric="lpips_foo").validate()


def test_spec_lists_ranges_and_suggestions():
    space = parse_space("paste_back strength=0.5:1 steps=2:8:log mask=16,32", TINY)
    assert str(space) == "mask=16,32 steps=2:8:log strength=0.5:1.0 paste_back=false,true"
    config = space.suggest(FixedTrial({"mask": 16, "steps": 4, "strength": 0.75, "paste_back": True}), TINY)
    assert (config.mask, config.steps, config.strength, config.paste_back) == (16, 4, 0.75, True)
    assert config.model == "tiny" and config.size == 64


def test_parameters_apply_only_where_they_matter():
    base = RunConfig(model="tiny", size=64, mask=32, percent=100, step=50, prompt="a painting")
    space = parse_space("model=tiny,telea prompt guidance=1:5 steps=2:3", base)
    # a classical trial is asked nothing about diffusion; an empty prompt is asked no guidance
    assert space.suggest(FixedTrial({"model": "telea"}), base).model == "telea"
    config = space.suggest(FixedTrial({"model": "tiny", "prompt": "", "steps": 3}), base)
    assert (config.prompt, config.steps, config.guidance) == ("", 3, None)
    config = space.suggest(FixedTrial({"model": "tiny", "prompt": "a painting", "guidance": 4.0, "steps": 2}), base)
    assert (config.prompt, config.guidance) == ("a painting", 4.0)
    with pytest.raises(ValueError, match="a grid cannot hold prompt"):
        space.grid(base)
    # a model whose images guidance changes with an empty prompt (SDXL) is asked guidance all the same
    config = space.suggest(FixedTrial({"model": "tiny", "prompt": "", "guidance": 3.0, "steps": 3}), base,
                           guided_without_prompt=lambda model: model == "tiny")
    assert (config.prompt, config.guidance) == ("", 3.0)


def test_grid_needs_lists():
    assert parse_space("mask=16,32 seed=0,1,2", TELEA).grid(TELEA) == {"mask": [16, 32], "seed": [0, 1, 2]}
    with pytest.raises(ValueError, match="not the range steps=2:4"):
        parse_space("steps=2:4", TINY).grid(TINY)


@pytest.mark.parametrize("kind, expected", [("final", 0.4), ("auc", ((0 + 0.3) / 2 * 50 + (0.3 + 0.4) / 2 * 50) / 100)])
def test_objective_from_the_mean_curve(kind, expected):
    target = Target("lpips-vgg", kind, higher_is_better=False)
    assert target.value({0: 0.0, 50: 0.3, 100: 0.4}) == pytest.approx(expected)
    assert target.direction == "minimize" and target.key == "lpips_vgg"
    assert Target("ssim", kind, higher_is_better=True).direction == "maximize"


def checkpoint(image_id: str, percent: int, value: float) -> Checkpoint:
    return Checkpoint(image_id=image_id, iteration=percent // 25, percent=percent, image=None, values={"ssim": value})


def test_reporter_reports_complete_means_and_prunes_by_the_median():
    study = optuna.create_study(direction="maximize", pruner=MedianAtStep(n_startup_trials=1))
    study.add_trial(optuna.trial.create_trial(value=0.8, intermediate_values={50: 0.9, 100: 0.8}))
    trial = study.ask()
    reported = []
    reporter = Reporter(trial, "ssim", n_images=2, on_report=lambda percent, mean: reported.append((percent, mean)))
    reporter(checkpoint("a", 0, 1.0))
    reporter(checkpoint("b", 0, 1.0))
    reporter(checkpoint("a", 50, 0.95))
    assert reported == []  # b has not reached 50 % yet
    reporter(checkpoint("b", 50, 0.93))
    assert reported == [(50, pytest.approx(0.94))]  # better than the median (0.9): kept
    reporter(checkpoint("a", 100, 0.6))
    with pytest.raises(Pruned, match="pruned at 100%"):
        reporter(checkpoint("b", 100, 0.7))  # 0.65 is worse than 0.8
    assert reporter.curve == {0: 1.0, 50: pytest.approx(0.94), 100: pytest.approx(0.65)}
    assert study.trials[-1].intermediate_values == {50: pytest.approx(0.94), 100: pytest.approx(0.65)}


def test_a_trials_inpainter_shares_the_loaded_model_and_matches_a_fresh_one():
    backends = Backends(["tiny"], TINY, "cpu")
    loaded = backends.loaded["tiny"].pipeline
    config = dataclasses.replace(TINY, steps=2, strength=0.8, scheduler="euler", paste_back=True)
    inpainter = backends.inpainter(config)
    assert inpainter.pipeline.unet is loaded.unet  # the weights are shared, not copied
    assert type(inpainter.pipeline.scheduler).__name__ == "EulerDiscreteScheduler"
    assert type(loaded.scheduler).__name__ == "DDIMScheduler"  # the loaded pipeline keeps its own
    fresh = load_inpainter(config, "cpu")  # what `rip run` with this configuration builds
    assert inpainter.params() == fresh.params()
    image, mask = random_image(64), Square(0, 1, 32).to_array(64)
    np.testing.assert_array_equal(inpainter.inpaint([image], [mask], [7])[0], fresh.inpaint([image], [mask], [7])[0])


BASE_ARGS = ["tune", "--model", "telea", "--size", "64", "--mask", "32", "--percent", "100", "--step", "50",
             "--metrics", "ssim", "--images", "sample:1"]


@pytest.mark.parametrize(
    "options, fragment",
    [
        (["--storage", "nonsense"], "bad storage URL 'nonsense'"),
        (["--storage", "mysql://user@localhost/studies"], "unsupported storage mysql://user@localhost/studies"),
        (["--storage", "sqlite:///no/such/folder/s.db"], "folder no/such/folder does not exist"),
        (["--storage", "sqlite://"], "is in memory"),
        (["--space", "colour=red"], "unknown parameter 'colour'"),
        (["--space", "mask=32"], "the search space is empty"),
        (["--space", "mask=16,32 mask=16"], "parameter 'mask' appears twice"),
        (["--space", "mask=16,60"], "mask 60 does not divide size 64"),
        (["--space", "steps=2:4"], "steps has no effect on telea"),
        (["--space", "mask=16,32 images=/no/such/folder"], "unknown image set '/no/such/folder'"),
        (["--model", "tiny", "--space", "steps=8:2"], "low 8 is above high 2"),
        (["--model", "tiny", "--space", "prompt"], "give --prompt"),
        (["--sampler", "grid", "--model", "tiny", "--space", "mask=16,32 steps=2:4"], "grid sampler needs lists"),
        (["--sampler", "grid", "--space", "mask=16,32", "--n-trials", "3"], "the grid has 2 points"),
        (["--space", "mask=16,32", "--objective-metric", "psnr"], "psnr is not among the measured metrics ssim"),
        (["--space", "mask=16,32", "--objective-metric", "lpips_vgg"], "lpips-vgg is not among the measured metrics ssim"),
        (["--step", "10"], "no mask divides size 64 into a whole number of iterations per step 10%"),
        (["--n-trials", "0"], "n_trials must be a positive integer"),
    ],
)
def test_bad_input_fails_before_any_study_or_run(tmp_path, monkeypatch, options, fragment):
    monkeypatch.chdir(tmp_path)
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = CliRunner().invoke(main, BASE_ARGS + ["--tracking-uri", tracking] + options)
    assert result.exit_code == 1, result.output
    assert fragment in result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert list(tmp_path.iterdir()) == []  # no study storage, no tracking store, no summary


@pytest.mark.parametrize(
    "space, fragment",
    [
        ("scheduler=ddim,pndm steps=2:10", "search space steps=2:10 scheduler=ddim,pndm: steps 2: PNDMScheduler"),
        ("guidance=1:5", "search space guidance=1.0:5.0: guidance has no effect with an empty prompt on tiny"),
    ],
)
def test_a_space_the_loaded_model_cannot_use_fails_before_any_study_or_run(space, fragment, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tracking, storage = f"sqlite:///{tmp_path / 'mlflow.db'}", f"sqlite:///{tmp_path / 'studies.db'}"
    arguments = [*BASE_ARGS, "--model", "tiny", "--tracking-uri", tracking, "--storage", storage,
                 "--study-name", "unusable", "--space", space]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 1, result.output
    assert fragment in result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert optuna.get_all_study_names(storage) == []
    client = MlflowClient(tracking)
    assert [e.name for e in client.search_experiments()] == ["Default"]
    assert client.search_runs(["0"]) == []


@pytest.mark.slow
def test_a_proposed_configuration_of_a_completed_trial_is_not_run_again(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RIP_SPOOL", str(tmp_path / "spool"))
    tracking, storage = f"sqlite:///{tmp_path / 'mlflow.db'}", f"sqlite:///{tmp_path / 'studies.db'}"
    result = CliRunner().invoke(main, BASE_ARGS + [
        "--tracking-uri", tracking, "--storage", storage, "--study-name", "repeats", "--space", "mask=16,32",
        "--sampler", "random", "--sampler-seed", "0", "--n-trials", "4", "--pruner", "none",
        "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    trials = optuna.load_study(study_name="repeats", storage=storage).trials
    assert {t.state.name for t in trials} == {"COMPLETE"} and len(trials) == 4
    computed = [t for t in trials if "rip.reused_from" not in t.user_attrs]
    reused = [t for t in trials if "rip.reused_from" in t.user_attrs]
    assert len(computed) == len({t.params["mask"] for t in trials}) and reused  # 4 trials, 2 configurations
    assert f"{len(reused)} trial(s) proposed the configuration of a completed trial" in result.output
    for trial in reused:
        [original] = [t for t in computed if t.number == trial.user_attrs["rip.reused_from"]]
        assert original.number < trial.number and original.params == trial.params and original.value == trial.value
        assert trial.user_attrs["rip.mlflow_run_id"] == original.user_attrs["rip.mlflow_run_id"]

    client = MlflowClient(tracking)
    [study_run] = client.search_runs([client.get_experiment_by_name("recursive-inpainting").experiment_id],
                                     "tags.`rip.kind` = 'study'")
    trial_runs = client.search_runs([study_run.info.experiment_id],
                                    f"tags.`mlflow.parentRunId` = '{study_run.info.run_id}'")
    assert sorted(int(run.data.tags["rip.trial"]) for run in trial_runs) == [t.number for t in computed]
    logged = {m.step: m.value for m in client.get_metric_history(study_run.info.run_id, "trial_value")}
    assert logged == {t.number: t.value for t in trials}


@pytest.mark.slow
def test_a_grid_search_computes_trials_that_fill_a_batch_together_with_their_values_alone(
    tmp_path, monkeypatch, image_folder
):
    from rip.runner import run_experiment

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RIP_SPOOL", str(tmp_path / "spool"))
    calls = []

    def counted(config, device):
        inpainter = load_inpainter(config, device)
        batch = inpainter.inpaint_batch
        inpainter.inpaint_batch = lambda images, masks, seeds: calls.append(len(seeds)) or batch(images, masks, seeds)
        return inpainter

    monkeypatch.setattr("rip.tuning.objective.load_inpainter", counted)
    tracking, storage = f"sqlite:///{tmp_path / 'mlflow.db'}", f"sqlite:///{tmp_path / 'studies.db'}"
    fixed = ["--model", "telea", "--size", "64", "--metrics", "ssim", "--percent", "100", "--step", "50",
             "--images", f"{image_folder}:2@0"]
    result = CliRunner().invoke(main, ["tune", *fixed, "--batch-size", "4", "--tracking-uri", tracking,
                                       "--storage", storage, "--study-name", "grid", "--sampler", "grid",
                                       "--space", "mask=16,32 seed=0,1", "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert max(calls) == 4  # two trials of two images in each call
    trials = optuna.load_study(study_name="grid", storage=storage).trials
    assert len(trials) == 4 and {t.state.name for t in trials} == {"COMPLETE"}
    client = MlflowClient(tracking)
    for trial in trials:  # each value equals its configuration run alone
        config = dataclasses.replace(RunConfig(model="telea", size=64, metrics=("ssim",), percent=100, step=50,
                                               images=f"{image_folder}:2@0", experiment="alone"), **trial.params)
        alone = client.get_run(run_experiment(config, tracking, progress=False))
        run = client.get_run(trial.user_attrs["rip.mlflow_run_id"])
        assert run.info.status == "FINISHED" and run.data.metrics["ssim_mean"] == alone.data.metrics["ssim_mean"]
        assert trial.value == alone.data.metrics["ssim_mean"]
