"""The complexity measures on images whose answers are known."""

import numpy as np
import pytest
from PIL import Image

from rip.images import letterbox, load_letterboxed
from rip.images.source import SourceImage
from rip.metrics.complexity import (COMPLEXITY_KEYS, colour_entropy, colourfulness, complexity, crop, edge_density,
                                    high_frequency_share, png_bits_per_pixel)


def flat(value=(200, 120, 40), size=32):
    return np.full((size, size, 3), value, dtype=np.uint8)


def test_a_flat_image_has_no_detail():
    image = flat()
    assert edge_density(image) == 0 and colour_entropy(image) == 0 and high_frequency_share(image) == 0
    assert png_bits_per_pixel(image) < 1  # ~100 bytes of PNG framing over 1024 pixels
    assert png_bits_per_pixel(flat(size=64)) < png_bits_per_pixel(flat(size=32))  # a header, spread over more pixels


def test_noise_is_the_most_intricate():
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert png_bits_per_pixel(noise) > 24  # incompressible: 3 × 8 bits and the PNG framing
    assert colour_entropy(noise) == pytest.approx(9.0, abs=0.2)  # 512 colours, almost uniform
    assert high_frequency_share(noise) == pytest.approx(1 - np.pi * 0.125**2, abs=0.03)  # white: energy ∝ area


def test_colourfulness_of_known_colours():
    assert colourfulness(flat((90, 90, 90))) == 0
    # red: rg = 255, yb = 127.5, no spread: M = 0.3·√(255² + 127.5²)
    assert colourfulness(flat((255, 0, 0))) == pytest.approx(0.3 * np.hypot(255, 127.5))
    halves = np.concatenate([flat((255, 0, 0))[:16], flat((0, 255, 0))[:16]])  # rg = ±255: σ 255, mean 0
    assert colourfulness(halves) == pytest.approx(255 + 0.3 * 127.5)


def test_high_frequency_share_splits_at_an_eighth_of_a_cycle_per_pixel():
    x = np.arange(64)
    for period, expected in ((32, 0.0), (4, 1.0), (2, 1.0)):
        wave = np.tile(127.5 + 100 * np.cos(2 * np.pi * x / period), (64, 1))
        image = np.repeat(np.rint(wave)[..., None], 3, axis=2).astype(np.uint8)
        assert high_frequency_share(image) == pytest.approx(expected, abs=0.02), period


def test_edges_count_the_picture_not_its_border():
    squares = np.kron(np.indices((4, 4)).sum(0) % 2, np.ones((16, 16)))[..., None].repeat(3, 2) * 255
    density = edge_density(squares.astype(np.uint8))
    assert 0.05 < density < 0.2  # three lines each way of a 64-px image, two pixels wide at most
    assert edge_density(flat((255, 255, 255))) == 0


def test_complexity_is_measured_inside_the_picture_only():
    picture = Image.fromarray(np.random.default_rng(1).integers(0, 256, (20, 64, 3), dtype=np.uint8))
    white, black = letterbox(picture, 64, "white"), letterbox(picture, 64, "black")
    box = (22, 0, 20, 64)
    assert not np.array_equal(white, black)
    assert complexity(white, box) == complexity(black, box) == complexity(white[22:42])
    assert complexity(white) != complexity(black)  # the bands weigh in without the box
    assert list(complexity(white, box)) == list(COMPLEXITY_KEYS)


def test_the_letterbox_box_is_where_the_picture_lies(tmp_path):
    Image.new("RGB", (60, 20), (10, 200, 30)).save(tmp_path / "wide.png")
    Image.new("RGB", (20, 60), (10, 200, 30)).save(tmp_path / "tall.png")
    sources = [SourceImage(name, str(tmp_path / f"{name}.png")) for name in ("wide", "tall")]
    arrays, boxes = load_letterboxed(sources, 48)
    for array, box in zip(arrays, boxes):
        inside = np.zeros((48, 48), dtype=bool)
        inside[box.top : box.top + box.height, box.left : box.left + box.width] = True
        green = (array == (10, 200, 30)).all(axis=2)
        assert np.array_equal(green, inside), box
    assert boxes == [(16, 0, 16, 48), (0, 16, 48, 16)]


def test_a_box_outside_the_image_is_refused():
    with pytest.raises(ValueError, match="not inside"):
        crop(flat(size=8), (4, 4, 8, 8))


def test_each_run_logs_the_complexity_of_its_generations_inside_the_picture(mlflow_server, tmp_path):
    """Measured by the recorder (off the engine's thread): equal to the measures of the logged PNG in its box."""
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts

    from rip.config import RunConfig
    from rip.runner import run_experiment

    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    Image.fromarray(rng.integers(0, 256, (40, 90, 3), dtype=np.uint8)).save(tmp_path / "images" / "wide.png")
    client = MlflowClient(mlflow_server.uri)
    logged = {}
    for measured in (True, False):
        config = RunConfig(model="telea", images=str(tmp_path / "images"), size=64, mask=32, percent=50,
                           metrics=("ssim",), complexity=measured, experiment="complexity-recorded")
        parent = run_experiment(config, mlflow_server.uri, progress=False, spool_root=tmp_path / "spool")
        child = client.search_runs([client.get_run(parent).info.experiment_id],
                                   f"tags.`mlflow.parentRunId` = '{parent}'")[0]
        logged[measured] = child
    (_,), (box,) = load_letterboxed([SourceImage("wide.png", str(tmp_path / "images" / "wide.png"))], 64)
    child = logged[True]
    png = download_artifacts(run_id=child.info.run_id, artifact_path="generations/0050.png",
                             tracking_uri=mlflow_server.uri, dst_path=str(tmp_path / "download"))
    expected = complexity(np.asarray(Image.open(png).convert("RGB")), box)
    assert {key: child.data.metrics[key] for key in COMPLEXITY_KEYS} == pytest.approx(expected, rel=1e-12)
    assert box != (0, 0, 64, 64) and expected != complexity(np.asarray(Image.open(png).convert("RGB")))
    assert not set(COMPLEXITY_KEYS) & set(logged[False].data.metrics)
