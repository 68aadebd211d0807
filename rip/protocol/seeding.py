"""Seeds derived from (seed, image id, iteration, conditions): results never depend on batching or order."""

import hashlib

import numpy as np


def derive_seed(seed: int, image_id: str, iteration: int, purpose: str, conditions: str = "") -> int:
    """A 63-bit seed unique to one random choice of one image at one iteration.

    `purpose` separates independent streams (e.g. "square" and "noise"); `conditions` (a run's
    `RunConfig.draw_key`) separates runs of different conditions, unless empty.
    """
    key = f"{seed}\x1f{image_id}\x1f{iteration}\x1f{purpose}"
    if conditions:
        key += f"\x1f{conditions}"
    key = key.encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1


def derived_rng(seed: int, image_id: str, iteration: int, purpose: str, conditions: str = "") -> np.random.Generator:
    """A numpy generator for one random choice (see `derive_seed`)."""
    return np.random.default_rng(derive_seed(seed, image_id, iteration, purpose, conditions))
