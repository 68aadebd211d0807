"""A sweep as units of work in an Optuna study: (configuration, a chunk of its images).

The study is named after the sweep's content (its configurations and chunk size), so the same
preset finds the same units and a changed one is another study. Each unit is one trial, queued
once when the first worker registers the sweep; its state is the state of its latest trial (a
dead worker's unit is retried as a new trial).
"""

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from rip.config import RunConfig

DEFAULT_CHUNK_SIZE = 10  # images per unit
PER_WORKER_FIELDS = ("batch_size", "device", "system_metrics", "animation")  # may differ between workers without changing results
UNIT_ATTR = "rip.unit"  # trial user attribute: [configuration index, first image, end]
DONE_ATTR = "rip.images_done"  # trial user attribute: the unit's images finished so far
ERROR_ATTR = "rip.error"  # trial user attribute: why the unit failed
DEFINITION_ATTR = "rip.sweep"  # study user attribute: the sweep's content
SWEEP_ID_ATTR = "rip.sweep_id"  # study user attribute: drawn when the sweep is first registered
PARENT_ATTR = "rip.parent_run."  # study user attribute + configuration index: its MLflow run
SETTLED_ATTR = "rip.settled."  # study user attribute + configuration index: FINISHED or FAILED


@dataclass(frozen=True)
class Unit:
    """Images [start, stop) of configuration `configuration` (an index into the sweep's list)."""

    configuration: int
    start: int
    stop: int

    @classmethod
    def of(cls, trial: FrozenTrial) -> "Unit":
        return cls(*trial.user_attrs[UNIT_ATTR])

    def __len__(self) -> int:
        return self.stop - self.start

    def __str__(self) -> str:
        return f"images {self.start + 1}-{self.stop}"


@dataclass(frozen=True)
class SweepPlan:
    """A preset's configurations (in run order), their image counts, and the units they make."""

    preset: str
    configs: tuple[RunConfig, ...]
    image_counts: tuple[int, ...]
    chunk_size: int = DEFAULT_CHUNK_SIZE

    def __post_init__(self):
        if not isinstance(self.chunk_size, int) or self.chunk_size < 1:
            raise ValueError(f"chunk size must be a positive integer, got {self.chunk_size!r}")

    @property
    def definition(self) -> dict:
        """What every worker of the sweep must agree on, JSON-ready."""
        return {"preset": self.preset, "chunk_size": self.chunk_size,
                "configurations": [_shared(config) for config in self.configs]}

    @property
    def key(self) -> str:
        """12 hex digits of the definition's hash."""
        return _digest(self.definition)

    @property
    def study_name(self) -> str:
        return f"sweep-{self.preset}-{self.key}"

    def config_hash(self, index: int) -> str:
        return _digest(_shared(self.configs[index]))

    def units(self) -> list[Unit]:
        """Every unit, configuration by configuration."""
        return [Unit(index, start, min(start + self.chunk_size, count))
                for index, count in enumerate(self.image_counts)
                for start in range(0, count, self.chunk_size)]


def register(study: optuna.Study, plan: SweepPlan) -> int:
    """Queue the units the study does not hold yet (call under the study's lock); return how many.

    ValueError when the study holds another sweep. The definition is stored last, so a worker
    that dies while registering leaves a study the next one completes.
    """
    stored = study.user_attrs.get(DEFINITION_ATTR)
    if stored is not None and stored != plan.definition:
        raise ValueError(f"study {study.study_name!r} holds another sweep (chunk size {stored.get('chunk_size')}, "
                         f"{len(stored.get('configurations', []))} configurations); refusing to mix them")
    if SWEEP_ID_ATTR not in study.user_attrs:
        study.set_user_attr(SWEEP_ID_ATTR, uuid.uuid4().hex[:12])
    present = {Unit.of(trial) for trial in study.get_trials(deepcopy=False)}
    missing = [unit for unit in plan.units() if unit not in present]
    for unit in missing:
        study.enqueue_trial({}, user_attrs={UNIT_ATTR: [unit.configuration, unit.start, unit.stop]})
    if stored is None:
        study.set_user_attr(DEFINITION_ATTR, plan.definition)
    return len(missing)


def latest_trials(trials: Sequence[FrozenTrial]) -> dict[Unit, FrozenTrial]:
    """Each unit's latest trial (a retry supersedes the trial whose worker died)."""
    latest = {}
    for trial in sorted(trials, key=lambda t: t.number):
        latest[Unit.of(trial)] = trial
    return latest


def status_lines(study: optuna.Study, plan: SweepPlan, describe) -> list[str]:
    """Per configuration: units done / running (which worker) / failed (why) / waiting, images
    finished; then the whole sweep with the time left at the measured rate."""
    latest = latest_trials(study.get_trials(deepcopy=False))
    attrs = study.user_attrs
    lines, spans, finished_images, workers = [], [], 0, set()
    for index, config in enumerate(plan.configs):
        trials = [(unit, trial) for unit, trial in latest.items() if unit.configuration == index]
        states = [trial.state for _, trial in trials]
        done = sum(trial.user_attrs.get(DONE_ATTR, 0) for _, trial in trials)
        settled = attrs.get(f"{SETTLED_ATTR}{index}")
        lines.append(f"{index + 1}. {describe(config)}: {states.count(TrialState.COMPLETE)}/{len(trials)} units done, "
                     f"{states.count(TrialState.RUNNING)} running, {states.count(TrialState.FAIL)} failed, "
                     f"{states.count(TrialState.WAITING)} waiting; {done}/{plan.image_counts[index]} images"
                     + (f"; run {attrs.get(f'{PARENT_ATTR}{index}')} {settled}" if settled else ""))
        for unit, trial in trials:
            if trial.state == TrialState.RUNNING:
                lines.append(f"   {unit}: running on {trial.user_attrs.get('rip.worker', '?')}")
                workers.add(trial.user_attrs.get("rip.worker"))
            elif trial.state == TrialState.FAIL:
                reason = trial.user_attrs.get(ERROR_ATTR) or "its worker died (no heartbeat), retries used"
                lines.append(f"   {unit}: failed: {reason}")
        for unit, trial in trials:
            if trial.state == TrialState.COMPLETE and trial.datetime_start and trial.datetime_complete:
                spans.append((trial.datetime_start, trial.datetime_complete))
                finished_images += len(unit)
    total = sum(plan.image_counts)
    images = sum(trial.user_attrs.get(DONE_ATTR, 0) for trial in latest.values())
    units = list(latest.values())
    summary = (f"sweep {plan.study_name}: {sum(t.state == TrialState.COMPLETE for t in units)}/{len(units)} units, "
               f"{images}/{total} images finished, {len(workers)} worker(s) running")
    elapsed = (max(end for _, end in spans) - min(start for start, _ in spans)).total_seconds() if spans else 0
    if finished_images and elapsed > 0 and images < total:
        rate = finished_images / elapsed  # images per second, every worker together
        summary += f"; {rate * 60:.3g} images/min so far: about {_duration((total - images) / rate)} left"
        if not workers:
            summary += " once workers run again"
    return [*lines, summary]


def _shared(config: RunConfig) -> dict:
    """The configuration without the fields each worker may set for itself."""
    return {key: value for key, value in json.loads(config.to_json()).items() if key not in PER_WORKER_FIELDS}


def _digest(value) -> str:
    return hashlib.blake2b(json.dumps(value, sort_keys=True).encode(), digest_size=6).hexdigest()


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 1:
        return f"{seconds:.0f} s"
    return f"{minutes} min" if minutes < 120 else f"{minutes / 60:.1f} h"

