import numpy as np

from rip.config import RunConfig
from rip.protocol.masks import Square, mask_schedule, square_for
from rip.protocol.seeding import derive_seed


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


def _index(square, per_side):
    return square.row * per_side + square.col


def test_mask_sizes_draw_independently_unless_common():
    """Under `common`, the 128-px square is a function of the 64-px one (numpy masks the same
    bits): a hidden paired design. By default every condition enters the draw."""
    for random_numbers, is_function in (("independent", False), ("common", True)):
        small = RunConfig(mask=64, random_numbers=random_numbers)
        large = RunConfig(mask=128, random_numbers=random_numbers)
        mapping = {}
        consistent = True
        for iteration in range(400):
            key = _index(square_for(small, "img", iteration), 8)
            value = _index(square_for(large, "img", iteration), 4)
            consistent &= mapping.setdefault(key, value) == value
        assert consistent is is_function, random_numbers


def test_every_condition_enters_the_draw_but_not_what_is_measured():
    base = RunConfig(mask=64)
    schedule = mask_schedule(base, "a")
    for changed in (dict(paste_back=True), dict(size=256), dict(model="telea"), dict(pad_color="black")):
        assert mask_schedule(RunConfig(mask=64, **changed), "a")[:20] != schedule[:20], changed
    for same in (dict(percent=200), dict(metrics=("ssim",)), dict(batch_size=1), dict(experiment="x"), dict(images="y")):
        assert mask_schedule(RunConfig(mask=64, **same), "a")[:10] == schedule[:10], same
    common = RunConfig(mask=64, random_numbers="common")
    assert mask_schedule(common, "a") == mask_schedule(RunConfig(mask=64, paste_back=True, random_numbers="common"), "a")


def test_runs_recorded_before_random_numbers_existed_resume_with_common_draws():
    legacy = RunConfig.from_json(RunConfig(mask=64).to_json().replace('"random_numbers": "independent", ', ""))
    assert legacy.random_numbers == "common"
    index = int(np.random.default_rng(derive_seed(0, "a", 3, "square")).integers(64))  # the old key
    assert square_for(legacy, "a", 3) == Square(*divmod(index, 8), 64)
