"""How a worker searches: one frozen dataclass holding the defaults, validated up front."""

from dataclasses import dataclass

from rip.config import metric_name
from rip.metrics import METRIC_NAMES

OBJECTIVES = ("final", "auc")
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "hyperband", "none")
DEFAULT_STORAGE = "sqlite:///rip-tune.db"
DEFAULT_TRIALS = 20


@dataclass(frozen=True)
class SearchSettings:
    """Everything about a search except the run configuration it varies."""

    space: str = ""  # see rip.tuning.space; empty: what the model can use
    objective: str = "final"  # final: mean at the last percent; auc: mean over the whole curve
    objective_metric: str = ""  # empty: lpips-vgg if measured (the study's choice), else the first metric
    n_trials: int | None = None  # the study's total of trials that did not fail; None: 20, or the grid's size
    sampler: str = "tpe"
    sampler_seed: int | None = None  # fix it for a reproducible single worker
    pruner: str = "median"  # grid studies never prune: they replicate
    pruner_startup_trials: int = 5  # median: trials that finish before any is pruned
    storage: str = DEFAULT_STORAGE  # a SQLite file or a PostgreSQL database
    study_name: str = "rip-tune"
    heartbeat_interval: int = 60  # seconds between a running trial's heartbeats
    grace_period: int | None = None  # seconds without heartbeat before a trial is retried; None: 2 intervals
    max_retries: int = 3  # retries of one trial whose worker died
    output: str = "outputs/tune"  # the summary goes to OUTPUT/STUDY_NAME

    def __post_init__(self):
        if self.objective_metric:  # a name or an MLflow key: lpips-vgg or lpips_vgg
            object.__setattr__(self, "objective_metric", metric_name(self.objective_metric))

    def validate(self) -> "SearchSettings":
        """Raise ValueError naming the first bad value; return self when all is well."""
        from rip.sweeps.workqueue import check_storage_url

        for name, allowed in (("objective", OBJECTIVES), ("sampler", SAMPLERS), ("pruner", PRUNERS)):
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}: expected one of {', '.join(allowed)}")
        if self.objective_metric and self.objective_metric not in METRIC_NAMES:
            raise ValueError(
                f"unknown objective metric {self.objective_metric!r}: expected one of {', '.join(METRIC_NAMES)}"
            )
        for name in ("n_trials", "heartbeat_interval", "grace_period"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("max_retries", "pruner_startup_trials"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if not self.study_name:
            raise ValueError("study_name must not be empty")
        check_storage_url(self.storage)
        return self
