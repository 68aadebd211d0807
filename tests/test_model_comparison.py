"""`rip analyze` across models, on real runs in a real tracking server: finding M1 ("the models differ in
stability") holds, with the right ranking, where one model drifts far more (a tiny random diffusion pipeline
beside OpenCV's Telea and Navier-Stokes), and does not hold where the models are identical by construction
(one tiny pipeline saved twice); its numbers equal statistics computed here from the logged values."""

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats

from analysis.cli import analyze
from analysis.load import load_results
from analysis.models import FINDING, model_curves_figure, model_ranking, model_verdicts
from analysis.verdicts import FAILS, HOLDS, POOLED
from rip.inpainters.tiny import build_tiny_pipeline
from rip.sweeps.local import run_sweep
from rip.sweeps.presets import check, expand

pytestmark = pytest.mark.slow
IMAGES = "sample:8"  # eight photographs: enough pairs for Friedman's and Wilcoxon's tests to decide
GRID = dict(images=IMAGES, size=64, mask=32, percent=100, step=25, steps=2, metrics=["ssim", "stlpips-alex"])
DIFFER, ALIKE = "models-differ", "models-alike"


def record(mlflow_server, tmp_path_factory, experiment: str, models: list[str]) -> pd.DataFrame:
    configs = expand({**GRID, "experiment": experiment, "model": models})
    check(configs)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RIP_SPOOL", str(tmp_path_factory.mktemp("spool")))
        run_sweep(configs, mlflow_server.uri, progress=False, echo=lambda _: None)
    return load_results(mlflow_server.uri, [experiment])


@pytest.fixture(scope="module")
def differ(mlflow_server, tmp_path_factory):
    """Telea, Navier-Stokes and the tiny random pipeline (whose fills are noise) on the same images."""
    return record(mlflow_server, tmp_path_factory, DIFFER, ["telea", "ns", "tiny"])


@pytest.fixture(scope="module")
def alike(mlflow_server, tmp_path_factory):
    """The same tiny pipeline saved in two folders: two models that differ only in their random draws."""
    folders = []
    for name in ("first", "second"):
        folder = tmp_path_factory.mktemp(name)
        build_tiny_pipeline().save_pretrained(folder)
        folders.append(str(folder))
    return record(mlflow_server, tmp_path_factory, ALIKE, folders)


def levels(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Images × models: each image's mean distance from 50 % to 100 %, computed here from the logged values."""
    rows = frame[(frame["metric"] == metric) & frame["percent"].isin([50, 75, 100])]
    distance = 1 - rows["value"] if metric == "ssim" else rows["value"]
    return distance.groupby([rows["image_id"], rows["model"]]).mean().unstack("model")


def test_a_model_that_drifts_far_more_makes_m1_hold_and_ranks_last(differ):
    table = model_verdicts(differ)
    assert len(table) == 3 and set(table["finding"]) == {FINDING}  # ssim, stlpips-alex, pooled
    assert (table["verdict"] == HOLDS).all(), table[["metric", "p_adjusted", "low", "note"]]
    assert all(order.endswith(" < tiny") for order in table["compared"])
    for metric, name in (("ssim", "1-ssim"), ("stlpips_alex", "stlpips_alex")):
        matrix = levels(differ, metric)
        row = table[table["metric"] == name].iloc[0]
        pairs = {(a, b): max(stats.ttest_1samp(matrix[a] - 1.05 * matrix[b], 0, alternative="greater").pvalue,
                             stats.ttest_1samp(matrix[b], 0, alternative="greater").pvalue)
                 for a in matrix for b in matrix if a != b}
        (a, b), p = min(pairs.items(), key=lambda item: item[1])
        friedman = stats.friedmanchisquare(*matrix.to_numpy().T).pvalue
        assert row["n"] == 8 and a == "tiny" and row["value"] == pytest.approx(matrix[a].mean() / matrix[b].mean())
        assert row["p_value"] == pytest.approx(max(friedman, 6 * p))
        assert row["low"] > 1.05 and row["low"] <= row["value"] <= row["high"]
    ranking = model_ranking(differ)
    last = ranking[ranking["place"] == 3]
    assert set(last["model"]) == {"tiny"} and (last["rank_low"] == 3).all() and (last["rank_high"] == 3).all()
    assert set(ranking["mask"].astype(str)) == {"32", POOLED}
    assert model_ranking(differ).equals(ranking)  # the bootstrap is seeded by the scope


def test_identical_models_do_not_make_m1_hold(alike):
    table = model_verdicts(alike)
    assert len(table) == 3 and (table["verdict"] == FAILS).all(), table[["metric", "p_value", "low", "high"]]
    matrix = levels(alike, "ssim")
    row = table[table["metric"] == "1-ssim"].iloc[0]
    assert row["p_value"] >= stats.wilcoxon(*matrix.to_numpy().T).pvalue  # two models: Wilcoxon, and the pair
    assert row["n"] == 8 and row["compared"].count(" < ") == 1


def test_the_figure_draws_each_models_mean_over_images(differ):
    figure = model_curves_figure(differ)
    axes = {ax.get_ylabel() or "stlpips": ax for ax in figure.axes if ax.get_lines()}
    lines = {line.get_label().split(" (")[0]: line for line in axes["1 − SSIM"].get_lines()}
    assert set(lines) == {"ns", "telea", "tiny"}
    ssim = differ[differ["metric"] == "ssim"]
    for model, line in lines.items():
        expected = (1 - ssim[ssim["model"] == model].groupby("percent")["value"].mean()).to_numpy()
        np.testing.assert_allclose(line.get_ydata(), expected)


def test_rip_analyze_writes_the_comparison(differ, mlflow_server, tmp_path):
    result = CliRunner().invoke(analyze, ["--tracking-uri", mlflow_server.uri, "--experiment", DIFFER, "--output",
                                          str(tmp_path), "--filmstrips", "0", "--dpi", "40", "--no-log", "--features", "none"])
    assert result.exit_code == 0, result.output
    verdicts = pd.read_csv(tmp_path / "verdicts.csv", keep_default_na=False)
    m1 = verdicts[verdicts["finding"] == FINDING]
    assert list(m1["verdict"]) == list(model_verdicts(differ)["verdict"])
    for name in ("figures/models.png", "figures/models.pdf", "statistics/model_ranking.csv",
                 "statistics/model_saturation.csv", "statistics/model_drift.csv", "statistics/model_complexity.csv"):
        assert (tmp_path / name).is_file(), name
    complexity = pd.read_csv(tmp_path / "statistics/model_complexity.csv")
    assert {"ns", "telea", "tiny"} <= set(complexity.columns) and len(complexity) > 0
    report = (tmp_path / "report.md").read_text()
    assert "## Models compared" in report and "figures/models.png" in report

