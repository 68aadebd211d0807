"""Analysis functions over synthetic frames: figures, tables and statistics, no server."""

import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis import statistics
from analysis.frames import default_metric, distances, groups, label_columns, metric_key
from analysis.image_properties import colour_entropy, edge_density
from analysis.labels import label_breakdown, label_tests
from analysis.links import experiment_url, run_url
from analysis.load import Filter, parse_filters
from analysis.report import write_report
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
    assert fit["levels_off"] is False and fit["fit"] == "ok" and fit["n"] == 9 and fit["identifiable"] is True
    plateau = statistics.fit_saturation(p, statistics.saturation_curve(p, 0.5, 60.0, 0.0)
                                        + np.random.default_rng(0).normal(0, 0.005, len(p)))
    assert plateau["b_low"] <= 0 <= plateau["b_high"] and plateau["levels_off"] is True
    assert abs(plateau["linear_share"]) < 0.1


def test_saturation_fit_with_three_points_is_not_identifiable():
    fit = statistics.fit_saturation([0, 50, 100], [0.0, 0.2, 0.3])
    assert fit["fit"] == "not identifiable: 3 checkpoints for 3 parameters (at least 5)"
    four = statistics.fit_saturation([0, 50, 100, 150], [0.0, 0.2, 0.3, 0.34])  # one residual: errors unreliable
    assert four["identifiable"] is False and four["levels_off"] is None
    assert fit["identifiable"] is False and np.isnan(fit["b_se"]) and fit["levels_off"] is None
    assert statistics.fit_saturation([0, 50], [0.0, 0.2])["fit"] == "no fit: fewer than 3 checkpoints"


def test_saturation_fit_with_tau_at_its_bound_never_levels_off():
    p = np.arange(0, 401, 50)
    line = 0.001 * p + np.random.default_rng(0).normal(0, 0.002, len(p))  # no plateau at all
    fit = statistics.fit_saturation(p, line)
    assert fit["tau"] == pytest.approx(400) and fit["tau_at_bound"] is True
    assert fit["identifiable"] is False and fit["levels_off"] is None
    assert fit["fit"] == "not identifiable: tau at its upper bound (no plateau within the data)"
    step = statistics.fit_saturation(p, np.where(p > 0, 0.4, 0.0))  # the rise ends before the first checkpoint
    assert step["identifiable"] is False and step["levels_off"] is None
    assert step["fit"] == "not identifiable: the rise ends before the first checkpoint"  # any small tau fits


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


def test_metric_names_are_accepted_either_way():
    assert metric_key("lpips-vgg") == metric_key("lpips_vgg") == "lpips_vgg"
    keep = Filter.parse("metric=lpips-vgg|ssim")
    assert keep.on_metric and keep.keeps_metric("lpips_vgg") and keep.keeps_metric("ssim")
    assert not keep.keeps_metric("lpips_alex")
    assert not Filter.parse("metric!=lpips_vgg").keeps_metric("lpips_vgg")
    measured = Filter.parse("metrics=lpips_vgg,ssim|psnr")  # runs that measured both, or psnr
    assert measured.matches({"metrics": "lpips-alex,lpips-vgg,ssim"}, {})
    assert measured.matches({"metrics": "psnr"}, {}) and not measured.matches({"metrics": "lpips-vgg"}, {})


def test_tag_names_agree_with_the_recorder():
    from analysis import load
    from rip.tracking import recorder as tracking

    assert (load.KIND_TAG, load.CONFIG_TAG, load.IMAGE_TAG) == (tracking.KIND_TAG, tracking.CONFIG_TAG, tracking.IMAGE_TAG)


def labelled_frame():
    styles = {"a": "Baroque", "b": "Baroque", "c": "Cubism", "d": "Cubism"}
    genres = {"a": "portrait", "b": "landscape", "c": "portrait", "d": ""}  # d has no genre
    frame = synthetic_frame()
    return frame.assign(label_style=frame.image_id.map(styles), label_genre=frame.image_id.map(genres),
                        label_artist="one artist")


def test_label_breakdown_gives_final_distances_per_group_with_n():
    frame = labelled_frame()
    assert label_columns(frame, min_groups=2) == ["label_genre", "label_style"]  # one artist: no breakdown
    table = label_breakdown(frame, "lpips_vgg")
    assert set(table.label) == {"label_genre", "label_style"} and set(table["mask"]) == {16, 32}
    finals = frame.query("metric == 'lpips_vgg' and percent == 200").groupby(["mask", "image_id"]).value.mean()
    for row in table.itertuples():
        images = [i for i, v in frame.drop_duplicates("image_id").set_index("image_id")[row.label].items()
                  if v == row.group]
        values = finals.loc[row.mask].loc[images]
        assert (row.n, row.n_runs) == (len(images), 2 * len(images))
        assert (row.mean, row.median) == pytest.approx((values.mean(), values.median()))
        assert row.std == pytest.approx(values.std(ddof=1)) if len(values) > 1 else np.isnan(row.std)
    assert "" not in set(table.group)
    tests = label_tests(table, frame)
    style = tests.query("label == 'label_style' and mask == 16").iloc[0]
    baroque, cubism = finals.loc[16].loc[["a", "b"]], finals.loc[16].loc[["c", "d"]]
    assert style.p_value == pytest.approx(stats.kruskal(baroque, cubism).pvalue) and style.n == 4
    assert label_breakdown(synthetic_frame()).empty


def test_run_links_open_the_runs_view_of_an_http_server_only():
    assert experiment_url("http://host:5000/", "7") == "http://host:5000/#/experiments/7/runs?workflowType=machine_learning"
    assert run_url("https://host", "7", "abc") == "https://host/#/experiments/7/runs/abc?workflowType=machine_learning"
    assert experiment_url("sqlite:///mlflow.db", "7") is None and run_url(None, "7", "abc") is None


class _Refs(HTMLParser):
    """Every src and href of a page."""

    def __init__(self):
        super().__init__()
        self.src, self.href = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.src += [attrs["src"]] if "src" in attrs else []
        self.href += [attrs["href"]] if "href" in attrs else []


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    frame = labelled_frame().assign(experiment_id="3", parent_name=lambda f: "telea-" + f.parent_run_id)
    write_report(frame, folder, tracking_uri="http://127.0.0.1:5999", dpi=40)
    return folder


def test_markdown_report_links_only_files_that_exist(report):
    text = (report / "report.md").read_text()
    targets = re.findall(r"\]\(([^)]+)\)", text)
    local = [t for t in targets if not t.startswith("http")]
    assert {"figures/mean_std.png", "figures/mean_std.svg", "figures/mean_std.pdf", "figures/label_style.png",
            "verdicts.csv", "summary.csv"} <= set(local)
    assert all((report / t).is_file() for t in local)
    assert "http://127.0.0.1:5999/#/experiments/3/runs?workflowType=machine_learning" in targets
    assert "http://127.0.0.1:5999/#/experiments/3/runs/p-16-0?workflowType=machine_learning" in targets
    assert "## The study's findings" in text and "not identifiable" in text
    assert "<NA>" not in text and "nan" not in text.lower().split()


def test_html_report_is_self_contained(report):
    page = (report / "report.html").read_text()
    refs = _Refs()
    refs.feed(page)
    figures_written = sorted(report.glob("figures/*.png"))
    assert len(refs.src) == len(figures_written) >= 4
    assert all(src.startswith("data:image/png;base64,") for src in refs.src)
    assert all(href.startswith("http://127.0.0.1:5999/#/experiments/3/runs") for href in refs.href)
    verdicts = pd.read_csv(report / "verdicts.csv")
    assert page.count('<td class="verdict">') == len(verdicts) and "<h2>By image label</h2>" in page
