"""Analysis functions over synthetic frames: figures, tables and statistics, no server."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis import figures, statistics
from analysis.frames import default_metric, distances, groups
from analysis.image_properties import colour_entropy, edge_density
from analysis.load import Filter, parse_filters
from analysis.summary import summary_table, to_markdown

PERCENTS = [0, 50, 100, 150, 200]


def synthetic_frame(seeds=(0, 1), masks=(16, 32), images=("a", "b", "c", "d"), metrics=("lpips_vgg", "ssim")):
    """A tidy frame like load_results returns, with known random values."""
    rng = np.random.default_rng(0)
    rows = []
    for mask in masks:
        for seed in seeds:
            parent = f"p-{mask}-{seed}"
            for image in images:
                run = f"r-{mask}-{seed}-{image}"
                for metric in metrics:
                    for percent in PERCENTS:
                        noise = 0.0 if percent == 0 else rng.uniform(0, 0.1)
                        value = 0.3 * (1 - np.exp(-percent / 60)) * mask / 16 + noise
                        rows.append(dict(experiment="e", parent_run_id=parent, run_id=run, image_id=image,
                                         model="telea", mask=mask, seed=seed, metric=metric, percent=percent,
                                         iteration=percent, value=1 - value if metric == "ssim" else value,
                                         status="FINISHED", size=64, paste_back=False, images="folder"))
    return pd.DataFrame(rows)


def test_mean_std_figure_plots_mean_and_sample_std_per_mask():
    frame = synthetic_frame()
    figure = figures.mean_std_figure(frame)
    axes = figure.axes
    assert [ax.get_title() for ax in axes] == ["lpips_vgg", "ssim"]
    for ax, metric in zip(axes, ["lpips_vgg", "ssim"]):
        assert len(ax.containers) == 2
        for container, mask in zip(ax.containers, [16, 32]):
            line, _, (bars,) = container.lines
            assert container.get_label() == f"mask {mask}"
            rows = frame[(frame.metric == metric) & (frame["mask"] == mask)]
            values = np.array([rows[rows.percent == p].value.to_numpy() for p in PERCENTS])  # (percent, run)
            np.testing.assert_array_equal(line.get_xdata(), PERCENTS)
            np.testing.assert_allclose(line.get_ydata(), values.mean(axis=1))
            spans = np.array([segment[1, 1] - segment[0, 1] for segment in bars.get_segments()])
            np.testing.assert_allclose(spans / 2, values.std(axis=1, ddof=1), atol=1e-12)


def test_scatter_figure_holds_every_value_once():
    frame = synthetic_frame()
    figure = figures.scatter_figure(frame)
    assert len(figure.axes) == 4  # 2 metrics x 2 masks
    for ax in figure.axes:
        metric, mask = ax.get_title().split(", mask ")
        rows = frame[(frame.metric == metric) & (frame["mask"] == int(mask))]
        (points,) = ax.collections
        got = sorted(map(tuple, points.get_offsets().data))
        assert got == sorted(zip(rows.percent.astype(float), rows.value))


def test_variability_figure_draws_one_line_per_seed():
    frame = synthetic_frame(seeds=(0, 1, 2))
    figure = figures.variability_figure(frame, "lpips_vgg", max_images=2)
    assert len(figure.axes) == 4  # images a, b x masks 16, 32
    for ax in figure.axes:
        image, mask = ax.get_title().split(", mask ")
        assert image in ("a", "b")
        assert [line.get_label() for line in ax.lines] == ["seed 0", "seed 1", "seed 2"]
        for seed, line in enumerate(ax.lines):
            rows = frame[(frame.image_id == image) & (frame["mask"] == int(mask)) & (frame.seed == seed)
                         & (frame.metric == "lpips_vgg")].sort_values("percent")
            np.testing.assert_array_equal(line.get_ydata(), rows.value)


def test_variability_figure_needs_several_seeds():
    with pytest.raises(ValueError, match="more than one seed"):
        figures.variability_figure(synthetic_frame(seeds=(0,)))


def test_filmstrip_shows_original_then_each_checkpoint():
    rng = np.random.default_rng(1)
    original = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    generations = {p: rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for p in (100, 0, 50)}
    figure = figures.filmstrip_figure(original, generations, "title", {0: 0.0, 50: 0.25, 100: 0.5}, "lpips_vgg")
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == ["original", "0%\nlpips_vgg 0", "50%\nlpips_vgg 0.25", "100%\nlpips_vgg 0.5"]
    shown = [ax.images[0].get_array() for ax in figure.axes]
    for array, expected in zip(shown, [original, generations[0], generations[50], generations[100]]):
        np.testing.assert_array_equal(array, expected)


def test_summary_table_matches_numpy():
    frame = synthetic_frame()
    table = summary_table(frame)
    assert list(table.columns) == ["mask", "metric", "percent", "mean", "std", "min", "max", "n"]
    assert len(table) == 2 * 2 * len(PERCENTS)
    row = table[(table["mask"] == 32) & (table.metric == "lpips_vgg") & (table.percent == 150)].iloc[0]
    values = frame[(frame["mask"] == 32) & (frame.metric == "lpips_vgg") & (frame.percent == 150)].value.to_numpy()
    assert (row["mean"], row["std"], row["min"], row["max"], row["n"]) == pytest.approx(
        (values.mean(), values.std(ddof=1), values.min(), values.max(), 8))
    markdown = to_markdown(table).splitlines()
    assert markdown[0] == "| mask | metric | percent | mean | std | min | max | n |"
    assert len(markdown) == 2 + len(table)


def test_conditions_that_vary_get_their_own_group():
    frame = pd.concat([synthetic_frame(), synthetic_frame().assign(model="ns", run_id=lambda f: f.run_id + "ns")])
    assert [label for label, _ in groups(frame)] == ["model-ns", "model-telea"]
    assert "model" in summary_table(frame).columns
    assert [label for label, _ in groups(synthetic_frame())] == [""]


def test_distances_and_default_metric():
    frame = synthetic_frame(metrics=("psnr", "ssim", "stlpips_alex"))
    d = distances(frame)
    assert set(d.metric) == {"ssim", "stlpips_alex"}  # psnr has no distance form
    ssim = d[d.metric == "ssim"]
    np.testing.assert_allclose(ssim.distance, 1 - ssim.value)
    assert default_metric(frame) == "stlpips_alex"
    assert default_metric(synthetic_frame(metrics=("psnr", "ssim"))) == "ssim"
    assert default_metric(synthetic_frame(metrics=("lpips_alex", "lpips_vgg"))) == "lpips_vgg"


def test_saturation_fit_recovers_a_known_curve():
    p = np.arange(0, 401, 50)
    fit = statistics.fit_saturation(p, statistics.saturation_curve(p, 0.6, 80.0, 2e-4))
    assert (fit["a"], fit["tau"], fit["b"]) == pytest.approx((0.6, 80.0, 2e-4), rel=1e-6)
    assert fit["levels_off"] is False and fit["fit"] == "ok" and fit["n"] == 9
    plateau = statistics.fit_saturation(p, statistics.saturation_curve(p, 0.5, 60.0, 0.0)
                                        + np.random.default_rng(0).normal(0, 0.005, len(p)))
    assert plateau["b_low"] <= 0 <= plateau["b_high"] and plateau["levels_off"] is True
    assert abs(plateau["linear_share"]) < 0.1


def test_saturation_fit_with_three_points_has_no_errors():
    fit = statistics.fit_saturation([0, 50, 100], [0.0, 0.2, 0.3])
    assert fit["fit"] == "ok" and np.isnan(fit["b_se"]) and fit["levels_off"] is None
    assert statistics.fit_saturation([0, 50], [0.0, 0.2])["fit"] == "fewer than 3 checkpoints"


def test_saturation_fits_per_run_and_per_mean_curve():
    frame = synthetic_frame()
    runs = statistics.saturation_fits(frame)
    assert len(runs) == frame.run_id.nunique() * 2
    assert set(runs.distance_name) == {"lpips_vgg", "1-ssim"}
    means = statistics.saturation_fits(frame, on="means")
    assert len(means) == 2 * 2  # masks x metrics
    curve = (distances(frame).query("metric == 'lpips_vgg' and mask == 16").groupby("percent").distance.mean())
    expected = statistics.fit_saturation(curve.index, curve.to_numpy())
    got = means[(means["mask"] == 16) & (means.metric == "lpips_vgg")].iloc[0]
    assert got["a"] == pytest.approx(expected["a"]) and got["b"] == pytest.approx(expected["b"])


def test_stability_ranking_averages_seeds_at_the_last_checkpoint():
    frame = synthetic_frame()
    ranking = statistics.stability_ranking(frame, "lpips_vgg")
    assert len(ranking) == 2 * 4
    for mask in (16, 32):
        ranked = ranking[ranking["mask"] == mask]
        finals = frame.query("metric == 'lpips_vgg' and percent == 200 and mask == @mask").groupby("image_id").value.mean()
        np.testing.assert_allclose(ranked.set_index("image_id").final[finals.index], finals)
        assert list(ranked.image_id) == list(finals.sort_values().index)
        assert list(ranked["rank"]) == [1, 2, 3, 4]


def test_property_correlations_are_spearman():
    ranking = statistics.stability_ranking(synthetic_frame(), "lpips_vgg")
    ranking["edge_density"] = ranking["final"] * 2  # perfectly monotone
    ranking["colour_entropy"] = -ranking["final"]
    table = statistics.property_correlations(ranking)
    assert len(table) == 4
    assert set(table[table.property == "edge_density"].spearman_rho) == {1.0}
    assert set(table[table.property == "colour_entropy"].spearman_rho) == {-1.0}
    # 4 images: exact p of a perfect rank correlation is 2/4! = 1/12
    assert table.p_value.to_numpy() == pytest.approx(np.full(4, 1 / 12))


def test_paired_tests_match_scipy_over_the_same_images():
    frame = synthetic_frame()
    table = statistics.paired_tests(frame)
    assert set(table.factor) == {"mask"} and len(table) == 2  # 16 vs 32, per metric
    row = table[table.metric == "lpips_vgg"].iloc[0]
    at = frame.query("metric == 'lpips_vgg' and percent == 200")
    x = at[at["mask"] == 16].groupby("image_id").value.mean()
    y = at[at["mask"] == 32].groupby("image_id").value.mean()
    assert row["n"] == 4 and row["percent"] == 200
    assert row["wilcoxon_p"] == pytest.approx(stats.wilcoxon(y, x).pvalue)
    assert row["t_p"] == pytest.approx(stats.ttest_rel(y, x).pvalue)
    assert row["mean_diff"] == pytest.approx((y - x).mean())
    assert row["closer"] == "mask=16"  # the smaller mask keeps the smaller distance
    ssim = table[table.metric == "ssim"].iloc[0]
    assert ssim["closer"] == "mask=16"  # higher similarity is closer


def test_holm_adjustment():
    np.testing.assert_allclose(statistics.holm(np.array([0.01, 0.04, np.nan, 0.03])), [0.03, 0.06, np.nan, 0.06])


def test_image_properties():
    flat = np.full((32, 32, 3), 200, dtype=np.uint8)
    assert colour_entropy(flat) == 0 and edge_density(flat) == 0
    eight = np.zeros((8, 8, 3), dtype=np.uint8)
    for i in range(8):  # eight colours, equally frequent
        eight[i] = [(i & 1) * 255, (i >> 1 & 1) * 255, (i >> 2 & 1) * 255]
    assert colour_entropy(eight) == pytest.approx(3.0)
    squares = np.kron(np.indices((8, 8)).sum(0) % 2, np.ones((8, 8)))[..., None].repeat(3, 2) * 255
    assert edge_density(squares.astype(np.uint8)) > 0.1


def test_filters():
    f = Filter.parse("mask=64|128")
    assert (f.kind, f.key, f.values, f.negate) == ("param", "mask", ("64", "128"), False)
    assert f.matches({"mask": "128"}, {}) and not f.matches({"mask": "256"}, {})
    g = Filter.parse("tags.rip.backend!=telea")
    assert (g.kind, g.key, g.negate) == ("tag", "rip.backend", True)
    assert g.matches({}, {"rip.backend": "diffusers"}) and not g.matches({}, {"rip.backend": "telea"})
    assert [str(x) for x in parse_filters(["params.seed=0; model=telea", ""])] == ["seed=0", "model=telea"]
    with pytest.raises(ValueError, match="malformed filter"):
        Filter.parse("mask64")


def test_tag_names_agree_with_the_recorder():
    from analysis import load
    from rip import tracking

    assert (load.KIND_TAG, load.CONFIG_TAG, load.IMAGE_TAG) == (tracking.KIND_TAG, tracking.CONFIG_TAG, tracking.IMAGE_TAG)


def test_properties_figure_plots_final_distance_against_each_property():
    ranking = statistics.stability_ranking(synthetic_frame(), "lpips_vgg")
    ranking["edge_density"] = np.arange(len(ranking)) / 10
    ranking["colour_entropy"] = np.arange(len(ranking))[::-1] * 1.0
    figure = figures.properties_figure(ranking)
    for ax, prop in zip(figure.axes, ["edge_density", "colour_entropy"]):
        for points, mask in zip(ax.collections, [16, 32]):
            rows = ranking[ranking["mask"] == mask]
            assert points.get_label() == f"mask {mask}"
            np.testing.assert_array_equal(points.get_offsets().data, rows[[prop, "final"]].to_numpy())
