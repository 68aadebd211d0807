"""Analysis against a real tracking server holding real runs (classical backends, 64 px)."""

import base64
import dataclasses
import logging
import os
import re
import subprocess

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient
from PIL import Image
from scipy import stats

from analysis import figures
from analysis.artifacts import run_animation, run_images
from analysis.cli import analyze
from analysis.load import AnalysisError, load_results
from analysis.summary import summary_table
from analysis.frames import GENERATION_MEASURES, comparisons
from analysis.questions import QUESTIONS
from analysis.verdicts import CLAIMS, HOLDS
from rip.config import RunConfig
from rip.metrics.complexity import COMPLEXITY_KEYS
from rip.runner import StopRun, run_experiment
from rip.sweeps.local import run_sweep
from rip.sweeps.presets import check, expand
from tests.conftest import BIN, REPO, ui_addresses

pytestmark = pytest.mark.slow
EXPERIMENT = "analysis-e2e"
PERCENTS = [0, 50, 100, 150]
GRID = dict(experiment=EXPERIMENT, model="telea", size=64, mask=[16, 32], seed=[0, 1], percent=150,
            metrics=["ssim", "psnr"])
STYLES = {"astronaut.png": "Realism", "chelsea.jpg": "Realism", "camera.png": "Expressionism"}
GENRES = {"astronaut.png": "portrait", "chelsea.jpg": "animal"}  # camera.png has no genre
VERDICTS = "analysis-verdicts"
VERDICT_PERCENT = 100
VERDICT_GRID = dict(experiment=VERDICTS, model=["telea", "ns"], size=64, mask=[16, 32], seed=[0, 1],
                    percent=VERDICT_PERCENT, metrics=["ssim", "stlpips-alex", "stlpips-vgg"])


@pytest.fixture(scope="module")
def store(mlflow_server, image_folder, tmp_path_factory):
    """The server with: a 2 masks x 2 seeds x 3 images sweep; an experiment with a finished, a
    killed and a running (crashed) configuration; one with only a running one; an empty one."""
    client = MlflowClient(mlflow_server.uri)
    spool = tmp_path_factory.mktemp("spool")
    configs = expand({**GRID, "images": str(image_folder)})
    check(configs)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RIP_SPOOL", str(spool))
        run_sweep(configs, mlflow_server.uri, tags={"rip.sweep": "analysis-test"}, progress=False, echo=lambda _: None)
    experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
    for child in client.search_runs([experiment], "tags.`rip.kind` = 'image'"):  # labels, as a dataset's
        image = child.data.tags["rip.image_id"]
        client.set_tag(child.info.run_id, "rip.label.style", STYLES[image])
        if image in GENRES:
            client.set_tag(child.info.run_id, "rip.label.genre", GENRES[image])

    small = RunConfig(model="telea", images=str(image_folder), size=64, mask=32, percent=100, metrics=("ssim",),
                      experiment="analysis-unfinished")
    run_experiment(small, mlflow_server.uri, progress=False, spool_root=spool)

    def stop(event):
        if getattr(event, "percent", 0) == 50:
            raise StopRun("enough")

    with pytest.raises(StopRun):
        run_experiment(dataclasses.replace(small, seed=1), mlflow_server.uri, observer=stop,
                       progress=False, spool_root=spool)
    crashed_run(client, "analysis-unfinished", small)
    crashed_run(client, "analysis-only-running", small)
    client.create_experiment("analysis-empty")
    return client


def crashed_run(client, experiment, config):
    """A configuration whose process died: parent and child left RUNNING, one value logged."""
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    tags = {"rip.kind": "configuration", "rip.config": config.to_json()}
    parent = client.create_run(experiment_id, run_name="crashed", tags=tags).info.run_id
    child = client.create_run(experiment_id, run_name="astronaut.png", tags={
        **tags, "rip.kind": "image", "mlflow.parentRunId": parent, "rip.image_id": "astronaut.png"}).info.run_id
    client.log_metric(child, "ssim", 1.0, step=0)


@pytest.fixture(scope="module")
def logged(store):
    """Every value as the server returns it run by run: (run_id, metric, percent) -> value."""
    experiment = store.get_experiment_by_name(EXPERIMENT).experiment_id
    children = store.search_runs([experiment], "tags.`rip.kind` = 'image'")
    values = {}
    for child in children:
        for key in set(child.data.metrics) - {"iteration"}:  # ssim, psnr, coverage, depth, complexity_*
            for m in store.get_metric_history(child.info.run_id, key):
                values[child.info.run_id, key, m.step] = m.value
    return children, values


@pytest.fixture(scope="module")
def frame(store, mlflow_server):
    return load_results(mlflow_server.uri, [EXPERIMENT])


def test_loaded_values_equal_the_logged_ones(frame, logged, store, image_folder):
    children, values = logged
    assert len(children) == 12 and frame["run_id"].nunique() == 12
    keys = 2 + 2 + len(COMPLEXITY_KEYS)  # ssim, psnr; coverage, depth; the complexity measures
    assert len(frame) == len(values) == 12 * keys * len(PERCENTS)
    got = {(r.run_id, r.metric, r.percent): r.value for r in frame.itertuples()}
    assert got == values  # exactly: no rounding anywhere
    by_run = {child.info.run_id: child for child in children}
    for run in frame.drop_duplicates("run_id").itertuples():
        child = by_run[run.run_id]
        assert (run.image_id, run.parent_run_id) == (child.data.tags["rip.image_id"], child.data.tags["mlflow.parentRunId"])
        assert (str(run.mask), str(run.seed), run.model, run.images) == (
            child.data.params["mask"], child.data.params["seed"], "telea", str(image_folder))
        assert run.param_percent == 150 and run.status == "FINISHED"
    assert sorted(frame["percent"].unique()) == PERCENTS
    for run_id in frame["run_id"].unique()[::5]:
        logged_iterations = {m.step: m.value for m in store.get_metric_history(run_id, "iteration")}
        rows = frame[(frame["run_id"] == run_id) & (frame["metric"] == "ssim")]
        assert dict(zip(rows["percent"], rows["iteration"])) == logged_iterations


def test_a_local_store_loads_the_same_frame(frame, mlflow_server):
    local = load_results(f"sqlite:///{mlflow_server.root / 'mlflow.db'}", [EXPERIMENT])
    columns = ["run_id", "metric", "percent", "value", "mask", "seed", "image_id"]
    pd.testing.assert_frame_equal(local[columns], frame[columns])


def test_filters_on_parameters_and_configuration_tags(store, mlflow_server):
    def runs(*filters):
        return load_results(mlflow_server.uri, [EXPERIMENT], filters)["run_id"].nunique()

    assert runs("mask=16") == 6
    assert runs("mask=16;seed=1") == 3
    assert runs("seed!=1") == 6
    assert runs("tags.rip.sweep=analysis-test") == 12  # a tag of the configuration runs
    assert runs("tags.rip.backend=telea|ns", "mask=16|32") == 12
    with pytest.raises(AnalysisError, match="none match the filters mask=999"):
        runs("mask=999")
    with pytest.raises(AnalysisError, match="unknown parameter 'maks'"):
        runs("maks=16")


def test_figures_plot_the_logged_values(frame, logged):
    _, values = logged
    figure = figures.mean_std_figure(frame)
    ssim_axis = [ax for ax in figure.axes if ax.get_title() == "SSIM"][0]
    assert [t.get_text() for t in figure.axes[0].get_legend().get_texts()] == ["16 px (n = 6)", "32 px (n = 6)"]
    for line, mask in zip(ssim_axis.lines, [16, 32]):
        runs = frame[frame["mask"] == mask]["run_id"].unique()
        column = np.array([[values[run, "ssim", p] for run in runs] for p in PERCENTS])
        np.testing.assert_allclose(line.get_ydata(), column.mean(axis=1), rtol=0, atol=1e-12)

    scatter = figures.scatter_figure(frame)
    points = sorted(v for ax in scatter.axes for c in ax.collections for v in c.get_offsets().data[:, 1])
    assert points == sorted(values.values())

    variability = figures.variability_figure(frame, "ssim", max_images=3)
    for ax in (ax for ax in variability.axes if ax.get_title()):
        image, mask = ax.get_title().split(" · mask ")
        for line in ax.lines:
            seed = int(line.get_label().split()[1])
            run = frame[(frame.image_id == image) & (frame["mask"] == int(mask.removesuffix(" px")))
                        & (frame.seed == seed)].run_id.iloc[0]
            assert list(line.get_ydata()) == [values[run, "ssim", p] for p in PERCENTS]


def test_summary_matches_the_parent_runs_aggregates(frame, store):
    table = summary_table(frame)
    for parent_id, rows in frame.groupby("parent_run_id"):
        own = summary_table(rows)
        for key in ("ssim", "psnr"):
            means = {m.step: m.value for m in store.get_metric_history(parent_id, f"{key}_mean")}
            stds = {m.step: m.value for m in store.get_metric_history(parent_id, f"{key}_std")}
            mine = own[own["metric"] == key].set_index("percent")
            assert mine["mean"].to_dict() == pytest.approx(means)
            assert mine["std"].to_dict() == pytest.approx(stds, abs=1e-9)
    pooled = table[(table["mask"] == 32) & (table["metric"] == "psnr") & (table["percent"] == 150)].iloc[0]
    expected = frame.query("mask == 32 and metric == 'psnr' and percent == 150")["value"]
    assert (pooled["mean"], pooled["std"], pooled["min"], pooled["max"], pooled["n"]) == pytest.approx(
        (expected.mean(), expected.std(), expected.min(), expected.max(), 6))


def test_filmstrip_shows_the_logged_generations(frame, store, tmp_path):
    run_id = frame["run_id"].iloc[0]
    original, generations = run_images(store, run_id)
    assert sorted(generations) == PERCENTS
    folder = store.download_artifacts(run_id, "", str(tmp_path))
    expected = np.asarray(Image.open(os.path.join(folder, "generations", "0150.png")))
    np.testing.assert_array_equal(generations[150], expected)
    np.testing.assert_array_equal(original, np.asarray(Image.open(os.path.join(folder, "original.png"))))
    np.testing.assert_array_equal(generations[0], original)  # the 0 % generation is the original...
    figure = figures.filmstrip_figure(original, generations)
    assert [ax.get_title() for ax in figure.axes] == ["original", "50 %", "100 %", "150 %"]  # ...shown once
    np.testing.assert_array_equal(figure.axes[3].images[0].get_array(), expected)


def test_image_labels_become_columns(frame):
    runs = frame.drop_duplicates("run_id")
    assert list(runs["label_style"]) == [STYLES[image] for image in runs["image_id"]]
    assert list(runs["label_genre"]) == [GENRES.get(image, "") for image in runs["image_id"]]


def test_rip_analyze_writes_outputs_and_logs_an_analysis_run(frame, store, mlflow_server, tmp_path):
    result = CliRunner().invoke(analyze, ["--tracking-uri", mlflow_server.uri, "--experiment", EXPERIMENT,
                                          "--output", str(tmp_path), "--filmstrips", "1", "--dpi", "50",
                                          "--features", "none"])
    assert result.exit_code == 0, result.output
    for name in ("results.csv", "summary.csv", "summary.md", "report.md", "report.html", "verdicts.csv", "completeness.csv",
                 "figures/mean_std.png", "figures/mean_std.svg", "figures/mean_std.pdf", "figures/scatter.png",
                 "figures/variability.png", "figures/properties.png", "figures/label_style.png",
                 "figures/label_genre.pdf", "statistics/saturation_runs.csv", "statistics/saturation_means.csv",
                 "statistics/stability.csv", "statistics/paired_tests.csv", "statistics/property_correlations.csv",
                 "statistics/labels.csv", "statistics/label_tests.csv"):
        assert (tmp_path / name).is_file(), name
    assert len(list((tmp_path / "figures" / "filmstrips").glob("*.png"))) == 2  # one per mask
    # beside each, its image run's animation, embedded in report.html as it was logged
    animations = sorted((tmp_path / "figures" / "filmstrips").glob("*.webp"))
    assert [path.stem for path in animations] == sorted(p.stem for p in (tmp_path / "figures" / "filmstrips").glob("*.png"))
    embedded = re.findall(r'src="data:image/webp;base64,([^"]+)"', (tmp_path / "report.html").read_text())
    assert sorted(base64.b64decode(data) for data in embedded) == sorted(path.read_bytes() for path in animations)
    logged_animations = {run_animation(store, run_id) for run_id in frame["run_id"].unique()}
    assert {path.read_bytes() for path in animations} <= logged_animations
    assert "![" in (tmp_path / "report.md").read_text() and ".webp)" in (tmp_path / "report.md").read_text()
    with Image.open(tmp_path / "figures" / "mean_std.png") as png:
        assert [round(v) for v in png.info["dpi"]] == [50, 50]
    written = pd.read_csv(tmp_path / "summary.csv")
    np.testing.assert_allclose(written["mean"], summary_table(comparisons(frame))["mean"])  # complexity: its own table
    paired = pd.read_csv(tmp_path / "statistics" / "paired_tests.csv")
    assert set(paired["factor"]) == {"mask"} and set(paired["n"]) == {3}

    # the final distance (1 - SSIM) by style, n images per group, against the logged values
    labels = pd.read_csv(tmp_path / "statistics" / "labels.csv", keep_default_na=False)
    style = labels[(labels["label"] == "label_style") & (labels["mask"] == 16)].set_index("group")
    at = frame.query("metric == 'ssim' and percent == 150 and mask == 16").groupby("image_id")["value"].mean()
    for group in ("Realism", "Expressionism"):
        images = [image for image, name in STYLES.items() if name == group]
        assert style.loc[group, "n"] == len(images)
        assert style.loc[group, "mean"] == pytest.approx((1 - at[images]).mean())
    assert set(labels[labels["label"] == "label_genre"]["group"]) == {"portrait", "animal"}

    experiment = store.get_experiment_by_name(EXPERIMENT).experiment_id
    (analysis,) = store.search_runs([experiment], "tags.`rip.kind` = 'analysis'")
    assert analysis.info.status == "FINISHED" and analysis.data.params["n_image_runs"] == "12"
    assert ui_addresses(result.output) == [
        f"{mlflow_server.uri}/#/experiments/{experiment}/runs/{analysis.info.run_id}?workflowType=machine_learning"]
    logged = {a.path for a in store.list_artifacts(analysis.info.run_id)}
    assert {"report.md", "report.html", "verdicts.csv", "summary.csv", "figures", "statistics"} <= logged
    # its metrics never share a name with the image runs' (they would be drawn among them)
    image_keys = {key for child in store.search_runs([experiment], "tags.`rip.kind` = 'image'")
                  for key in child.data.metrics}
    assert {"ssim", "psnr", "iteration"} <= image_keys
    assert analysis.data.metrics and all(key.startswith("analysis.") for key in analysis.data.metrics)
    assert not set(analysis.data.metrics) & image_keys
    verdicts = pd.read_csv(tmp_path / "verdicts.csv")
    assert analysis.data.metrics["analysis.verdicts_holds"] == (verdicts["verdict"] == HOLDS).sum()
    # the report links the runs view of the experiment and each configuration
    page = (tmp_path / "report.html").read_text()
    assert f'href="{mlflow_server.uri}/#/experiments/{experiment}/runs?workflowType=machine_learning"' in page
    for parent in frame["parent_run_id"].unique():
        assert f'href="{mlflow_server.uri}/#/experiments/{experiment}/runs/{parent}?workflowType=machine_learning"' in page
    # the analysis run is not mistaken for data on the next load
    assert load_results(mlflow_server.uri, [EXPERIMENT])["run_id"].nunique() == 12


def test_unfinished_runs_are_left_out_with_a_warning(store, mlflow_server, caplog):
    with caplog.at_level(logging.WARNING, logger="analysis"):
        frame = load_results(mlflow_server.uri, ["analysis-unfinished"])
    assert set(frame["status"]) == {"FINISHED"} and frame["run_id"].nunique() == 3
    message = caplog.text
    assert "image runs are unfinished" in message and "RUNNING" in message and "KILLED" in message
    everything = load_results(mlflow_server.uri, ["analysis-unfinished"], include_unfinished=True)
    assert {"RUNNING", "KILLED"} <= set(everything["status"])


@pytest.mark.parametrize(
    "experiment, fragment",
    [
        ("analysis-empty", "no recursive-inpainting runs in experiment(s) 'analysis-empty'"),
        ("analysis-only-running", "no finished runs to analyse: 1 of 1 image runs are unfinished (1 RUNNING)"),
        ("no-such-experiment", "unknown experiment 'no-such-experiment'"),
    ],
)
def test_nothing_to_analyse_gives_a_clear_message(store, mlflow_server, tmp_path, experiment, fragment):
    with pytest.raises(AnalysisError, match=r"^" + fragment.replace("(", r"\(").replace(")", r"\)")):
        load_results(mlflow_server.uri, [experiment])
    result = CliRunner().invoke(analyze, ["--tracking-uri", mlflow_server.uri, "--experiment", experiment,
                                          "--output", str(tmp_path / "out")])
    assert result.exit_code == 1 and fragment in result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output


def test_mlflow_run_analyze_entry_point(store, mlflow_server, tmp_path):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "MLFLOW_TRACKING_URI": mlflow_server.uri}
    command = [str(BIN / "mlflow"), "run", str(REPO), "-e", "analyze", "--env-manager", "local",
               "--experiment-name", "analysis-mlflow-run", "-P", f"experiment={EXPERIMENT}",
               "-P", "filter=mask=32", "-P", f"output={tmp_path / 'out'}", "-P", "filmstrips=0",
               "-P", "features=none"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = store.search_runs([store.get_experiment_by_name("analysis-mlflow-run").experiment_id])
    assert run.data.tags["rip.kind"] == "analysis" and run.data.params["n_image_runs"] == "6"
    assert "report.md" in {a.path for a in store.list_artifacts(run.info.run_id)}


@pytest.fixture(scope="module")
def verdict_images(tmp_path_factory):
    """Five small photographs (the fewest a one-sided signed-rank test can decide on), the same for every
    configuration."""
    from skimage import data

    folder = tmp_path_factory.mktemp("verdict-images")
    for name in ("astronaut", "chelsea", "coffee", "rocket", "camera"):
        Image.fromarray(getattr(data, name)()).resize((64, 48)).save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="module")
def verdict_store(mlflow_server, verdict_images, tmp_path_factory):
    """Telea and Navier-Stokes, masks 16 and 32, seeds 0 and 1, over the same five images; analysed."""
    configs = expand({**VERDICT_GRID, "images": str(verdict_images)})
    check(configs)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RIP_SPOOL", str(tmp_path_factory.mktemp("spool")))
        run_sweep(configs, mlflow_server.uri, progress=False, echo=lambda _: None)
    output = tmp_path_factory.mktemp("verdicts")
    result = CliRunner().invoke(analyze, ["--tracking-uri", mlflow_server.uri, "--experiment", VERDICTS,
                                          "--output", str(output), "--filmstrips", "0", "--dpi", "40", "--no-log",
                                          "--metrics", "stlpips-alex,stlpips_vgg,ssim", "--metric", "stlpips-vgg",
                                          "--features", "none"])
    assert result.exit_code == 0, result.output
    frame = load_results(mlflow_server.uri, [VERDICTS])
    return frame, pd.read_csv(output / "verdicts.csv", keep_default_na=False), output


def finals(frame, model, mask, metric, percent=VERDICT_PERCENT):
    """Each image's distance at `percent`, the mean over its seeds."""
    rows = frame.query("model == @model and mask == @mask and metric == @metric and percent == @percent")
    values = rows.groupby("image_id")["value"].mean()
    return 1 - values if metric == "ssim" else values


def test_verdicts_on_real_runs_match_statistics_computed_from_the_logged_values(verdict_store):
    frame, table, _ = verdict_store
    assert frame["run_id"].nunique() == 2 * 2 * 2 * 5
    table["finding"] = table["finding"].astype(str)
    for model in ("ns", "telea"):
        rows = table[table["context"] == f"model={model}"]
        studied = rows[rows["finding"].isin(CLAIMS)]
        assert set(rows["finding"]) == set(CLAIMS) | set(QUESTIONS) and set(studied["checkpoints"]) <= {"50–100 %", ""}
        # 1: growth from 50 % to 100 % over the distance at 50 % (ratio of means over the images)
        growth = rows[(rows["finding"] == "1") & (rows["mask"] == "16") & (rows["metric"] == "stlpips_alex")].iloc[0]
        at50, at100 = (finals(frame, model, 16, "stlpips_alex", p) for p in (50, 100))
        assert float(growth["value"]) == pytest.approx((at100 - at50).mean() / at50.mean())
        # 3: each image's ratio of masks 32 and 16, decided at the weaker of the two checkpoints
        drift = rows[(rows["finding"] == "3") & (rows["metric"] == "1-ssim")].iloc[0]
        p = [stats.ttest_1samp(np.log(finals(frame, model, 32, "ssim", q) / finals(frame, model, 16, "ssim", q)),
                               np.log(1.05), alternative="greater").pvalue for q in (50, 100)]
        assert int(drift["n"]) == 5 and float(drift["p_value"]) == pytest.approx(max(p))
        # 5: the coefficient of variation of the images' relative levels
        cv = rows[(rows["finding"] == "5") & (rows["mask"] == "16") & (rows["metric"] == "stlpips_vgg")].iloc[0]
        levels = sum(v / v.mean() for v in (finals(frame, model, 16, "stlpips_vgg", q) for q in (50, 100))) / 2
        assert float(cv["value"]) == pytest.approx(levels.std(ddof=1) / levels.mean())
        # 6a: images as groups, seeds as replicates
        spread = rows[(rows["finding"] == "6a") & (rows["mask"] == "16") & (rows["metric"] == "1-ssim")].iloc[0]
        assert int(spread["n"]) == 5 and spread["statistic"] == "run SD / image SD"
    # every verdict follows its rule: Holm-adjusted p below 0.05 and the interval past the threshold
    decided = table[table["verdict"] == HOLDS]
    assert (decided["p_adjusted"].astype(float) < 0.05).all()
    for row in decided.itertuples():
        side, bound = row.threshold.split(" ", 1)
        if side in (">", "<"):
            assert float(row.low) > float(bound) if side == ">" else float(row.high) < float(bound)


def test_the_report_states_the_verdicts_and_metric_names_are_accepted_either_way(verdict_store, mlflow_server):
    frame, table, output = verdict_store
    text = (output / "report.md").read_text()
    assert "## The study's findings" in text
    for claim in CLAIMS.values():
        assert claim in text
    assert set(comparisons(frame)["metric"]) == {"ssim", "stlpips_alex", "stlpips_vgg"}
    assert set(frame["metric"]) - set(comparisons(frame)["metric"]) == set(GENERATION_MEASURES)
    assert "## Complexity and coverage" in text and "images become simpler" in text
    stability = pd.read_csv(output / "statistics" / "stability.csv")
    assert set(stability["metric"]) == {"stlpips_vgg"}  # --metric stlpips-vgg
    dashed = load_results(mlflow_server.uri, [VERDICTS], ["metric=stlpips-vgg", "metrics=stlpips-alex,ssim"])
    assert set(dashed["metric"]) == {"stlpips_vgg", *GENERATION_MEASURES} and dashed["run_id"].nunique() == 40
    with pytest.raises(AnalysisError, match="no selected run logged the metric"):
        load_results(mlflow_server.uri, [VERDICTS], metrics=["lpips-vgg"])
