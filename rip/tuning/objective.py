"""One trial: the suggested conditions run as one configuration, reported checkpoint by checkpoint."""

import copy
import dataclasses
import itertools
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from rip.config import RunConfig
from rip.images import resolve_image_set
from rip.inpainters import call_options, load_inpainter
from rip.inpainters.base import Inpainter
from rip.metrics import Metric
from rip.protocol.engine import Checkpoint, Event, pipeline_key
from rip.runner import StopRun, run_experiment, run_together
from rip.sweeps.workqueue import RETRY_ATTR, WORKER_ATTR, StudyLock, heartbeat, next_step, worker_id
from rip.tracking.tags import RETRY_TAG, WORKER_TAG
from rip.tuning.space import SearchSpace, uses_diffusion
from rip.tuning.tracking import SearchTracker

RUN_ATTR = "rip.mlflow_run_id"  # user attribute: the MLflow run of a trial (or of the study)
REUSED_ATTR = "rip.reused_from"  # user attribute: the completed trial whose configuration and value a trial reused


@dataclass(frozen=True)
class Target:
    """What a study optimises: one metric's mean over the images, at the last percent or over the curve."""

    metric: str  # e.g. "lpips-vgg"
    kind: str  # "final": the mean at the last percent; "auc": the mean curve's average height
    higher_is_better: bool  # similarities (ssim, psnr) are maximised, distances minimised

    @property
    def key(self) -> str:
        return self.metric.replace("-", "_")

    @property
    def direction(self) -> str:
        return "maximize" if self.higher_is_better else "minimize"

    def value(self, curve: dict[int, float]) -> float:
        """The objective from the mean curve {percent: mean over images}, 0 % included."""
        percents = sorted(curve)
        if self.kind == "final":
            return curve[percents[-1]]
        area = sum(
            (curve[a] + curve[b]) / 2 * (b - a) for a, b in zip(percents, percents[1:])
        )
        return area / (percents[-1] - percents[0])


class Pruned(StopRun):
    """The pruner ended the trial."""


class Reporter:
    """Observer of a run: the mean of one metric over every image at each percent, reported to the trial.

    A mean is complete once every image reached that percent: at once when the batch holds every
    image, otherwise as the last images catch up. 0 % (the original itself) is not reported.
    """

    def __init__(self, trial: optuna.Trial, key: str, n_images: int, on_report: Callable[[int, float], None]):
        self.trial = trial
        self.key = key
        self.n_images = n_images
        self.on_report = on_report
        self.curve: dict[int, float] = {}
        self._values: dict[int, list[float]] = defaultdict(list)

    def __call__(self, event: Event) -> None:
        if not isinstance(event, Checkpoint):
            return
        values = self._values[event.percent]
        values.append(event.values[self.key])
        if len(values) < self.n_images:
            return
        mean = sum(values) / len(values)
        self.curve[event.percent] = mean
        if event.percent == 0:
            return
        self.trial.report(mean, event.percent)
        self.on_report(event.percent, mean)
        if self.trial.should_prune():
            raise Pruned(f"pruned at {event.percent}% with mean {self.key} {mean:.4g}")


class Backends:
    """Each model loaded once; a trial's inpainter wraps it with the trial's run-time settings."""

    def __init__(self, models: Sequence[str], base: RunConfig, device: str):
        self.loaded = {
            model: load_inpainter(dataclasses.replace(base, model=model, scheduler=None), device)
            for model in models
        }

    def guided_without_prompt(self, model: str) -> bool:
        """Whether guidance changes the images of loaded model `model` when the prompt is empty."""
        if not uses_diffusion(model):
            return False
        from rip.inpainters.diffusion import guidance_acts_on_empty_prompt

        return guidance_acts_on_empty_prompt(self.loaded[model].pipeline)

    def check(self, space: SearchSpace, base: RunConfig) -> None:
        """Raise ValueError, before any trial starts, when guidance is searched but changes no trial's
        images, or when a loaded model cannot run a combination of the searched schedulers, steps and
        strengths (the ends of ranges)."""
        models = space.values("model", base)
        if "guidance" in space.names and not base.prompt and not any(map(self.guided_without_prompt, models)):
            raise ValueError(
                f"search space {space}: guidance has no effect with an empty prompt on {', '.join(models)} "
                "(Stable Diffusion inpainting: guidance is skipped); give --prompt TEXT"
            )
        names = ("model", "scheduler", "steps", "strength")
        for values in itertools.product(*(space.values(name, base) for name in names)):
            config = dataclasses.replace(base, **dict(zip(names, values)))
            if uses_diffusion(config.model):
                try:
                    self.inpainter(config)
                except ValueError as error:
                    raise ValueError(f"search space {space}: {error}") from error

    def inpainter(self, config: RunConfig) -> Inpainter:
        loaded = self.loaded[config.model]
        if not uses_diffusion(config.model):
            return loaded
        from rip.inpainters.diffusion import DiffusionInpainter, replace_scheduler

        pipeline = loaded.pipeline
        if config.scheduler is not None:
            pipeline = copy.copy(pipeline)  # shares the weights; the loaded pipeline keeps its scheduler
            replace_scheduler(pipeline, config.scheduler)
        return DiffusionInpainter(
            pipeline,
            name=loaded.name,
            files=loaded.files,
            tags=loaded.tags(),
            **call_options(config),
        )


@dataclass(frozen=True)
class TrialQueue:
    """Where a worker claims trials besides the one `work` hands out: the study's storage, its
    lock and its budget (see `rip.sweeps.workqueue`)."""

    storage: optuna.storages.RDBStorage
    lock: StudyLock
    n_trials: int


@dataclass
class _TrialRun:
    """A trial being computed: its configuration, MLflow run and reporter."""

    trial: optuna.Trial
    config: RunConfig
    run_id: str
    reporter: Reporter
    beat: object = None  # the heartbeat of a trial this worker claimed itself


@dataclass
class Objective:
    """Optuna's objective: run the trial's configuration under the study run and return its value.

    A configuration that a completed trial already ran is not run again: the trial takes over that
    trial's value and run (`REUSED_ATTR` names it) and creates no MLflow run of its own.

    With a `queue` (grid searches: the points do not depend on results), a trial whose images do
    not fill a batch brings more trials along, asked under the study's lock within the budget;
    those that share a pipeline call run in one engine (`run_together`), each still its own
    trial and run.
    """

    space: SearchSpace
    base: RunConfig
    target: Target
    backends: Backends
    metrics: Sequence[Metric]
    tracker: SearchTracker
    study_run_id: str
    study_name: str
    tracking_uri: str
    progress: bool = True
    queue: TrialQueue | None = None
    on_start: Callable | None = None  # sees each trial run once it exists (`rip.runner.Started`)

    def __call__(self, trial: optuna.Trial) -> float:
        config = self.space.suggest(trial, self.base, self.backends.guided_without_prompt)
        done = self._completed_with(config, trial.study)
        if done is not None:
            return self._reuse(trial, done)
        first = self._open(trial, config)
        companions = self._claim_companions(first) if self.queue is not None else []
        if not companions:
            return self._run_alone(first)
        return self._run_together([first, *companions])

    def _open(self, trial: optuna.Trial, config: RunConfig) -> _TrialRun:
        """The trial's MLflow run under the study run, and the reporter of its curve."""
        tags = {WORKER_TAG: worker_id()}
        if RETRY_ATTR in trial.user_attrs:
            tags[RETRY_TAG] = str(trial.user_attrs[RETRY_ATTR])
        run_id = self.tracker.open_trial_run(self.study_run_id, self.study_name, trial.number, tags)
        trial.set_user_attr(RUN_ATTR, run_id)
        trial.set_user_attr(WORKER_ATTR, tags[WORKER_TAG])
        reporter = Reporter(trial, self.target.key, _image_count(config),
                            lambda percent, mean: self.tracker.log_intermediate(run_id, percent, mean))
        return _TrialRun(trial, config, run_id, reporter)

    def _run_alone(self, run: _TrialRun) -> float:
        try:
            run_experiment(
                run.config,
                self.tracking_uri,
                inpainter=self.backends.inpainter(run.config),
                metrics=self.metrics,
                run_id=run.run_id,
                observer=run.reporter,
                progress=self.progress,
                on_start=self.on_start,
            )
        except Pruned as pruned:
            self.tracker.close_trial_run(run.run_id, "PRUNED")
            raise optuna.TrialPruned(str(pruned)) from None
        except BaseException:
            self.tracker.close_trial_run(run.run_id, "FAIL")
            raise
        value = self.target.value(run.reporter.curve)
        self.tracker.close_trial_run(run.run_id, "COMPLETE", value, self.study_run_id, run.trial.number)
        return value

    def _claim_companions(self, first: _TrialRun) -> list[_TrialRun]:
        """More trials (retries first, then the sampler's next points) until the images fill a
        batch or the budget is used; a proposal a completed trial already ran reuses its value."""
        study, queue = first.trial.study, self.queue
        images, companions = _image_count(first.config), []
        with queue.lock:
            while images < first.config.batch_size and next_step(study, queue.n_trials) == "run":
                trial = study.ask()
                beat = heartbeat(queue.storage, trial)
                beat.start()
                config = self.space.suggest(trial, self.base, self.backends.guided_without_prompt)
                done = self._completed_with(config, study)
                if done is not None:
                    study.tell(trial, self._reuse(trial, done))
                    beat.join()
                    continue
                run = self._open(trial, config)
                run.beat = beat
                companions.append(run)
                images += _image_count(config)
        return companions

    def _run_together(self, runs: list[_TrialRun]) -> float:
        """Compute the trials in one engine per pipeline call; tell the claimed ones their values
        and return the handed-out one's (the first)."""
        groups: dict[tuple, list[_TrialRun]] = {}
        for run in runs:
            groups.setdefault(pipeline_key(run.config), []).append(run)
        ended = set()
        try:
            for group in groups.values():
                run_together([run.config for run in group], self.tracking_uri,
                             inpainter=self.backends.inpainter(group[0].config), metrics=[self.metrics] * len(group),
                             run_ids=[run.run_id for run in group], observers=[run.reporter for run in group],
                             progress=self.progress, on_start=self.on_start)
                for run in group:
                    value = self.target.value(run.reporter.curve)
                    self.tracker.close_trial_run(run.run_id, "COMPLETE", value, self.study_run_id, run.trial.number)
                    if run.beat is not None:
                        self._tell(run, value)
                    ended.add(run.trial.number)
        except BaseException:
            for run in runs:
                if run.trial.number not in ended:
                    self.tracker.close_trial_run(run.run_id, "FAIL")
                    if run.beat is not None:
                        self._tell(run, None)
            raise
        return self.target.value(runs[0].reporter.curve)

    def _tell(self, run: _TrialRun, value: float | None) -> None:
        """End a claimed trial: COMPLETE with `value`, or FAIL without."""
        run.beat.join()
        with self.queue.lock:
            if value is None:
                run.trial.study.tell(run.trial, state=TrialState.FAIL)
                return
            study = run.trial.study
            study.tell(run.trial, value)
            best = study.best_trial  # `optimize` says this of its own trials; `tell` does not
            optuna.logging.get_logger("optuna.study.study").info(
                f"Trial {run.trial.number} finished with value: {value} and parameters: {run.trial.params}. "
                f"Best is trial {best.number} with value: {best.value}.")

    def _completed_with(self, config: RunConfig, study: optuna.Study) -> FrozenTrial | None:
        """The completed trial of `study` that ran `config`, if any."""
        for other in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if REUSED_ATTR not in other.user_attrs and dataclasses.replace(self.base, **other.params) == config:
                return other
        return None

    def _reuse(self, trial: optuna.Trial, done: FrozenTrial) -> float:
        """`done`'s value for `trial`, which proposes the same configuration; nothing is computed."""
        trial.set_user_attr(REUSED_ATTR, done.number)
        trial.set_user_attr(RUN_ATTR, done.user_attrs.get(RUN_ATTR))
        trial.set_user_attr(WORKER_ATTR, worker_id())
        retrying, client = self.tracker.retrying, self.tracker.client
        retrying(client.log_metric, self.study_run_id, "trial_value", done.value, step=trial.number)
        return done.value


def _image_count(config: RunConfig) -> int:
    return len(resolve_image_set(config.images, config.seed))
