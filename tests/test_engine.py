import numpy as np
import pytest

from rip.config import RunConfig
from rip.inpainters import load_inpainter
from rip.metrics import load_metrics
from rip.metrics.complexity import COMPLEXITY_KEYS
from rip.protocol.engine import Checkpoint, ImageFinished, ImageStarted, ImageTask, RecursiveInpainting
from rip.protocol.masks import cell_counts, coverage_depth, mask_schedule
from tests.conftest import random_image

CONFIG = RunConfig(mask=16, size=64, step=25, percent=100, model="telea", metrics=("ssim", "psnr"))


def run(config, tasks):
    engine = RecursiveInpainting(config, load_inpainter(config, "cpu"), load_metrics(config.metrics), progress=False)
    return list(engine.run(tasks))


def tasks(count=3):
    return [ImageTask(f"img{i}", random_image(64, i)) for i in range(count)]


def checkpoints(events):
    return {(e.image_id, e.percent): e for e in events if isinstance(e, Checkpoint)}


def test_events_and_percent_accounting():
    events = run(CONFIG, tasks())
    assert sum(isinstance(e, ImageStarted) for e in events) == 3
    assert [e.image_id for e in events if isinstance(e, ImageFinished)] == ["img0", "img1", "img2"]
    found = checkpoints(events)
    assert sorted(found) == [(f"img{i}", p) for i in range(3) for p in (0, 25, 50, 75, 100)]
    # 16 squares of 16 px in a 64 px image: 25% is 4 inpaintings
    assert all(found[key].iteration == key[1] // 25 * 4 for key in found)
    assert found["img0", 0].values["ssim"] == pytest.approx(1.0)
    assert found["img0", 100].values["ssim"] < 1.0


def test_only_scheduled_squares_change():
    task = tasks(1)[0]
    original = task.original.copy()
    events = run(CONFIG, [task])
    final = checkpoints(events)["img0", 100].image
    touched = np.zeros((64, 64), dtype=bool)
    for square in mask_schedule(CONFIG, "img0"):
        touched |= square.to_array(64)
    changed = (final != original).any(axis=2)
    assert changed.any()
    assert not (changed & ~touched).any()


def test_results_do_not_depend_on_batch_size_or_order():
    reference = checkpoints(run(CONFIG, tasks()))
    for batch_size in (1, 2, 5):
        config = RunConfig(**{**CONFIG.__dict__, "batch_size": batch_size})
        other = checkpoints(run(config, list(reversed(tasks()))))
        assert other.keys() == reference.keys()
        for key, checkpoint in reference.items():
            assert np.array_equal(checkpoint.image, other[key].image)
            assert checkpoint.values == other[key].values


def test_resuming_from_a_checkpoint_gives_the_same_results():
    reference = checkpoints(run(CONFIG, tasks()))
    resumed_tasks = [
        ImageTask(f"img{i}", random_image(64, i), current=reference[f"img{i}", 50].image, iteration=8)
        for i in range(3)
    ]
    resumed = checkpoints(run(CONFIG, [tasks()[0]] + resumed_tasks[1:]))
    for i in (1, 2):
        assert (f"img{i}", 50) not in resumed
        for percent in (75, 100):
            assert np.array_equal(resumed[f"img{i}", percent].image, reference[f"img{i}", percent].image)
            assert resumed[f"img{i}", percent].values == reference[f"img{i}", percent].values


def test_same_seed_same_schedule_other_seed_differs():
    first = checkpoints(run(CONFIG, tasks(1)))["img0", 100].image
    again = checkpoints(run(CONFIG, tasks(1)))["img0", 100].image
    other_config = RunConfig(**{**CONFIG.__dict__, "seed": 1})
    other = checkpoints(run(other_config, tasks(1)))["img0", 100].image
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


SHARED = {
    "a": RunConfig(mask=16, size=64, step=25, percent=50, model="telea", metrics=("ssim",)),
    "b": RunConfig(mask=32, size=64, step=25, percent=100, model="telea", metrics=("psnr",), seed=1, mask_order="scan"),
}


def shared_tasks():
    return [ImageTask(f"img{i}", random_image(64, i), key=key) for key in SHARED for i in range(2)]


def test_shared_engine_equals_each_configuration_alone():
    configurations = {key: (config, load_metrics(config.metrics)) for key, config in SHARED.items()}
    engine = RecursiveInpainting.shared(configurations, load_inpainter(SHARED["a"], "cpu"), batch_size=3, progress=False)
    events = list(engine.run(shared_tasks()))
    assert {(e.key, e.image_id) for e in events if isinstance(e, ImageFinished)} == {
        (key, f"img{i}") for key in SHARED for i in range(2)
    }
    assert all(e.key == e.task.key for e in events if isinstance(e, ImageStarted))
    for key, config in SHARED.items():
        alone = checkpoints(run(config, [ImageTask(f"img{i}", random_image(64, i)) for i in range(2)]))
        together = checkpoints([e for e in events if isinstance(e, Checkpoint) and e.key == key])
        assert together.keys() == alone.keys()
        for name, checkpoint in alone.items():
            assert np.array_equal(together[name].image, checkpoint.image)
            assert together[name].values == checkpoint.values


def test_shared_engine_refuses_configurations_with_other_pipeline_calls():
    other = RunConfig(**{**SHARED["a"].__dict__, "model": "ns"})
    metrics = load_metrics(("ssim",))
    with pytest.raises(ValueError, match="differ in model"):
        RecursiveInpainting.shared({"a": (SHARED["a"], metrics), "b": (other, metrics)}, load_inpainter(other, "cpu"))
    engine = RecursiveInpainting.shared({"a": (SHARED["a"], metrics)}, load_inpainter(other, "cpu"), progress=False)
    with pytest.raises(ValueError, match="unknown configurations: 'b'"):
        list(engine.run(shared_tasks()))


def test_checkpoints_carry_coverage_depth_and_where_the_picture_lies():
    box = (8, 0, 48, 64)  # a landscape picture: bands above and below
    events = run(CONFIG, [ImageTask("img0", random_image(64, 0), box=box)])
    found = checkpoints(events)
    for (image_id, percent), checkpoint in found.items():
        counts = cell_counts(CONFIG, image_id, checkpoint.iteration)
        assert (checkpoint.values["coverage"], checkpoint.values["depth"]) == coverage_depth(counts)
        assert checkpoint.box == box and not set(COMPLEXITY_KEYS) & set(checkpoint.values)  # measured when recorded
        assert checkpoint.values["coverage"] * checkpoint.values["depth"] == pytest.approx(percent / 100)
    assert found["img0", 0].values["coverage"] == 0 and found["img0", 100].values["coverage"] < 1  # with replacement
    without = checkpoints(run(RunConfig(**{**CONFIG.__dict__, "complexity": False}), tasks(1)))
    assert set(without["img0", 50].values) == {"ssim", "psnr", "coverage", "depth"}
    assert without["img0", 50].values["coverage"] == found["img0", 50].values["coverage"]  # the same draws
