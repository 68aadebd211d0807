"""`rip tune`: one worker of a search. Start it on as many machines as the study should use."""

import copy
import dataclasses
from collections import Counter

import click

from rip.config import RunConfig, parse_metrics
from rip.failures import USER_ERRORS
from rip.tuning.settings import OBJECTIVES, PRUNERS, SAMPLERS, SearchSettings

CONFIG_FIELDS = tuple(field.name for field in dataclasses.fields(RunConfig))
DEFAULTS = SearchSettings()


class _OptionalInt(click.ParamType):
    """An integer, or an empty string for the default (as MLproject passes an unset value)."""

    name = "int-or-empty"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, int) or str(value).strip() == "":
            return value if isinstance(value, int) else None
        try:
            return int(value)
        except ValueError:
            self.fail(f"{value!r} is not a valid integer", param, ctx)


SEARCH_OPTIONS = [
    click.Option(["--space"], default=DEFAULTS.space,
                 help="Searched parameters, e.g. 'mask=64,128,256 steps=10:50:log paste_back' "
                      "[default: all the model can use]."),
    click.Option(["--objective"], type=click.Choice(OBJECTIVES), default=DEFAULTS.objective, show_default=True,
                 help="final: mean over images at the last percent; auc: mean over the whole curve."),
    click.Option(["--objective-metric"], default=DEFAULTS.objective_metric,
                 help="Metric to optimise, e.g. lpips-vgg or lpips_vgg "
                      "[default: lpips-vgg if measured, else the first of --metrics]."),
    click.Option(["--n-trials"], type=_OptionalInt(), default=None,
                 help="Trials of the whole study, over all workers [default: 20; grid: every point]."),
    click.Option(["--sampler"], type=click.Choice(SAMPLERS), default=DEFAULTS.sampler, show_default=True),
    click.Option(["--sampler-seed"], type=_OptionalInt(), default=None,
                 help="Seed of the sampler: the same seed gives the same trials [default: random]."),
    click.Option(["--pruner"], type=click.Choice(PRUNERS), default=DEFAULTS.pruner, show_default=True,
                 help="Ends hopeless trials early; grid studies run every point to the end."),
    click.Option(["--pruner-startup-trials"], type=int, default=DEFAULTS.pruner_startup_trials, show_default=True,
                 help="Trials that finish before the median pruner prunes any."),
    click.Option(["--storage"], default=DEFAULTS.storage, show_default=True,
                 help="Optuna storage: sqlite:///FILE, or postgresql://USER@HOST/DB for many machines."),
    click.Option(["--study-name"], default=DEFAULTS.study_name, show_default=True),
    click.Option(["--heartbeat-interval"], type=int, default=DEFAULTS.heartbeat_interval, show_default=True,
                 help="Seconds between a running trial's heartbeats."),
    click.Option(["--grace-period"], type=_OptionalInt(), default=None,
                 help="Seconds without heartbeat before a trial is retried [default: 2 heartbeat intervals]."),
    click.Option(["--max-retries"], type=int, default=DEFAULTS.max_retries, show_default=True,
                 help="Retries of a trial whose worker died."),
    click.Option(["--output"], default=DEFAULTS.output, show_default=True,
                 help="Folder for the summary (OUTPUT/STUDY_NAME)."),
]


def tune_command(run: click.Command) -> click.Command:
    """`rip tune`: the configuration options of `rip run` (`run`) fix what is not searched."""
    fixed = [copy.copy(param) for param in run.params if param.name in CONFIG_FIELDS + ("tracking_uri",)]
    return click.Command("tune", callback=_tune, params=fixed + SEARCH_OPTIONS, help=_tune.__doc__)


def _tune(tracking_uri, **options):
    """Search the run parameters that keep recursive inpainting stable (one worker of a study).

    Every trial runs one configuration, nested under the study's MLflow run. Workers started with
    the same --storage and --study-name share the study; --n-trials caps the study's total.
    """
    from rip.tuning.space import parse_space

    fixed = {name: options.pop(name) for name in CONFIG_FIELDS}
    fixed.update(metrics=parse_metrics(fixed["metrics"]), scheduler=fixed["scheduler"] or None)
    try:
        base, settings = RunConfig(**fixed), SearchSettings(**options).validate()
        parse_space(settings.space, base)  # fail fast, before the heavy imports
        from rip.tracking.ui import above_progress
        from rip.tuning.objective import REUSED_ATTR
        from rip.tuning.search import run_search

        study, summary = run_search(base, settings, tracking_uri, echo=above_progress)
    except USER_ERRORS as error:
        raise click.ClickException(str(error)) from error
    except KeyboardInterrupt:
        click.echo("stopped; the same command continues the study", err=True)
        raise SystemExit(130) from None
    states = Counter(trial.state.name.lower() for trial in study.get_trials(deepcopy=False))
    summary_of_states = ", ".join(f"{count} {state}" for state, count in sorted(states.items()))
    click.echo(f"study {study.study_name}: {states.total()} trials ({summary_of_states})")
    reused = sum(REUSED_ATTR in trial.user_attrs for trial in study.get_trials(deepcopy=False))
    if reused:
        click.echo(f"{reused} trial(s) proposed the configuration of a completed trial and reused its value")
    if summary is None:
        click.echo("the summary was written by another worker, to the study's MLflow run")
    elif summary.best is None:
        click.echo("no trial completed")
    else:
        best = summary.best
        click.echo(f"best: trial {best['trial']}, {study.direction.name.lower()}d value {best['value']:.6g}, "
                   f"run {best['run_id']}")
        for name, value in best["params"].items():
            click.echo(f"  {name} = {value!r}")
        click.echo(f"summary: {options['output']}/{study.study_name}")
