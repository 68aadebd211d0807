"""Each finding's verdict on frames built here: one that holds, one that does not, one with too little data.

Statistics are checked against scipy called directly on values computed here from the frame.
"""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.verdicts import AGREEMENT_RHO, CLAIMS, FAILS, HOLDS, LARGE_CV, UNKNOWN, tally, verdicts

PERCENTS = (0, 50, 100, 150, 200)


def make_frame(value, images=6, masks=(16,), seeds=(0,), percents=PERCENTS, metrics=("lpips_vgg",), model="telea"):
    """A tidy frame whose values are value(image index, mask, seed, percent, metric, rng)."""
    rng = np.random.default_rng(0)
    rows = []
    for mask in masks:
        for seed in seeds:
            for i in range(images):
                run = f"{model}-{mask}-{seed}-{i}"
                for metric in metrics:
                    for percent in percents:
                        rows.append(dict(experiment="e", parent_run_id=f"{model}-{mask}-{seed}", run_id=run,
                                         image_id=f"img{i}", model=model, mask=mask, seed=seed, metric=metric,
                                         percent=percent, iteration=percent, status="FINISHED", size=64,
                                         images="folder", paste_back=False,
                                         value=float(value(i, mask, seed, percent, metric, rng))))
    return pd.DataFrame(rows)


def row(table: pd.DataFrame, finding: str, **where) -> pd.Series:
    rows = table[table["finding"] == finding]
    for key, value in where.items():
        rows = rows[rows[key] == value]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def matrix(frame: pd.DataFrame, metric="lpips_vgg", mask=16) -> pd.DataFrame:
    rows = frame[(frame.metric == metric) & (frame["mask"] == mask)]
    return rows.pivot_table(index="image_id", columns="percent", values="value", aggfunc="mean")


# 1. The distance grows with the percent inpainted

def test_growth_holds_for_rising_curves():
    frame = make_frame(lambda i, m, s, p, k, rng: 0.001 * p * (1 + i / 10) + rng.normal(0, 0.005))
    verdict = row(verdicts(frame), "1")
    assert verdict.verdict == HOLDS and verdict.n == 6 and verdict.statistic == "Page's L"
    expected = stats.page_trend_test(matrix(frame).to_numpy())
    assert (verdict.value, verdict.p_value) == pytest.approx((expected.statistic, expected.pvalue))


def test_growth_does_not_hold_for_flat_noise():
    frame = make_frame(lambda i, m, s, p, k, rng: 0.3 + rng.normal(0, 0.05))
    verdict = row(verdicts(frame), "1")
    assert verdict.verdict == FAILS
    assert verdict.p_value == pytest.approx(stats.page_trend_test(matrix(frame).to_numpy()).pvalue) and verdict.p_value >= 0.05


def test_growth_needs_three_checkpoints_and_enough_images():
    two = make_frame(lambda i, m, s, p, k, rng: 0.001 * p, percents=(0, 50))
    assert row(verdicts(two), "1").verdict == UNKNOWN
    one_image = make_frame(lambda i, m, s, p, k, rng: 0.001 * p, images=1, percents=(0, 50, 100))  # min p = 1/6
    assert row(verdicts(one_image), "1").verdict == UNKNOWN


# 2. Growth slows

def slopes(frame):
    m = matrix(frame)
    early = (m[100] - m[0]) / 100
    late = (m[200] - m[100]) / 100
    return (early - late).to_numpy()


def test_slowing_holds_for_concave_curves():
    frame = make_frame(lambda i, m, s, p, k, rng: (0.4 + 0.05 * i) * (1 - np.exp(-p / 60)) + rng.normal(0, 0.003))
    verdict = row(verdicts(frame), "2")
    diff = slopes(frame)
    assert verdict.verdict == HOLDS and verdict.n == 6
    assert verdict.value == pytest.approx(np.median(diff))
    assert verdict.p_value == pytest.approx(stats.wilcoxon(diff, alternative="greater").pvalue)


def test_slowing_does_not_hold_for_accelerating_curves():
    frame = make_frame(lambda i, m, s, p, k, rng: (1 + 0.1 * i) * (p / 200) ** 2 + rng.normal(0, 0.003))
    verdict = row(verdicts(frame), "2")
    assert verdict.verdict == FAILS and verdict.p_value > 0.5
    assert "not identifiable" in verdict.note  # the fit cannot rescue it


def test_slowing_needs_images_or_an_identifiable_fit():
    # 4 images (smallest one-sided p 1/16) and 3 checkpoints (a fit with no degrees of freedom)
    frame = make_frame(lambda i, m, s, p, k, rng: 0.001 * p + 0.01 * i, images=4, percents=(0, 100, 200))
    verdict = row(verdicts(frame), "2")
    assert verdict.verdict == UNKNOWN and np.isnan(verdict.p_value)


# 3. Larger masks drift more at equal percent

def mask_diff(frame, small=16, large=32):
    at = frame[frame.percent == 200].groupby(["mask", "image_id"]).value.mean().unstack("mask")
    return (at[large] - at[small]).to_numpy()


def test_larger_masks_drift_more_holds():
    frame = make_frame(lambda i, m, s, p, k, rng: p / 400 * m / 16 + rng.normal(0, 0.01), masks=(16, 32))
    verdict = row(verdicts(frame), "3")
    assert verdict.verdict == HOLDS and verdict.compared == "mask 32 vs 16" and verdict.n == 6
    assert verdict.p_value == pytest.approx(stats.wilcoxon(mask_diff(frame), alternative="greater").pvalue)


def test_larger_masks_drift_more_does_not_hold_when_they_drift_less():
    frame = make_frame(lambda i, m, s, p, k, rng: p / 400 * 16 / m + rng.normal(0, 0.01), masks=(16, 32, 64))
    table = verdicts(frame)
    assert row(table, "3", compared="mask 32 vs 16").verdict == FAILS
    assert row(table, "3", compared="mask 64 vs 32").verdict == FAILS  # each adjacent pair


def test_larger_masks_need_two_masks_and_five_images():
    assert row(verdicts(make_frame(lambda *a: a[3] / 400)), "3").verdict == UNKNOWN
    few = make_frame(lambda i, m, s, p, k, rng: p / 400 * m / 16, masks=(16, 32), images=4)
    assert row(verdicts(few), "3").verdict == UNKNOWN


# 4. The networks agree

def finals(frame, metric):
    return frame[(frame.metric == metric) & (frame.percent == 200)].groupby("image_id").value.mean()


def test_networks_agree_when_their_rankings_match():
    nets = ("lpips_alex", "lpips_vgg")
    frame = make_frame(lambda i, m, s, p, k, rng: p / 200 * (0.2 + 0.02 * i) * (0.8 if k == "lpips_alex" else 1)
                       + rng.normal(0, 0.002), images=30, metrics=nets)
    verdict = row(verdicts(frame), "4")
    rho = stats.spearmanr(finals(frame, "lpips_alex"), finals(frame, "lpips_vgg")).statistic
    assert verdict.verdict == HOLDS and verdict.compared == "lpips_alex vs lpips_vgg" and verdict.n == 30
    assert verdict.value == pytest.approx(rho) and verdict.low > AGREEMENT_RHO


def test_networks_do_not_agree_when_their_rankings_are_unrelated():
    frame = make_frame(lambda i, m, s, p, k, rng: p / 200 * rng.uniform(0.2, 0.8), images=40,
                       metrics=("lpips_alex", "lpips_vgg", "stlpips_alex"))
    table = verdicts(frame)
    assert len(table[table.finding == "4"]) == 3  # every pair of networks
    verdict = row(table, "4", compared="lpips_alex vs lpips_vgg")
    rho = stats.spearmanr(finals(frame, "lpips_alex"), finals(frame, "lpips_vgg")).statistic
    assert verdict.value == pytest.approx(rho) and verdict.high < AGREEMENT_RHO and verdict.verdict == FAILS


def test_networks_need_two_networks_and_images():
    one_net = make_frame(lambda *a: a[3] / 400, metrics=("lpips_vgg", "ssim"))  # SSIM is not a network
    assert "needs two LPIPS-family networks" in row(verdicts(one_net), "4").note
    few = make_frame(lambda i, m, s, p, k, rng: p / 200 * (i + 1), images=3, metrics=("lpips_alex", "lpips_vgg"))
    assert row(verdicts(few), "4").verdict == UNKNOWN


# 5. The spread across images is large

def test_spread_is_large_for_images_that_drift_differently():
    frame = make_frame(lambda i, m, s, p, k, rng: p / 200 * (0.1 + 0.8 * i / 29), images=30)
    verdict = row(verdicts(frame), "5")
    values = finals(frame, "lpips_vgg")
    assert verdict.value == pytest.approx(values.std(ddof=1) / values.mean())
    assert verdict.low > LARGE_CV and verdict.low < verdict.value < verdict.high and verdict.verdict == HOLDS


def test_spread_is_not_large_for_images_that_drift_alike():
    frame = make_frame(lambda i, m, s, p, k, rng: p / 200 * 0.5 + rng.normal(0, 0.01), images=30)
    verdict = row(verdicts(frame), "5")
    assert verdict.high < LARGE_CV and verdict.verdict == FAILS


def test_spread_needs_three_images_and_a_decisive_interval():
    assert row(verdicts(make_frame(lambda *a: a[3] / 200 * (a[0] + 1), images=2)), "5").verdict == UNKNOWN
    # 4 images around CV 0.2: the interval straddles the threshold
    frame = make_frame(lambda i, m, s, p, k, rng: p / 200 * [0.4, 0.5, 0.6, 0.7][i], images=4)
    verdict = row(verdicts(frame), "5")
    assert verdict.low < LARGE_CV < verdict.high and verdict.verdict == UNKNOWN


# 6. Variability

def test_run_to_run_spread_is_smaller_than_image_to_image():
    frame = make_frame(lambda i, m, s, p, k, rng: p / 200 * (0.2 + 0.1 * i) + rng.normal(0, 0.005), images=5,
                       seeds=(0, 1, 2))
    verdict = row(verdicts(frame), "6a")
    at = frame[frame.percent == 200]
    groups = [rows.value.to_numpy() for _, rows in at.groupby("image_id")]
    within = np.sqrt(np.mean([g.var(ddof=1) for g in groups]))
    between = np.std([g.mean() for g in groups], ddof=1)
    assert verdict.value == pytest.approx(within / between) and verdict.value < 1
    assert verdict.p_value == pytest.approx(stats.f_oneway(*groups).pvalue) and verdict.verdict == HOLDS


def test_run_to_run_spread_is_not_smaller_when_images_behave_alike():
    frame = make_frame(lambda i, m, s, p, k, rng: p / 200 * 0.4 + rng.normal(0, 0.05), images=5, seeds=(0, 1, 2))
    verdict = row(verdicts(frame), "6a")
    assert verdict.verdict == FAILS and verdict.p_value >= 0.05


def test_variability_needs_repeated_runs():
    frame = make_frame(lambda *a: a[3] / 200)
    assert row(verdicts(frame), "6a").verdict == UNKNOWN and row(verdicts(frame), "6b").verdict == UNKNOWN


def run_sd(frame):
    rows = frame[frame.percent > 0]
    return rows.groupby(["image_id", "percent"]).value.std().unstack("percent")


def test_run_to_run_spread_shrinks_holds():
    scale = {50: 0.08, 100: 0.04, 150: 0.02, 200: 0.01}
    frame = make_frame(lambda i, m, s, p, k, rng: p / 400 + (rng.normal(0, scale[p]) if p else 0), images=6,
                       seeds=(0, 1, 2, 3))
    verdict = row(verdicts(frame), "6b")
    expected = stats.page_trend_test(run_sd(frame).to_numpy(), predicted_ranks=[4, 3, 2, 1])
    assert verdict.p_value == pytest.approx(expected.pvalue) and verdict.verdict == HOLDS


def test_run_to_run_spread_shrinks_does_not_hold_when_it_grows():
    scale = {50: 0.01, 100: 0.02, 150: 0.04, 200: 0.08}
    frame = make_frame(lambda i, m, s, p, k, rng: p / 400 + (rng.normal(0, scale[p]) if p else 0), images=6,
                       seeds=(0, 1, 2, 3))
    verdict = row(verdicts(frame), "6b")
    assert verdict.verdict == FAILS and verdict.p_value > 0.5


# The table as a whole

def test_every_finding_has_a_row_per_condition_and_ssim_counts_as_one_minus_ssim():
    frame = pd.concat([make_frame(lambda *a: a[3] / 400, metrics=("ssim",), model=model) for model in ("telea", "ns")])
    table = verdicts(frame)
    assert set(table.context) == {"model=ns", "model=telea"}
    for context, rows in table.groupby("context"):
        assert set(rows.finding) == set(CLAIMS)
    assert set(table.metric) - {""} == {"1-ssim"}
    counts = tally(table)
    assert list(counts.finding) == list(CLAIMS)
    assert (counts[[HOLDS, FAILS, UNKNOWN]].sum(axis=1) == table.groupby("finding", sort=False).size().to_numpy()).all()


def test_without_a_distance_every_finding_lacks_data():
    table = verdicts(make_frame(lambda *a: 30.0, metrics=("psnr",)))
    assert list(table.finding) == list(CLAIMS) and set(table.verdict) == {UNKNOWN}
