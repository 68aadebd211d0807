"""Verdict rows for findings beyond the study's, in the study's verdicts' columns and terms.

Each row follows `analysis.verdicts`: COLUMNS, verdicts HOLDS / FAILS / UNKNOWN, a rule that
can fail, the statistic, its interval or p-value and n.
"""

import math

import numpy as np

from analysis.verdicts import COLUMNS


def verdict_row(finding: str, claim: str, **values) -> dict:
    """One verdict row: `values` fill COLUMNS, the rest stays empty."""
    row = dict.fromkeys(COLUMNS, np.nan) | {"context": "", "mask": np.nan, "metric": "", "compared": "",
                                            "statistic": "", "note": ""}
    return row | values | {"finding": finding, "claim": claim}


def page_min_p(n: int, k: int) -> float:
    """The smallest p-value Page's trend test can give for n blocks of k treatments: (1/k!)^n."""
    return math.exp(-n * math.lgamma(k + 1))
