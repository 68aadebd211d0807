import numpy as np
import pytest

from rip.config import RunConfig
from rip.protocol.masks import Square, cell_counts, coverage_depth, expected_coverage, mask_schedule, square_for
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


def test_measuring_complexity_changes_no_draw():
    assert RunConfig(mask=64, complexity=False).draw_key == RunConfig(mask=64).draw_key
    assert mask_schedule(RunConfig(mask=64, complexity=False), "a") == mask_schedule(RunConfig(mask=64), "a")


def test_runs_recorded_before_complexity_existed_load_without_it():
    text = RunConfig(mask=64).to_json().replace('"complexity": true, ', "")
    assert "complexity" not in text and RunConfig.from_json(text).complexity is False
    assert RunConfig.from_json(RunConfig(mask=64).to_json()).complexity is True


# coverage and depth ----------------------------------------------------------------------------

def test_scan_coverage_is_exactly_linear_to_full():
    config = RunConfig(mask=16, size=64, mask_order="scan")  # 16 squares
    for n in range(0, 49):
        coverage, depth = coverage_depth(cell_counts(config, "x", n))
        assert coverage == min(n, 16) / 16 == expected_coverage("scan", 16, n)
        assert depth == (n / min(n, 16) if n else 0.0)  # coverage × depth = percent / 100


def test_shuffle_coverage_equals_its_closed_form_for_every_image():
    config = RunConfig(mask=16, size=64, mask_order="shuffle")
    for image in ("a", "b", "c"):
        counts = [coverage_depth(cell_counts(config, image, n))[0] for n in range(40)]
        np.testing.assert_array_equal(counts, expected_coverage("shuffle", 16, np.arange(40)))


def test_expected_random_coverage_matches_a_simulation_within_its_standard_error():
    config = RunConfig(mask=16, size=64, random_numbers="common")  # 16 squares, drawn with replacement
    checked = (4, 16, 32)
    simulated = {n: [] for n in checked}
    for image in range(300):
        counts = np.zeros(16, dtype=int)
        for iteration in range(max(checked)):
            square = square_for(config, f"img{image}", iteration)
            counts[square.row * 4 + square.col] += 1
            if iteration + 1 in simulated:
                simulated[iteration + 1].append(coverage_depth(counts)[0])
    for n, values in simulated.items():
        standard_error = np.std(values, ddof=1) / np.sqrt(len(values))
        assert abs(np.mean(values) - expected_coverage("random", 16, n)) < 3 * standard_error, n
    assert expected_coverage("random", 64, 256) == pytest.approx(1 - np.exp(-4), abs=0.002)  # 400 %: ≈ 1 − e^(−4)


def test_depth_is_the_mean_count_of_the_covered_squares():
    counts = np.array([[0, 1], [3, 0]])
    assert coverage_depth(counts) == (0.5, 2.0)
    assert coverage_depth(np.zeros((2, 2), dtype=int)) == (0.0, 0.0)
