"""The `rip` command line."""

import copy
import dataclasses
import os
import re
import sys

import click

from analysis.cli import analyze, export
from rip import artefacts
from rip.config import DTYPES, RANDOM_NUMBERS, RESAMPLING_FILTERS, RunConfig, parse_metrics
from rip.demo.cli import demo
from rip.failures import USER_ERRORS, sigterm_interrupts
from rip.protocol.masks import MASK_ORDERS
from rip.sweeps.cli import sweep
from rip.sweeps.launch import submit
from rip.tuning.cli import tune_command


class _Optional(click.ParamType):
    """A number or an empty string, which means: the pipeline's default."""

    def __init__(self, kind: type):
        self.kind = kind
        self.name = f"{kind.__name__}-or-empty"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, self.kind):
            return value
        if str(value).strip().lower() in ("", "none", "default"):
            return None
        try:
            return self.kind(value)
        except ValueError:
            self.fail(f"{value!r} is not a valid {self.kind.__name__}", param, ctx)


DEFAULTS = RunConfig()


class _Commands(click.Group):
    """Tracking-server errors that reach the top become one clear message."""

    def invoke(self, ctx):
        from mlflow.exceptions import MlflowException

        try:
            return super().invoke(ctx)
        except MlflowException as error:
            raise click.ClickException(_tracking_error(error.message)) from error


def _tracking_error(message: str) -> str:
    """A tracking-server error in one line; an unreachable server named with the reason."""
    request = re.search(r"API request to (\w+://[^/\s]+)\S* failed with exception", message)
    reason = re.findall(r"\[Errno -?\d+\] ([^'\")]+)", message)
    if request and reason:
        return (f"cannot reach the MLflow tracking server at {request.group(1)}: {reason[-1].strip()} "
                "(is it running? MLFLOW_TRACKING_URI or --tracking-uri chooses the server)")
    return f"MLflow tracking server: {message}"


@click.group(cls=_Commands)
def main():
    """Recursive inpainting experiments tracked with MLflow."""
    # retries through outages are ours (see rip.tracking.resilience), bounded by --outage-limit
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    from rip.tracking.store import use_local_stores
    from rip.tracking.ui import print_own_addresses

    print_own_addresses()

    use_local_stores()  # SQLite stores: created under a lock, artifacts beside the file


@main.command()
@click.option("--mask", type=int, default=DEFAULTS.mask, show_default=True, help="Side of the inpainted square (px).")
@click.option("--images", default=DEFAULTS.images, show_default=True,
              help="sample, a folder, FOLDER:N, wikiart:N or hf:OWNER/NAME[:SPLIT]:N; SET/M for M of SET's images.")
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True)
@click.option("--percent", type=int, default=DEFAULTS.percent, show_default=True, help="Percent of pixels to inpaint.")
@click.option("--step", type=int, default=DEFAULTS.step, show_default=True, help="Measure every STEP percent.")
@click.option("--size", type=int, default=DEFAULTS.size, show_default=True, help="Letterboxed image side (px).")
@click.option("--model", default=DEFAULTS.model, show_default=True, help="Diffusers id or folder, tiny, telea, ns, biharmonic.")
@click.option("--model-revision", default=DEFAULTS.model_revision,
              help=f"Commit, branch or tag of a hub --model [default: {artefacts.STUDY_MODEL.revision} for "
                   f"{artefacts.STUDY_MODEL.id}, "
                   "the repository's default branch for other models].")
@click.option("--metrics", default=",".join(DEFAULTS.metrics), show_default=True, help="Comma-separated metric names.")
@click.option("--complexity", type=bool, default=DEFAULTS.complexity, show_default=True,
              help="Log the complexity of each generation inside the picture (PNG bits per pixel, edges, entropy, ...).")
@click.option("--steps", type=_Optional(int), default=None, help="num_inference_steps [default: the pipeline's].")
@click.option("--guidance", type=_Optional(float), default=None, help="guidance_scale [default: the pipeline's].")
@click.option("--strength", type=_Optional(float), default=None, help="strength [default: the pipeline's].")
@click.option("--prompt", default=DEFAULTS.prompt, help="Text prompt [default: empty, as in the study].")
@click.option("--paste-back", type=bool, default=DEFAULTS.paste_back, show_default=True, help="Restore unmasked pixels exactly.")
@click.option("--mask-order", type=click.Choice(MASK_ORDERS), default=DEFAULTS.mask_order, show_default=True)
@click.option("--scheduler", default="", help="Replace the model's scheduler (ddim, pndm, euler, ...).")
@click.option("--random-numbers", type=click.Choice(RANDOM_NUMBERS), default=DEFAULTS.random_numbers, show_default=True,
              help="independent: runs of different conditions draw independently (the study); "
                   "common: they share squares and noise (paired comparisons).")
@click.option("--pad-color", default=DEFAULTS.pad_color, show_default=True,
              help="Colour of the letterbox bands (a name or #RRGGBB).")
@click.option("--resample", type=click.Choice(RESAMPLING_FILTERS), default=DEFAULTS.resample, show_default=True,
              help="Filter that scales images to --size.")
@click.option("--dtype", type=click.Choice(DTYPES), default=DEFAULTS.dtype, show_default=True,
              help="Model precision; auto: on CUDA bf16 for FLUX.1, fp16 for other models; fp32 elsewhere.")
@click.option("--skip-guidance", type=bool, default=DEFAULTS.skip_guidance, show_default=True,
              help="Skip classifier-free guidance with an empty prompt (same result, half the work); "
                   "false runs the pipeline's exact default call.")
@click.option("--safety-checker", type=bool, default=DEFAULTS.safety_checker, show_default=True,
              help="Run the model's safety checker; a flagged output fails its image.")
@click.option("--batch-size", type=int, default=DEFAULTS.batch_size, show_default=True, help="Images per pipeline call.")
@click.option("--compile", type=bool, default=DEFAULTS.compile, show_default=True,
              help="torch.compile the UNet and VAE decoder, every call padded to --batch-size (same results within float tolerance).")
@click.option("--channels-last", type=bool, default=DEFAULTS.channels_last, show_default=True,
              help="Channels-last memory layout of the UNet and VAE (same results within float tolerance).")
@click.option("--fuse-qkv", type=bool, default=DEFAULTS.fuse_qkv, show_default=True,
              help="Fused query/key/value attention projections (same results within float tolerance).")
@click.option("--system-metrics", type=bool, default=DEFAULTS.system_metrics, show_default=True,
              help="Log CPU, memory, disk, network and (with nvidia-ml-py) GPU use on the configuration run while it "
                   "runs, every 2 s ($MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL).")
@click.option("--animation", type=bool, default=DEFAULTS.animation, show_default=True,
              help="Log each image run's checkpoints as an animated WebP, animation.webp (a few tens of kB).")
@click.option("--device", default=DEFAULTS.device, show_default=True, help="auto, cpu, cuda or mps.")
@click.option("--experiment", default=DEFAULTS.experiment, help="MLflow experiment name.")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI [default: $MLFLOW_TRACKING_URI].")
@click.option("--resume", "resume_run", default="", help="Continue this interrupted parent run (its id).")
@click.option("--outage-limit", type=float, default=600.0, show_default=True,
              help="Seconds the tracking server may stay unreachable before the run fails.")
@click.pass_context
def run(ctx, tracking_uri, resume_run, outage_limit, metrics, scheduler, **options):
    """Run one (image set, mask size, seed) configuration as one MLflow run."""
    import mlflow
    from mlflow import MlflowClient

    from rip.runner import ImagesFailedError, StopRun, run_experiment
    from rip.tracking.resume import find_unfinished, mark_launcher
    from rip.tracking.ui import above_progress, where_to_look

    config = RunConfig(metrics=parse_metrics(metrics), scheduler=scheduler or None, **options)
    given = [name for name in RUN_FIELDS if ctx.get_parameter_source(name) in EXPLICIT]
    client = MlflowClient(tracking_uri or mlflow.get_tracking_uri())
    project_run = os.environ.get("MLFLOW_RUN_ID") or None
    shown = {}

    def announce(started):
        experiment = client.get_experiment(started.experiment_id).name
        shown.update(lines=where_to_look(client.tracking_uri, started.experiment_id, started.run_id, started.run_name),
                     run=f"run {started.run_name} ({started.run_id})")
        if started.resumed_from is None:
            above_progress(f"experiment {experiment}: {shown['run']}")
        else:
            above_progress(f"experiment {experiment}: resuming {shown['run']} from {started.resumed_from:g} %, "
                           f"{started.images_left} of {started.images} images to go")
        above_progress("\n".join(shown["lines"]))

    try:
        if resume_run and project_run and project_run != resume_run:
            # `mlflow run -P resume=ID` made a new run: it only launches the resumed one
            mark_launcher(client, project_run, resume_run)
            project_run = None
        if not resume_run and not project_run:
            resume_run = _offer_resume(find_unfinished(client, config))
        with sigterm_interrupts():
            run_id = run_experiment(config, tracking_uri=client.tracking_uri, run_id=project_run,
                                    resume_run=resume_run or None, given=given, outage_limit=outage_limit,
                                    on_start=announce)
    except (*USER_ERRORS, ImagesFailedError) as error:
        raise click.ClickException("\n".join([str(error), *shown.get("lines", [])[:1]])) from error
    except (KeyboardInterrupt, StopRun) as error:
        run_id = getattr(error, "run_id", "RUN_ID")
        cause = str(error) or type(error).__name__
        click.echo(f"stopped by {cause}: run {run_id} is marked KILLED; "
                   f"continue it with `rip run --resume {run_id}`", err=True)
        if shown:
            click.echo(shown["lines"][0], err=True)
        ctx.exit(130)
    click.echo(f"{shown['run']} finished")


RUN_FIELDS = [field.name for field in dataclasses.fields(RunConfig)]
EXPLICIT = (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)


def _offer_resume(unfinished: str | None) -> str | None:
    """Ask (on a terminal) whether to resume an unfinished run of the same configuration."""
    if unfinished is None:
        return None
    message = f"run {unfinished} of this configuration is unfinished"
    if sys.stdin.isatty() and click.confirm(f"{message}; resume it?", default=True):
        return unfinished
    click.echo(f"{message}; starting a new run (resume it with `rip run --resume {unfinished}`)", err=True)
    return None


def prefetch_command(run: click.Command) -> click.Command:
    """`rip prefetch`: a preset's configurations, or the one `run`'s options describe."""
    options = [copy.copy(param) for param in run.params if param.name in RUN_FIELDS]
    preset = click.Argument(["preset"], required=False)
    overrides = click.Option(["--set", "overrides"], multiple=True, metavar="KEY=VALUE",
                             help="Override a preset entry, as `rip sweep --set` does.")
    features = click.Option(["--features"], type=click.Choice(["inception", "none"]), default="none", show_default=True,
                            help="Also fetch the feature network of `rip analyze --features` (inception: the FID "
                                 "Inception-v3 weights).")
    return click.Command("prefetch", callback=click.pass_context(_prefetch),
                         params=[preset, overrides, features, *options],
                         help=_prefetch.__doc__, short_help="Fetch what runs need ahead of time; check offline.")


def _prefetch(ctx, preset, overrides, features, metrics, scheduler, **options):
    """Fetch what the runs of PRESET (or of `rip run`'s options) download — the model at its revision
    in the variant its dtype loads, LPIPS's backbones, the drawn dataset rows — into the standard
    caches, then check that the runs start without network (HF_HUB_OFFLINE=1).

    `--features inception` fetches the FID Inception-v3 weights that `rip analyze` embeds
    generations with. A second call fetches nothing. With --device auto on a machine without CUDA, both the fp16
    files a GPU loads and the fp32 ones are fetched; --device cuda fetches only the former.
    """
    from rip.sweeps.presets import check, expand, find_preset, load_preset, parse_overrides

    try:
        if preset:
            given = {name: options[name] for name in options if ctx.get_parameter_source(name) in EXPLICIT}
            if ctx.get_parameter_source("metrics") in EXPLICIT:
                given["metrics"] = metrics
            if ctx.get_parameter_source("scheduler") in EXPLICIT:
                given["scheduler"] = scheduler or None
            path = find_preset(preset)
            configs = expand({**load_preset(path), **given, **parse_overrides(overrides)})
            click.echo(f"{path}: {len(configs)} configuration(s)")
        elif overrides:
            raise ValueError("--set overrides a preset's entries: name a PRESET, or give `rip run` options")
        else:
            configs = [RunConfig(metrics=parse_metrics(metrics), scheduler=scheduler or None, **options)]
        check(configs, resolve_images=False)
        from rip.prefetch import prefetch

        prefetch(configs, echo=click.echo, features=[features])
    except USER_ERRORS as error:
        raise click.ClickException(str(error)) from error


main.add_command(analyze)
main.add_command(export)
main.add_command(demo)
main.add_command(prefetch_command(run))  # takes `run`'s configuration options
main.add_command(submit)
main.add_command(sweep)
main.add_command(tune_command(run))  # takes `run`'s configuration options
