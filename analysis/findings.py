"""Findings beyond the study's, in the study's verdicts' columns and terms (`analysis.verdicts`).

Each row states an effect with its 95 % interval, its threshold, n images, the one-sided p-value
of the null that the claim is false and the rule in one line; `decide` adjusts the p-values of one
family of rows (Holm) and gives each its verdict as `analysis.verdicts` does: holds when the
adjusted p is below `alpha` and the interval lies on the claim's side of the threshold.
"""

import numpy as np
import pandas as pd

from analysis.effects import Effect
from analysis.rules import Rules
from analysis.statistics import holm
from analysis.verdicts import COLUMNS, FAILS, HOLDS, UNKNOWN


def effect_row(finding: str, claim: str, context: str, effect: Effect | None, *, statistic: str, side: str,
               bound: float, rule: str, **scope) -> dict:
    """One row: `effect` tested against `bound` on `side` ("greater" or "less"); `effect` None (or
    fewer than 3 usable images) leaves it untested, with the reason in `note`."""
    row = dict.fromkeys(COLUMNS, np.nan) | {"context": context, "mask": "", "metric": "", "compared": "",
                                            "checkpoints": "", "statistic": statistic, "rule": rule, "note": "",
                                            "n": 0, "incomplete": 0, "supports": False, "against": False,
                                            "threshold": f"{'>' if side == 'greater' else '<'} {bound:g}"}
    row.update(scope, finding=finding, claim=claim)
    if effect is None:
        return row
    row.update(value=effect.value, low=effect.low, high=effect.high, n=effect.n, p_value=effect.p_value)
    if side == "greater":
        row.update(supports=effect.low > bound, against=effect.high < bound)
    else:
        row.update(supports=effect.high < bound, against=effect.low > bound)
    if effect.n < 3 or not np.isfinite(effect.p_value):
        row.update(p_value=np.nan, note=(row["note"] + "; " if row["note"] else "") + f"{effect.n} image(s) usable")
    return row


def decide(rows: list[dict], rules: Rules = Rules()) -> pd.DataFrame:
    """The rows as a table in COLUMNS: p-values Holm-adjusted over these rows, and each verdict."""
    table = pd.DataFrame(rows)
    if table.empty:
        return pd.DataFrame(columns=COLUMNS)
    table["p_adjusted"] = holm(table["p_value"].to_numpy(dtype=float))
    tested = table["p_value"].notna()
    holds = tested & table["supports"].astype(bool) & (table["p_adjusted"] < rules.alpha)
    table["verdict"] = np.where(holds, HOLDS, np.where(tested, FAILS, UNKNOWN))
    table["contradicted"] = tested & table["against"].astype(bool)
    table["verdict_with_incomplete"] = table["verdict"]
    return table[COLUMNS]
