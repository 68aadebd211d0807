"""Finding M1 ("the models differ in stability") on simulated comparisons: rare false "holds", the right
ranking, and the scopes it cannot decide (analysis/models.py, analysis/model_simulation.py)."""

import numpy as np

from analysis.model_simulation import SCENARIOS, calibrate_models, simulate_models
from analysis.models import model_ranking, model_verdicts
from analysis.verdicts import COLUMNS, HOLDS, POOLED, UNKNOWN


def test_identical_models_rarely_hold_and_a_model_drifting_more_holds_ranked_last():
    identical, drifts = SCENARIOS[0], SCENARIOS[4]  # three identical models; one drifting 25 % more
    rates = calibrate_models(6, seed=1, scenarios=(identical, drifts)).set_index("scenario")
    assert rates.loc[identical.name, "any row holds"] == 0.0
    assert rates.loc[drifts.name, "pooled holds, worst ranked last"] == 1.0


def test_one_model_gives_no_rows_and_a_scope_with_one_model_is_left_undecided():
    frame = simulate_models(SCENARIOS[4], np.random.default_rng(0))
    assert model_verdicts(frame[frame["model"] == "model-0"]).empty
    partial = frame[(frame["model"] == "model-0") | (frame["mask"] != 256)]  # mask 256: only model-0
    table = model_verdicts(partial)
    assert list(table.columns) == COLUMNS and len(table) == 3 * 3 + 1
    assert set(table.loc[table["mask"] == 256, "verdict"]) == {UNKNOWN}
    assert set(table.loc[table["mask"] != 256, "verdict"]) == {HOLDS}
    ranking = model_ranking(partial)
    pooled = ranking[ranking["mask"] == POOLED].sort_values("place")
    assert list(pooled["model"])[-1] == "model-2" and (pooled["n"] == 30).all()
