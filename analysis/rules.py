"""The thresholds of the verdicts' decision rules, with why each default (no heavy imports: the CLI reads it)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Rules:
    """`rip analyze` takes each field as an option of the same name (--min-effect, ...)."""

    alpha: float = 0.05  # chance of any false "holds" in one table (adjusted over its rows): the usual 5 %
    min_effect: float = 0.05  # smallest relative change called real: 5 % of the distance
    agreement_rho: float = 0.7  # "strong" correlation from 0.70 (Schober et al. 2018, Anesth. Analg. 126:1763)
    large_cv: float = 0.2  # "significant" spread across images: an SD of at least a fifth of the mean
    equivalence: tuple[float, float] = (0.8, 1.25)  # "comparable" ratio: the bioequivalence margins (FDA 2001)

    def __post_init__(self):
        checks = {"alpha": 0 < self.alpha < 1, "min_effect": 0 <= self.min_effect < 1,
                  "agreement_rho": -1 < self.agreement_rho < 1, "large_cv": self.large_cv > 0,
                  "equivalence": 0 < self.equivalence[0] < 1 < self.equivalence[1]}
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"{name} out of range: {getattr(self, name)!r}")
