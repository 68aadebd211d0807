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
