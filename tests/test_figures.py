"""Every figure drawn from a frame built here: labels, legends and plotted data against pandas and scipy."""

import numpy as np
import optuna
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgb
from matplotlib.container import BarContainer
from matplotlib.text import Text
from PIL import Image
from scipy import stats

from analysis import figures, statistics
from analysis.labels import label_breakdown
from analysis.style import X_LABEL, metric_label
from rip.tuning.summary import _plots, objective_label
from tests.test_analysis_unit import PERCENTS, synthetic_frame

STYLES = {"a": "Baroque", "b": "Baroque", "c": "Cubism", "d": "Cubism", "e": "Cubism", "f": "Baroque"}


@pytest.fixture(scope="module")
def frame():
    return synthetic_frame(images=tuple(STYLES), metrics=("lpips_vgg", "ssim"))


def legend_texts(legend) -> list[str]:
    return [text.get_text() for text in legend.get_texts()]


def test_metric_labels_are_for_readers():
    assert metric_label("lpips_vgg") == metric_label("lpips-vgg") == "LPIPS (VGG)"
    assert metric_label("lpips_squeeze") == "LPIPS (SqueezeNet)"
    assert metric_label("stlpips_alex") == "ST-LPIPS (AlexNet)"
    assert (metric_label("ssim"), metric_label("psnr"), metric_label("1-ssim")) == ("SSIM", "PSNR (dB)", "1 − SSIM")


def test_mean_std_figure_draws_mean_lines_and_sd_bands_per_mask(frame):
    figure = figures.mean_std_figure(frame)
    title = figure.get_suptitle()
    assert "model telea" in title and "images folder" in title and "size 64 px" in title
    assert "bands: ± SD over n = 12 image runs" in title  # 2 seeds x 6 images per mask
    assert [ax.get_title() for ax in figure.axes] == ["LPIPS (VGG)", "SSIM"]
    assert legend_texts(figure.axes[0].get_legend()) == ["16 px (n = 12)", "32 px (n = 12)"]
    expected = frame.groupby(["metric", "mask", "percent"])["value"].agg(["mean", "std"])
    for ax, metric in zip(figure.axes, ["lpips_vgg", "ssim"]):
        assert (ax.get_xlabel(), ax.get_ylabel()) == (X_LABEL, metric_label(metric))
        bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
        assert len(ax.lines) == len(bands) == 2
        for line, band, mask in zip(ax.lines, bands, [16, 32]):
            want = expected.loc[(metric, mask)]
            np.testing.assert_array_equal(line.get_xdata(), PERCENTS)
            np.testing.assert_allclose(line.get_ydata(), want["mean"], atol=1e-12)
            vertices = band.get_paths()[0].vertices
            for percent, mean, sd in zip(PERCENTS, want["mean"], want["std"]):
                ys = vertices[np.isclose(vertices[:, 0], percent), 1]
                np.testing.assert_allclose([ys.min(), ys.max()], [mean - sd, mean + sd], atol=1e-12)
            assert tuple(band.get_facecolor()[0][:3]) == pytest.approx(to_rgb(line.get_color()))


def test_scatter_figure_colours_masks_side_by_side_with_jitter(frame):
    figure = figures.scatter_figure(frame)
    assert "one point per image run" in figure.get_suptitle()
    assert legend_texts(figure.axes[0].get_legend()) == ["16 px (n = 12)", "32 px (n = 12)"]
    for ax, metric in zip(figure.axes, ["lpips_vgg", "ssim"]):
        assert ax.get_title() == metric_label(metric)
        first, second = ax.collections
        assert not np.allclose(first.get_facecolor()[0], second.get_facecolor()[0])
        for points, mask, side in ((first, 16, -1), (second, 32, 1)):
            rows = frame[(frame.metric == metric) & (frame["mask"] == mask)]
            xy = points.get_offsets().data
            np.testing.assert_array_equal(xy[:, 1], rows["value"])  # every value once, in frame order
            shift = xy[:, 0] - rows["percent"].to_numpy()
            assert np.all(np.sign(shift) == side) and np.all(np.abs(shift) < 25)  # dodged, within its strip
            assert len(np.unique(shift.round(9))) > 1  # jittered
            assert 0 < points.get_alpha() < 1


def test_variability_figure_draws_one_line_per_seed():
    frame = synthetic_frame(seeds=(0, 1, 2))
    figure = figures.variability_figure(frame, "lpips_vgg", max_images=2)
    panels = [ax for ax in figure.axes if ax.get_title()]
    assert len(panels) == 4  # images a, b x masks 16, 32
    assert legend_texts(figure.legends[0]) == ["seed 0", "seed 1", "seed 2"]
    for ax in panels:
        image, mask = ax.get_title().split(" · mask ")
        assert image in ("a", "b")
        for seed, line in enumerate(ax.lines):
            rows = frame[(frame.image_id == image) & (frame["mask"] == int(mask.removesuffix(" px")))
                         & (frame.seed == seed) & (frame.metric == "lpips_vgg")].sort_values("percent")
            assert line.get_label() == f"seed {seed}"
            np.testing.assert_array_equal(line.get_ydata(), rows.value)


def test_variability_figure_needs_several_seeds():
    with pytest.raises(ValueError, match="more than one seed"):
        figures.variability_figure(synthetic_frame(seeds=(0,)))


def test_filmstrip_shows_the_original_once_then_each_checkpoint():
    rng = np.random.default_rng(1)
    original = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    generations = {0: original.copy(), **{p: rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for p in (100, 50)}}
    figure = figures.filmstrip_figure(original, generations, "a title", {0: 0.0, 50: 0.25, 100: 0.5}, "lpips_vgg")
    assert [ax.get_title() for ax in figure.axes] == ["original", "50 %", "100 %"]
    assert [ax.get_xlabel() for ax in figure.axes] == ["LPIPS (VGG) 0.000", "LPIPS (VGG) 0.250", "LPIPS (VGG) 0.500"]
    for ax, expected in zip(figure.axes, [original, generations[50], generations[100]]):
        np.testing.assert_array_equal(ax.images[0].get_array(), expected)
    assert figure.get_suptitle() == "a title"
    # a 0 % generation that differs from the original keeps its own panel
    generations[0] = 255 - original
    titles = [ax.get_title() for ax in figures.filmstrip_figure(original, generations).axes]
    assert titles == ["original", "0 %", "50 %", "100 %"]


def test_properties_figure_states_spearman_rho_per_mask(frame):
    ranking = statistics.stability_ranking(frame, "lpips_vgg")
    ranking["edge_density"] = np.arange(len(ranking)) / 10
    ranking["colour_entropy"] = np.random.default_rng(0).uniform(2, 8, len(ranking))
    figure = figures.properties_figure(ranking, frame=frame)
    assert "model telea" in figure.get_suptitle()
    correlations = statistics.property_correlations(ranking)
    for ax, prop in zip(figure.axes, ["edge_density", "colour_entropy"]):
        for points, text, mask in zip(ax.collections, legend_texts(ax.get_legend()), [16, 32]):
            rows = ranking[ranking["mask"] == mask]
            np.testing.assert_array_equal(points.get_offsets().data, rows[[prop, "final"]].to_numpy())
            rho = correlations.query("mask == @mask and property == @prop").spearman_rho.iloc[0]
            assert rho == pytest.approx(stats.spearmanr(rows[prop], rows["final"]).statistic)
            assert text == f"{mask} px: ρ = {rho:.2f} (n = 6)"
        assert ax.get_ylabel() == "LPIPS (VGG) at 200 %"


def test_label_figure_draws_dodged_bars_of_group_means_with_sd_and_n(frame):
    labelled = frame.assign(label_style=frame["image_id"].map(STYLES))
    breakdown = label_breakdown(labelled, "lpips_vgg")
    figure = figures.label_figure(breakdown, "label_style", labelled)
    (ax,) = figure.axes
    assert "± SD" in figure.get_suptitle() and "Final distance by style" in figure.get_suptitle()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Baroque", "Cubism"]
    assert legend_texts(ax.get_legend()) == ["16 px", "32 px"]
    finals = labelled.query("metric == 'lpips_vgg' and percent == 200").groupby(["mask", "label_style", "image_id"])
    finals = finals["value"].mean().groupby(["mask", "label_style"]).agg(["mean", "std", "size"])
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(bars) == 2
    lefts = []
    for container, mask in zip(bars, [16, 32]):
        heights = [patch.get_height() for patch in container.patches]
        np.testing.assert_allclose(heights, finals.loc[mask]["mean"].to_numpy())
        lefts.append([patch.get_x() for patch in container.patches])
        caps = container.errorbar.lines[2][0].get_segments()
        np.testing.assert_allclose([seg[1, 1] - seg[0, 1] for seg in caps], 2 * finals.loc[mask]["std"].to_numpy())
    assert all(a < b for a, b in zip(*lefts))  # side by side, not overlapping
    counts = [t.get_text() for t in ax.texts]
    assert counts == [f"n={n}" for n in list(finals.loc[16]["size"]) + list(finals.loc[32]["size"])] == ["n=3"] * 4


def test_figures_are_saved_as_png_svg_and_pdf(frame, tmp_path):
    files = figures.save(figures.mean_std_figure(frame), tmp_path / "figures" / "mean_std.png", dpi=100)
    assert [f.name for f in files] == ["mean_std.png", "mean_std.svg", "mean_std.pdf"]
    width, height = figures.mean_std_figure(frame).get_size_inches()
    with Image.open(files[0]) as png:
        assert png.size == (round(width * 100), round(height * 100))
    assert files[1].read_text().lstrip().startswith("<?xml") and files[2].read_bytes().startswith(b"%PDF")


def study(params) -> optuna.Study:
    """A finished in-memory study over `params` (name -> distribution), minimising lpips-vgg at the end."""
    created = optuna.create_study(direction="minimize", sampler=optuna.samplers.RandomSampler(seed=0))
    created.set_user_attr("rip.definition", {"objective": "final", "objective_metric": "lpips-vgg"})
    for i in range(6):
        created.add_trial(optuna.trial.create_trial(
            params={name: (d.choices[i % len(d.choices)] if isinstance(d, optuna.distributions.CategoricalDistribution)
                           else d.low + (d.high - d.low) * i / 5) for name, d in params.items()},
            distributions=params, value=0.1 * (i % 4) + 0.05))
    return created


def test_optuna_plots_name_the_objective_and_skip_contours_over_categories(tmp_path):
    categorical = {"mask": optuna.distributions.CategoricalDistribution([16, 32]),
                   "mask_order": optuna.distributions.CategoricalDistribution(["random", "scan"])}
    only_categories = study(categorical)
    assert objective_label(only_categories) == "mean lpips-vgg at the last percent (minimised)"
    _plots(only_categories, tmp_path / "a")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["history.png", "importances.png", "slice.png"]

    mixed = study({**categorical, "strength": optuna.distributions.FloatDistribution(0.5, 1.0)})
    _plots(mixed, tmp_path / "b")
    assert (tmp_path / "b" / "contour.png").is_file()


def test_optuna_history_plot_labels_its_axis_with_the_objective(monkeypatch, tmp_path):
    import matplotlib.pyplot as plt

    seen = {}
    monkeypatch.setattr(plt, "close", lambda figure: seen.setdefault(len(seen), figure))
    _plots(study({"strength": optuna.distributions.FloatDistribution(0.5, 1.0)}), tmp_path)
    history = seen[0]
    assert history.axes[0].get_ylabel() == "mean lpips-vgg at the last percent (minimised)"
    assert "(minimised)" in history.get_suptitle()
    monkeypatch.undo()
    for figure in list(seen.values()):
        plt.close(figure)
    assert not (tmp_path / "contour.png").exists()  # one parameter: no contour


@pytest.mark.parametrize("draw, newlines", [
    (figures.scatter_figure, 3),  # wrapped: its note does not fit on one line of one panel
    (figures.mean_std_figure, 2),  # title, subtitle, note: each fits
])
def test_titles_fit_their_figure_with_one_panel(draw, newlines):
    figure = draw(synthetic_frame(metrics=("lpips_vgg",)))  # one panel: the narrowest figure
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    (title,) = [t for t in figure.findobj(Text) if t.get_text() == figure.get_suptitle()]
    assert title.get_text().count("\n") >= newlines
    box = title.get_window_extent(canvas.get_renderer())
    assert 0 <= box.x0 and box.x1 <= figure.bbox.width


def test_a_label_figure_refuses_a_breakdown_of_several_conditions():
    frame = synthetic_frame(images=tuple(STYLES)).assign(label_style=lambda f: f["image_id"].map(STYLES))
    both = pd.concat([frame, frame.assign(experiment="other", run_id=lambda f: f["run_id"] + "-other")])
    with pytest.raises(ValueError, match="one figure per condition"):
        figures.label_figure(label_breakdown(both), "label_style")
