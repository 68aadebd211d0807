"""The verdict table's multiplicity rule (analysis.hierarchy) against Holm, a case computed by hand,
and its familywise error rate measured on p-values drawn under the null."""

import numpy as np
import pytest

from analysis.hierarchy import adjusted
from analysis.statistics import holm

TREE = np.array([-1, 0, 0, 0, -1, 4, 4, -1])  # two pooled rows with their scopes, one row alone


def test_without_a_tree_it_is_holm():
    rng = np.random.default_rng(0)
    for _ in range(100):
        p = rng.uniform(0, 0.2, size=rng.integers(1, 25))
        p[rng.uniform(size=len(p)) < 0.2] = np.nan
        np.testing.assert_allclose(adjusted(p, np.full(len(p), -1)), holm(p), equal_nan=True)


def test_a_tree_by_hand():
    # pooled row 0 (weight 1/2) is rejected at 0.002; its share goes to its scopes 1 and 2 (1/4 each):
    # 1 at 0.04, then 2 inherits 1's share (1/2) at 0.04, then everything returns to row 3 (weight 1)
    p = np.array([0.001, 0.01, 0.02, 0.04])
    np.testing.assert_allclose(adjusted(p, np.array([-1, 0, 0, -1])), [0.002, 0.04, 0.04, 0.04], rtol=1e-5)


def test_a_scope_waits_for_its_pooled_row():
    p = np.array([0.3, 1e-9, 1e-9, 0.001])
    out = adjusted(p, np.array([-1, 0, 0, -1]))
    assert out[1] >= out[0] and out[2] >= out[0] and out[3] == pytest.approx(0.002)


def test_rows_without_p_take_no_part_and_their_scopes_become_primary():
    p = np.array([np.nan, 0.01, 0.02])
    out = adjusted(p, np.array([-1, 0, 0]))
    assert np.isnan(out[0])
    np.testing.assert_allclose(out[1:], holm(p[1:]))


@pytest.mark.parametrize("false_primaries", [False, True])
def test_familywise_error_at_most_alpha(false_primaries):
    """Scopes under the null, with pooled rows true (p near 0: their shares flow down) or null too."""
    rng = np.random.default_rng(1)
    draws, alpha, errors = 4000, 0.05, 0
    null = np.ones(len(TREE), bool)
    if false_primaries:
        null[TREE < 0] = False
    for _ in range(draws):
        p = rng.uniform(size=len(TREE))
        p[~null] = 1e-12
        errors += bool((adjusted(p, TREE)[null] < alpha).any())
    rate = errors / draws
    assert rate <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / draws)
    assert rate > 0.02  # and not needlessly conservative: most of alpha is spent
