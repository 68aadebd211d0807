"""Each verdict on simulated studies where its observation is true or false by construction, and its
statistics against scipy called directly on values computed here from the frame."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis import effects
from analysis.cubes import completeness
from analysis.rules import Rules
from analysis.simulation import Study, simulate
from analysis.verdicts import CLAIMS, FAILS, HOLDS, POOLED, UNKNOWN, changed, tally, verdicts

NETS = ("lpips_alex", "lpips_vgg")
REPLICATION = Study(experiment="rep", images=40, masks=(64, 128), metrics=NETS)
VARIABILITY = Study(experiment="var", images=8, runs=8, masks=(64, 128), metrics=NETS)
RUN_SD_TWICE_IMAGE_SD = dict(image_sd=0.1, network_sd=0.0, run_sd=0.2, run_persistence=1.0, run_decay=0.0,
                             run_mask_step=0.0, noise_decay=0.0)
VGG_LIKE_OTHERS = dict(noise_sd=0.15, other_noise_sd=0.15, other_tails=np.inf)
# finding: (experiment it is measured on, Study changes making it true, changes making it false)
CASES = {
    "1": ("rep", {}, dict(curve="flat")),  # a jump at 50 %, then flat
    "2a": ("rep", {}, dict(curve="linear")),
    "2b": ("rep", {}, dict(curve="plateau")),
    "3": ("rep", dict(mask_step=0.5), dict(mask_step=0.0)),
    "4a": ("rep", dict(network_sd=0.03), dict(network_sd=0.4)),
    "4b": ("rep", {}, dict(growth_ratio=1.6)),
    "5": ("rep", dict(image_sd=0.5), dict(image_sd=0.05, network_sd=0.02)),
    "6a": ("var", {}, RUN_SD_TWICE_IMAGE_SD),
    "6b": ("var", dict(run_decay=1.5, noise_decay=1.5), dict(run_decay=0.0, noise_decay=0.0)),
    "6c": ("var", dict(run_mask_step=1.0), dict(run_mask_step=0.0)),
    "7a": ("rep", dict(noise_decay=0.0, other_noise_sd=0.4), VGG_LIKE_OTHERS),
    "7b": ("var", dict(other_noise_sd=0.3), VGG_LIKE_OTHERS),
    "8a": ("rep", {}, dict(growing=0.3)),
    "8b": ("rep", {}, dict(mask_share=0.3)),
}


def study(seed=0, rules=Rules(), **changes) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A simulated replication and variability study analysed together: (frame, verdicts)."""
    rng = np.random.default_rng(seed)
    frame = pd.concat([simulate(replace(REPLICATION, **changes), rng), simulate(replace(VARIABILITY, **changes), rng)],
                      ignore_index=True)
    return frame, verdicts(frame, rules)


def rows(table, finding, experiment="rep", pooled=None):
    found = table[(table["finding"] == finding) & (table["context"] + ",").str.contains(f"experiment={experiment},")]
    if pooled is not None:
        found = found[((found["mask"] == POOLED) | (found["metric"] == POOLED)) == pooled]
    assert len(found), (finding, experiment, pooled)
    return found


@pytest.mark.parametrize("finding", CASES)
def test_a_true_observation_holds_and_a_false_one_does_not(finding):
    experiment, true, false = CASES[finding]
    assert (rows(study(**true)[1], finding, experiment, pooled=True)["verdict"] == HOLDS).all()
    assert not (rows(study(**false)[1], finding, experiment)["verdict"] == HOLDS).any()


def test_growth_ignores_0_percent_a_jump_then_flat_does_not_hold():
    frame, table = study(curve="flat")
    growth = rows(table, "1")
    assert (growth["verdict"] == FAILS).all() and set(growth["checkpoints"]) == {"50–400 %"}
    pooled = rows(table, "1", pooled=True).iloc[0]
    assert pooled["contradicted"] and pooled["high"] < 0.05 < 1 < rows(study()[1], "1", pooled=True).iloc[0]["low"]
    for finding in ("2a", "2b", "8a"):  # slowing, still growing, most images growing: none from a jump
        assert not (rows(table, finding)["verdict"] == HOLDS).any(), finding
    # what 0 % holds changes nothing
    moved = frame.assign(value=np.where(frame["percent"] == 0, 5.0, frame["value"]))
    pd.testing.assert_frame_equal(verdicts(moved), table)


def test_run_sd_twice_the_image_sd_does_not_hold():
    table = study(**RUN_SD_TWICE_IMAGE_SD)[1]
    spread = rows(table, "6a", "var")
    assert (spread["verdict"] == FAILS).all() and (spread["value"] > 1).all()
    assert (rows(study()[1], "6a", "var")["verdict"] == HOLDS).all()  # run SD well below image SD: holds


def test_growth_statistics_match_scipy():
    frame, table = study()
    row = rows(table, "1", pooled=False).query("mask == '64' and metric == 'lpips_vgg'").iloc[0]
    d = frame.query("experiment == 'rep' and mask == 64 and metric == 'lpips_vgg' and percent >= 50")
    curves = d.pivot_table(index="image_id", columns="percent", values="value")
    slope = np.polyfit(curves.columns.to_numpy(dtype=float), curves.to_numpy().T, 1)[0]
    growth, level = slope * 350, curves[50].to_numpy()
    assert row["value"] == pytest.approx(growth.mean() / level.mean())
    p = max(stats.ttest_1samp(growth - 0.05 * level, 0, alternative="greater").pvalue,
            stats.ttest_1samp(level, 0, alternative="greater").pvalue)
    assert row["p_value"] == pytest.approx(p, rel=1e-6) and row["n"] == 40
    assert row["low"] < row["value"] < row["high"]


def test_masks_are_compared_at_every_checkpoint_and_decided_at_the_weakest():
    frame, table = study(mask_step=0.5)
    row = rows(table, "3", pooled=False).query("metric == 'lpips_vgg'").iloc[0]
    d = frame.query("experiment == 'rep' and metric == 'lpips_vgg' and percent >= 50")
    at = d.pivot_table(index="image_id", columns=["mask", "percent"], values="value")
    logs = {q: np.log(at[128][q] / at[64][q]) for q in range(50, 401, 50)}  # each image's own ratio
    p = [stats.ttest_1samp(log, np.log(1.05), alternative="greater").pvalue for log in logs.values()]
    assert row["p_value"] == pytest.approx(max(p), rel=1e-6)
    weakest = 50 * (1 + int(np.argmax(p)))
    assert row["statistic"] == f"ratio at {weakest} % (the weakest checkpoint)"
    assert row["value"] == pytest.approx(np.exp(logs[weakest].mean()))  # geometric mean over images
    assert row["note"] == "above 1.05 at 8 of 8 checkpoints" and row["compared"] == "mask 128 vs 64"


def test_rank_agreement_is_spearman_of_relative_levels():
    frame, table = study()
    row = rows(table, "4a", pooled=False).query("mask == '128'").iloc[0]
    d = frame.query("experiment == 'rep' and mask == 128 and percent >= 50")
    levels = {}
    for net in NETS:
        curves = d[d["metric"] == net].pivot_table(index="image_id", columns="percent", values="value")
        levels[net] = (curves / curves.mean()).mean(axis=1)
    assert row["value"] == pytest.approx(stats.spearmanr(levels["lpips_alex"], levels["lpips_vgg"]).statistic)
    assert row["threshold"] == "> 0.7" and row["compared"] == "lpips_alex vs lpips_vgg"


def test_run_to_image_sd_is_a_random_effects_anova():
    frame, table = study()
    row = rows(table, "6a", "var", pooled=False).query("mask == '64' and metric == 'lpips_vgg'").iloc[0]
    d = frame.query("experiment == 'var' and mask == 64 and metric == 'lpips_vgg' and percent >= 50")
    d = d.assign(relative=d["value"] / d.groupby("percent")["value"].transform("mean"))
    runs = d.groupby(["image_id", "seed"])["relative"].mean().unstack()  # images × runs
    k, r = runs.shape
    msb = r * runs.mean(axis=1).var(ddof=1)
    msw = runs.var(axis=1, ddof=1).mean()
    assert row["value"] == pytest.approx(np.sqrt(msw / ((msb - msw) / r)))
    assert row["p_value"] == pytest.approx(stats.f.sf(msb / msw / (1 + r), k - 1, k * (r - 1)))


def test_shares_of_images_count_those_growing_beyond_their_own_noise():
    frame, table = study(growing=0.7)
    row = rows(table, "8a", pooled=False).query("mask == '64' and metric == 'lpips_alex'").iloc[0]
    d = frame.query("experiment == 'rep' and mask == 64 and metric == 'lpips_alex' and percent >= 50")
    curves = d.pivot_table(index="image_id", columns="percent", values="value")
    x = curves.columns.to_numpy(dtype=float)
    fits = [stats.linregress(x, y) for y in curves.to_numpy()]
    low = np.array([fit.slope - stats.t.ppf(0.975, len(x) - 2) * fit.stderr for fit in fits])  # each image's own bound
    grows = int(np.sum(low * 350 / curves[50].mean() > 0.05))
    assert 0 < grows < 40 and row["value"] == grows / 40
    assert row["p_value"] == pytest.approx(stats.binomtest(grows, 40, 0.5, alternative="greater").pvalue)


def test_p_values_are_adjusted_over_the_table_pooled_rows_first_and_decide():
    table = study(growing=0.6)[1]
    tested = table[table["p_value"].notna()]
    assert (tested["p_adjusted"] >= tested["p_value"] - 1e-12).all()
    # a per-scope row is rejected only after its pooled row: its adjusted p is never below that row's
    pooled = tested[(tested["mask"] == POOLED) | (tested["metric"] == POOLED)].set_index(["finding", "context", "compared"])
    scoped = tested[(tested["mask"] != POOLED) & (tested["metric"] != POOLED) & (tested["mask"] != "")]
    checked = 0
    for row in scoped.itertuples():
        above = pooled.loc[[(row.finding, row.context, row.compared)]] if (row.finding, row.context, row.compared) in pooled.index else None
        if above is not None:
            above = above[above["mask"].isin([row.mask, POOLED]) & above["metric"].isin([row.metric, POOLED])]
            assert row.p_adjusted >= above["p_adjusted"].iloc[0] - 1e-12
            checked += 1
    assert checked > 20
    held = table[table["verdict"] == HOLDS]
    assert (held["p_adjusted"] < 0.05).all() and len(held)
    # rows significant before adjustment but not after do not hold
    assert not (table[(table["p_value"] < 0.05) & (table["p_adjusted"] >= 0.05)]["verdict"] == HOLDS).any()


def test_the_minimum_effect_is_a_rule():
    plateau = rows(study(curve="plateau")[1], "1", pooled=True).iloc[0]  # grows by about a fifth after 50 %...
    assert plateau["verdict"] == HOLDS and 0.1 < plateau["value"] < 0.4
    assert rows(study(rules=Rules(min_effect=0.5), curve="plateau")[1], "1", pooled=True).iloc[0]["verdict"] == FAILS
    with pytest.raises(ValueError, match="min_effect"):
        Rules(min_effect=1.0)


def test_incomplete_images_are_counted_left_out_and_tried_in_a_sensitivity_line():
    frame, table = study(failed=3)
    failed = frame[frame["status"] == "FAILED"]
    hit = failed.groupby("experiment")["image_id"].nunique()
    for experiment, count in hit.items():
        part = table[table["context"].str.contains(f"experiment={experiment},")]
        images = frame.loc[frame["experiment"] == experiment, "image_id"].nunique()
        assert set(part["incomplete"]) == {count}
        assert part.loc[part["n"] > 0, "n"].max() <= images - count
    assert set(table["verdict_with_incomplete"]) <= {HOLDS, FAILS, UNKNOWN}
    counts = completeness(frame)
    assert counts["failed"].sum() == failed["run_id"].nunique()
    assert (counts["complete"] + counts["failed"] + counts["missing"] == counts["images"]).all()
    # an image without a run under one mask is missing there, and incomplete
    frame = study()[0]
    gone = frame[~((frame["experiment"] == "rep") & (frame["image_id"] == "image-000") & (frame["mask"] == 128))]
    counts = completeness(gone)
    assert counts.loc[counts["mask"] == 128, "missing"].tolist()[0] == 1
    assert set(verdicts(gone).query("context.str.contains('experiment=rep,')")["incomplete"]) == {1}


def test_with_every_image_complete_the_sensitivity_changes_nothing():
    table = study()[1]
    assert set(table["incomplete"]) == {0} and changed(table).empty


def test_every_observation_has_a_row_per_condition_and_ssim_counts_as_one_minus_ssim():
    rng = np.random.default_rng(0)
    frame = pd.concat([simulate(replace(REPLICATION, experiment=name, metrics=("ssim",), images=8), rng)
                       for name in ("a", "b")]).assign(value=lambda f: 1 - f["value"])
    table = verdicts(frame)
    assert set(table["context"]) == {"experiment=a", "experiment=b"}
    for _, part in table.groupby("context"):
        assert set(part["finding"]) == set(CLAIMS)
    assert set(table["metric"]) - {"", POOLED} == {"1-ssim"}
    assert (rows(table, "1", "a", pooled=False)["verdict"] == HOLDS).all()
    assert set(rows(table, "4a", "a")["verdict"]) == {UNKNOWN}  # SSIM is not a network
    counts = tally(table)
    assert list(counts["finding"]) == list(CLAIMS)
    assert counts[[HOLDS, FAILS, UNKNOWN]].to_numpy().sum() == len(table)


def test_without_a_distance_every_observation_lacks_data():
    frame = simulate(replace(REPLICATION, metrics=("psnr",), images=5), np.random.default_rng(0))
    table = verdicts(frame)
    assert list(table["finding"]) == list(CLAIMS) and set(table["verdict"]) == {UNKNOWN}


def test_fieller_interval_is_where_the_t_test_of_a_minus_r_b_does_not_reject():
    rng = np.random.default_rng(1)
    b = rng.normal(1, 0.2, 30)
    a = 1.3 * b + rng.normal(0, 0.1, 30)
    effect = effects.ratio_of_means(a, b, 1.0, "greater")
    for bound in (effect.low, effect.high):
        t = stats.ttest_1samp(a - bound * b, 0)
        assert t.pvalue == pytest.approx(0.05, abs=1e-6)
    assert effect.value == pytest.approx(a.mean() / b.mean()) and effect.n == 30
    assert effects.ratio_of_means(a, b, 1.0, "greater").p_value == pytest.approx(
        stats.ttest_1samp(a - b, 0, alternative="greater").pvalue)
    unclear = effects.ratio_of_means(a, rng.normal(0, 1, 30), 1.0, "greater")  # mean(b) near 0: unbounded
    assert (unclear.low, unclear.high) == (-np.inf, np.inf)


def test_fieller_interval_of_proportional_values_is_their_ratio():
    """a = 0.6·b exactly: the interval is the point 0.6 (rounding once made it unbounded)."""
    b = np.random.default_rng(2).lognormal(np.log(0.03), 0.4, (200, 10))
    for row in b:
        effect = effects.ratio_of_means(0.6 * row, row, 0.95, "less")
        assert effect.low == pytest.approx(0.6) and effect.high == pytest.approx(0.6) and effect.p_value < 0.01
