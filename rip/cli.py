"""The `rip` command line."""

import os

import click

from rip.config import RunConfig, parse_metrics
from rip.inpainters.base import ModelUnavailableError
from rip.masks import MASK_ORDERS


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


@click.group()
def main():
    """Recursive inpainting experiments tracked with MLflow."""


@main.command()
@click.option("--mask", type=int, default=DEFAULTS.mask, show_default=True, help="Side of the inpainted square (px).")
@click.option("--images", default=DEFAULTS.images, show_default=True, help="sample, a folder, FOLDER:N or wikiart:N.")
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True)
@click.option("--percent", type=int, default=DEFAULTS.percent, show_default=True, help="Percent of pixels to inpaint.")
@click.option("--step", type=int, default=DEFAULTS.step, show_default=True, help="Measure every STEP percent.")
@click.option("--size", type=int, default=DEFAULTS.size, show_default=True, help="Letterboxed image side (px).")
@click.option("--model", default=DEFAULTS.model, show_default=True, help="Diffusers id or folder, tiny, telea, ns, biharmonic.")
@click.option("--metrics", default=",".join(DEFAULTS.metrics), show_default=True, help="Comma-separated metric names.")
@click.option("--steps", type=_Optional(int), default=None, help="num_inference_steps [default: the pipeline's].")
@click.option("--guidance", type=_Optional(float), default=None, help="guidance_scale [default: the pipeline's].")
@click.option("--strength", type=_Optional(float), default=None, help="strength [default: the pipeline's].")
@click.option("--prompt", default=DEFAULTS.prompt, help="Text prompt [default: empty, as in the study].")
@click.option("--paste-back", type=bool, default=DEFAULTS.paste_back, show_default=True, help="Restore unmasked pixels exactly.")
@click.option("--mask-order", type=click.Choice(MASK_ORDERS), default=DEFAULTS.mask_order, show_default=True)
@click.option("--scheduler", default="", help="Replace the model's scheduler (ddim, pndm, euler, ...).")
@click.option("--batch-size", type=int, default=DEFAULTS.batch_size, show_default=True, help="Images per pipeline call.")
@click.option("--device", default=DEFAULTS.device, show_default=True, help="auto, cpu, cuda or mps.")
@click.option("--experiment", default=DEFAULTS.experiment, help="MLflow experiment name.")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI [default: $MLFLOW_TRACKING_URI].")
def run(tracking_uri, metrics, scheduler, **options):
    """Run one (image set, mask size, seed) configuration as one MLflow run."""
    from rip.metrics import MetricUnavailableError
    from rip.runner import run_experiment

    config = RunConfig(metrics=parse_metrics(metrics), scheduler=scheduler or None, **options)
    try:
        run_id = run_experiment(config, tracking_uri=tracking_uri, run_id=os.environ.get("MLFLOW_RUN_ID"))
    except (ValueError, ModelUnavailableError, MetricUnavailableError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"run {run_id} finished")
