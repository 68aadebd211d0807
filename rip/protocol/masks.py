"""The grid of square masks and the order in which squares are inpainted."""

from dataclasses import dataclass

import numpy as np

from rip.protocol.seeding import derived_rng

MASK_ORDERS = ("random", "shuffle", "scan")
"""random: uniform with replacement (the study); shuffle: every square once per pass, in a
random order; scan: row by row."""


@dataclass(frozen=True)
class Square:
    """One grid square, in pixels of the letterboxed image."""

    row: int
    col: int
    mask: int

    @property
    def top(self) -> int:
        return self.row * self.mask

    @property
    def left(self) -> int:
        return self.col * self.mask

    def to_array(self, size: int) -> np.ndarray:
        """Boolean `size`×`size` mask, True inside the square."""
        array = np.zeros((size, size), dtype=bool)
        array[self.top : self.top + self.mask, self.left : self.left + self.mask] = True
        return array


def square_for(config, image_id: str, iteration: int) -> Square:
    """The square inpainted at `iteration` (0-based) of image `image_id` under `config`."""
    per_side = config.size // config.mask
    cells = per_side * per_side
    if config.mask_order == "random":
        index = int(derived_rng(config.seed, image_id, iteration, "square", config.draw_key).integers(cells))
    elif config.mask_order == "shuffle":
        cycle, position = divmod(iteration, cells)
        index = int(derived_rng(config.seed, image_id, cycle, "shuffle", config.draw_key).permutation(cells)[position])
    elif config.mask_order == "scan":
        index = iteration % cells
    else:
        raise ValueError(f"unknown mask_order {config.mask_order!r}: expected one of {', '.join(MASK_ORDERS)}")
    row, col = divmod(index, per_side)
    return Square(row, col, config.mask)


def mask_schedule(config, image_id: str) -> list[Square]:
    """Every square of image `image_id`'s run, in order."""
    return [square_for(config, image_id, iteration) for iteration in range(config.total_iterations)]


def cell_counts(config, image_id: str, iterations: int) -> np.ndarray:
    """How often each grid square of image `image_id` was inpainted in its first `iterations`
    inpaintings: an int (squares per side, squares per side) array."""
    per_side = config.size // config.mask
    counts = np.zeros((per_side, per_side), dtype=np.int64)
    for iteration in range(iterations):
        square = square_for(config, image_id, iteration)
        counts[square.row, square.col] += 1
    return counts


def coverage_depth(counts: np.ndarray) -> tuple[float, float]:
    """(coverage, depth) of `cell_counts`: the share of the image's pixels inpainted at least once,
    and how often, on average, a pixel so covered was inpainted (0 before any inpainting)."""
    covered = int(np.count_nonzero(counts))
    return covered / counts.size, float(counts.sum() / covered) if covered else 0.0


def expected_coverage(mask_order: str, cells: int, iterations) -> np.ndarray:
    """The expected coverage after `iterations` inpaintings of a grid of `cells` squares.

    random (with replacement): 1 − (1 − 1/cells)^n, about 1 − e^(−percent/100); shuffle and
    scan (every square once per pass): n/cells up to one pass, then 1 — exact, not only expected.
    """
    n = np.asarray(iterations, dtype=np.float64)
    if mask_order == "random":
        return 1 - (1 - 1 / cells) ** n
    if mask_order in ("shuffle", "scan"):
        return np.minimum(n / cells, 1.0)
    raise ValueError(f"unknown mask_order {mask_order!r}: expected one of {', '.join(MASK_ORDERS)}")
