import numpy as np

from rip.config import RunConfig
from rip.masks import Square, mask_schedule, square_for


def test_square_array_covers_exactly_one_square():
    array = Square(row=1, col=2, mask=16).to_array(64)
    assert array.sum() == 16 * 16
    rows, cols = np.nonzero(array)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (16, 31, 32, 47)


def test_random_order_is_uniform_and_reproducible():
    config = RunConfig(mask=128, size=512, percent=400, step=50, seed=3)
    schedule = [square_for(config, "img", i) for i in range(4000)]
    assert schedule[:64] == mask_schedule(config, "img")
    counts = np.bincount([s.row * 4 + s.col for s in schedule], minlength=16)
    assert counts.min() > 4000 / 16 * 0.75 and counts.max() < 4000 / 16 * 1.25
    # with replacement: some square repeats within one pass of 16
    assert len({(s.row, s.col) for s in schedule[:16]}) < 16


def test_schedule_depends_on_seed_and_image_only():
    config = RunConfig(mask=64)
    assert mask_schedule(config, "a") == mask_schedule(RunConfig(mask=64, batch_size=9), "a")
    assert mask_schedule(config, "a") != mask_schedule(config, "b")
    assert mask_schedule(config, "a") != mask_schedule(RunConfig(mask=64, seed=1), "a")


def test_shuffle_visits_every_square_once_per_pass():
    config = RunConfig(mask=128, mask_order="shuffle")
    schedule = mask_schedule(config, "x")
    for start in range(0, len(schedule), 16):
        assert sorted((s.row, s.col) for s in schedule[start:start + 16]) == [(r, c) for r in range(4) for c in range(4)]
    assert schedule[:16] != schedule[16:32]


def test_scan_goes_row_by_row():
    config = RunConfig(mask=256, mask_order="scan")
    assert [(s.row, s.col) for s in mask_schedule(config, "x")[:5]] == [(0, 0), (0, 1), (1, 0), (1, 1), (0, 0)]
