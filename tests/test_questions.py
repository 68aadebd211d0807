"""Do images become simpler, and how much of the drift is coverage? Known answers on real recursions
(Telea blurs: complexity falls; an identity backend changes nothing) and on frames built here."""

import warnings

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage import data

from analysis.complexity import complexity_figure, complexity_ratios, complexity_verdicts
from analysis.drift_model import (MODELS, coverage_figure, coverage_verdicts, fit_model,
                                  model_table, run_fits)
from analysis.questions import question_verdicts
from analysis.report import write_report
from analysis.verdicts import COLUMNS, FAILS, HOLDS, UNKNOWN
from rip.config import RunConfig
from rip.images.letterbox import letterbox_with_box
from rip.inpainters import load_inpainter
from rip.inpainters.base import Inpainter
from rip.metrics import load_metrics
from rip.metrics.complexity import COMPLEXITY_KEYS, complexity
from rip.protocol.engine import Checkpoint, ImageTask, RecursiveInpainting
from rip.protocol.masks import expected_coverage

PICTURES = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field", "camera", "coins")
SMALL = dict(mask=32, size=64, step=50, percent=400, metrics=("ssim",))  # 4 squares; full coverage from 100 % (shuffle)
BLURRING = {"png_bpp", "edges", "hf"}  # what Telea's smooth fill must lower


class Identity(Inpainter):
    """Gives every image back unchanged: nothing drifts, nothing gets simpler."""

    name = "identity"

    def inpaint(self, images, masks, seeds):
        return [image.copy() for image in images]


def recursion_frame(config: RunConfig, inpainter: Inpainter) -> pd.DataFrame:
    """The tidy frame (as `load_results` gives it) of the letterboxed photographs under `config`, with the
    complexity of each checkpoint measured as the recorder measures it."""
    tasks = []
    for name in PICTURES:
        array, box = letterbox_with_box(Image.fromarray(getattr(data, name)()), config.size)
        tasks.append(ImageTask(name, array, box=box))
    engine = RecursiveInpainting(config, inpainter, load_metrics(config.metrics), progress=False)
    rows = [dict(experiment="e", parent_run_id=config.mask_order, run_id=f"{config.mask_order}-{event.image_id}",
                 image_id=event.image_id, model=inpainter.name, mask=config.mask, seed=config.seed, metric=key,
                 percent=event.percent, iteration=event.iteration, value=value, status="FINISHED", size=config.size,
                 mask_order=config.mask_order, images="skimage", paste_back=False)
            for event in engine.run(tasks) if isinstance(event, Checkpoint)
            for key, value in {**event.values, **complexity(event.image, event.box)}.items()]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def telea():
    configs = [RunConfig(model="telea", mask_order=order, **SMALL) for order in ("random", "shuffle")]
    return pd.concat([recursion_frame(config, load_inpainter(config, "cpu")) for config in configs], ignore_index=True)


@pytest.fixture(scope="module")
def identity():
    return recursion_frame(RunConfig(model="telea", mask_order="shuffle", **SMALL), Identity())


def row(table, finding, **where):
    rows = table[table["finding"] == finding]
    for key, value in where.items():
        rows = rows[rows[key] == value]
    assert len(rows) == 1, rows
    return rows.iloc[0]


# Q1a. Images become simpler

def test_telea_lowers_complexity(telea):
    table = complexity_verdicts(telea)
    assert list(table.columns) == COLUMNS
    for order in ("random", "shuffle"):
        for key in (f"complexity_{name}" for name in BLURRING):
            verdict = row(table, "Q1a", context=f"mask_order={order}", metric=key)
            assert verdict.verdict == HOLDS and verdict.n == 8, verdict
            assert verdict.high < 0.95 and verdict.p_adjusted < 0.05 and verdict.checkpoints == "50–400 %"
            assert verdict.threshold == "< 0.95" and not verdict.contradicted
    ratios = complexity_ratios(telea)
    grey = ratios["image_id"].isin(["camera", "coins"]) & (ratios["metric"] == "complexity_colourfulness")
    assert ratios.loc[grey, "ratio"].isna().all()  # no colour to lose: no ratio
    assert (ratios.loc[~grey & (ratios["percent"] == 0), "ratio"] == 1).all()
    final = ratios[ratios["percent"] == 400].groupby("metric")["ratio"].mean()
    assert (final[[f"complexity_{name}" for name in BLURRING]] < 0.9).all()


def test_an_identity_backend_leaves_complexity_unchanged(identity):
    ratios = complexity_ratios(identity).dropna(subset=["ratio"])  # but the grey images' colourfulness
    assert set(ratios["metric"]) == set(COMPLEXITY_KEYS) and (ratios["ratio"] == 1).all()
    table = complexity_verdicts(identity)
    simpler = table[table["finding"] == "Q1a"]
    assert len(simpler) == len(COMPLEXITY_KEYS) and (simpler["verdict"] == FAILS).all()
    assert (simpler[["value", "low", "high"]] == 1).all().all() and simpler["contradicted"].all()
    # nothing drifted and nothing was lost: no correlation to compute
    assert (table[table["finding"] == "Q1b"]["verdict"] == UNKNOWN).all()


def test_rising_complexity_does_not_count_as_simpler(telea):
    rising = telea.copy()
    measured = rising["metric"].isin(COMPLEXITY_KEYS)
    original = rising[measured & (rising["percent"] == 0)].set_index(["run_id", "metric"])["value"]
    start = [original[key] for key in zip(rising.loc[measured, "run_id"], rising.loc[measured, "metric"])]
    rising.loc[measured, "value"] = np.asarray(start) * (1 + rising.loc[measured, "percent"] / 100)
    table = complexity_verdicts(rising)
    assert (table[table["finding"] == "Q1a"]["verdict"] == FAILS).all() and table["contradicted"].any()


# Q1b. Images that drift further lose more complexity

def drift_frame(loss_of, images=8):
    """Per image i: distance 0.1·i at 100 %, complexity (edges) 1 − loss_of(i) relative to its original."""
    rows = []
    for i in range(images):
        for percent in (0, 25, 50, 75, 100):
            share = percent / 100
            for metric, value in (("lpips_vgg", 0.1 * i * share), ("complexity_edges", 0.2 * (1 - loss_of(i) * share))):
                rows.append(dict(experiment="e", run_id=f"r{i}", parent_run_id="p", image_id=f"img{i}", model="m",
                                 mask=16, seed=0, metric=metric, percent=percent, value=value, size=64))
    return pd.DataFrame(rows)


def test_drift_and_loss_of_complexity_go_together_only_when_they_do():
    together = row(complexity_verdicts(drift_frame(lambda i: 0.05 * i)), "Q1b")
    assert together.verdict == HOLDS and together.value == pytest.approx(1.0) and together.n == 8
    assert together.metric == "lpips_vgg" and together.compared == "complexity_edges loss" and together.low > 0
    scrambled = row(complexity_verdicts(drift_frame(lambda i: 0.05 * [3, 7, 0, 5, 1, 6, 2, 4][i])), "Q1b")
    assert scrambled.verdict == FAILS and scrambled.p_value >= 0.05
    three = row(complexity_verdicts(drift_frame(lambda i: 0.05 * i, images=3)), "Q1b")  # a rank correlation needs 4
    assert three.verdict == UNKNOWN and three.n == 3


# Q2. The drift continues beyond full coverage; the drift model

def test_the_drift_continues_beyond_full_coverage_under_telea_not_without_drift(telea, identity):
    table = coverage_verdicts(telea)
    shuffle = row(table, "Q2", context="mask_order=shuffle")  # 1 − SSIM still grows, by about 5 %
    assert shuffle.value > 0 and shuffle.low > 0 and shuffle.n == 8 and shuffle.checkpoints == "100–400 %", shuffle
    assert shuffle.statistic == "growth / distance at 100 %" and shuffle.verdict == (HOLDS if shuffle.low > 0.05 else FAILS)
    assert row(table, "Q2", context="mask_order=random").verdict == UNKNOWN  # with replacement: never fully covered
    assert row(coverage_verdicts(identity), "Q2").verdict == FAILS


def curve_frame(distance_of, orders=("random", "shuffle"), images=6, percents=range(0, 401, 50), cells=64, seed=0):
    """Runs whose coverage follows each order's expectation and whose distance is distance_of(c, D, rng)."""
    rng = np.random.default_rng(seed)
    rows = []
    for order in orders:
        for i in range(images):
            for percent in percents:
                c = float(expected_coverage(order, cells, percent * cells / 100))
                depth = percent / 100 / c if c else 0.0
                for metric, value in (("coverage", c), ("depth", depth), ("lpips_vgg", distance_of(c, depth, rng))):
                    rows.append(dict(experiment="e", run_id=f"{order}-{i}", parent_run_id=order, image_id=f"img{i}",
                                     model="m", mask=64, seed=0, metric=metric, percent=percent, value=value,
                                     size=512, mask_order=order))
    return pd.DataFrame(rows)


def test_flat_distance_after_full_coverage_does_not_continue():
    flat = curve_frame(lambda c, D, rng: 0.5 * c + rng.normal(0, 0.01), orders=("shuffle",))
    verdict = row(coverage_verdicts(flat), "Q2")
    assert verdict.verdict == FAILS and verdict.checkpoints == "100–400 %" and verdict.n == 6 and verdict.contradicted
    growing = curve_frame(lambda c, D, rng: 0.5 * c + 0.1 * (D - 1) * c + rng.normal(0, 0.01), orders=("shuffle",))
    grows = row(coverage_verdicts(growing), "Q2")  # 0.5 at 100 % -> 0.8 at 400 %: growth / distance = 0.6
    assert grows.verdict == HOLDS and grows.value == pytest.approx(0.6, abs=0.02)


def test_the_model_recovers_known_weights_and_picks_the_form_that_made_the_data():
    both = curve_frame(lambda c, D, rng: 0.4 * c + 0.05 * (D - 1) * c + rng.normal(0, 0.003))
    fits = run_fits(both)
    assert len(fits) == 12 * len(MODELS)
    table = model_table(fits)
    chosen = table[table["chosen"]].set_index("mask_order")
    assert list(chosen["form"]) == ["coverage + recursion"] * 2
    assert chosen["alpha"].to_numpy() == pytest.approx([0.4, 0.4], abs=0.01)
    assert chosen["beta"].to_numpy() == pytest.approx([0.05, 0.05], abs=0.005)
    # at 400 %: coverage 0.4·c, recursion 0.05·(4 − c) of the fitted distance
    for order, c in (("random", expected_coverage("random", 64, 256)), ("shuffle", 1.0)):
        share = 0.4 * c / (0.4 * c + 0.05 * (4 - c))
        assert chosen.loc[order, "share_coverage"] == pytest.approx(share, abs=0.02)
    assert chosen["why"].str.startswith("lowest BIC summed over 6 image runs").all()
    backends = pd.concat([both, both.assign(model="other", run_id=both["run_id"] + "-other")])  # a condition
    assert set(model_table(run_fits(backends))["model"]) == {"m", "other"}
    # no recursion term in the data: whichever form is chosen gives coverage all of it, and the
    # one-parameter coverage model is within weak evidence (ΔBIC < 2) of the best
    coverage_only = model_table(run_fits(curve_frame(lambda c, D, rng: 0.4 * c + rng.normal(0, 0.003))))
    assert coverage_only[coverage_only["chosen"]]["share_coverage"].to_numpy() == pytest.approx([1, 1], abs=0.01)
    assert (coverage_only[coverage_only["form"] == "coverage"]["delta_bic"] < 2).all()
    assert (coverage_only[coverage_only["form"] == "percent"]["delta_bic"] > 100).all()


def test_a_fit_splits_the_last_distance_into_coverage_and_recursion():
    c, D = np.array([0.5, 1.0, 1.0]), np.array([1.0, 1.0, 2.0])
    fit = fit_model("coverage + recursion", c, D, 0.3 * c + 0.1 * (D - 1) * c)
    assert (fit["alpha"], fit["beta"]) == pytest.approx((0.3, 0.1))
    assert (fit["coverage_part"], fit["recursion_part"], fit["fitted_last"]) == pytest.approx((0.3, 0.1, 0.4))
    assert fit_model("percent", c, D, c * D)["recursion_part"] == pytest.approx(1.0)


# Where it shows

def test_figures_and_report_answer_both_questions(telea, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        complexity = complexity_figure(telea)
        coverage = coverage_figure(telea)
        assert [ax.get_title() for ax in complexity.axes][:2] == ["PNG size (bits per pixel)", "edge density (Canny)"]
        assert coverage.axes[0].get_ylabel().startswith("coverage") and coverage.axes[1].get_xlabel() == "coverage"
        shuffle = telea[telea["mask_order"] == "shuffle"]  # one group: fewer figures to draw
        write_report(shuffle.assign(experiment_id="1", parent_name="telea"), tmp_path, dpi=40)
    for name in ("figures/complexity.png", "figures/coverage.png", "statistics/complexity.csv",
                 "statistics/drift_model.csv", "statistics/drift_model_runs.csv"):
        assert (tmp_path / name).is_file(), name
    verdicts = pd.read_csv(tmp_path / "verdicts.csv")
    assert {"Q1a", "Q1b", "Q2"} <= set(verdicts["finding"])
    assert not verdicts[verdicts["finding"].isin(["1", "2a", "5"])]["metric"].astype(str).str.startswith("complexity").any()
    text = (tmp_path / "report.md").read_text()
    assert "## Complexity and coverage" in text and "the images become simpler" in text
    assert question_verdicts(telea).shape[1] == len(COLUMNS)
