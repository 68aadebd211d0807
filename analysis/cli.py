"""`rip analyze`: a tracking server's runs -> the study's figures, tables and statistics."""

import logging
import os
from pathlib import Path

import click


class _EchoHandler(logging.Handler):
    """Loader and report warnings as plain lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"{record.levelname.lower()}: {record.getMessage()}", err=True)


@click.command()
@click.option("--tracking-uri", default=None, help="MLflow tracking URI [default: $MLFLOW_TRACKING_URI].")
@click.option("--experiment", "experiments", multiple=True,
              help="Experiment to analyse (repeatable) [default: every experiment].")
@click.option("--filter", "filters", multiple=True,
              help="KEY=VALUE or KEY!=VALUE on a parameter (mask=64) or tag (tags.rip.backend=telea); "
                   "A|B for alternatives; repeatable or ';'-separated.")
@click.option("--metrics", default="", help="Comma-separated metrics, lpips-vgg or lpips_vgg alike [default: every one logged]; "
                                       "coverage, depth and complexity are always kept.")
@click.option("--output", type=click.Path(file_okay=False), default="outputs/analysis", show_default=True,
              help="Folder for the outputs.")
@click.option("--include-unfinished", type=bool, default=False, show_default=True,
              help="Analyse runs that are not FINISHED too.")
@click.option("--metric", default="", help="Metric of the variability figure, ranking, label breakdown and "
                                           "filmstrips [default: lpips-vgg, else the first distance].")
@click.option("--filmstrips", type=int, default=3, show_default=True,
              help="Filmstrips per condition and mask, from the most to the least stable image (0: none).")
@click.option("--dpi", type=click.IntRange(min=30, max=2400), default=300, show_default=True,
              help="Resolution of the PNG figures (SVG and PDF are vector).")
@click.option("--log/--no-log", "log_run", default=True, show_default=True,
              help="Log the outputs as artifacts of an analysis run (tag rip.kind=analysis).")
def analyze(tracking_uri, experiments, filters, metrics, output, include_unfinished, metric, filmstrips, dpi, log_run):
    """Turn recorded runs into figures, a summary table and statistics."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from analysis.frames import metric_key
    from analysis.links import run_url
    from analysis.load import AnalysisError, load_results
    from analysis.record import log_analysis_run
    from analysis.report import write_report

    handler = _EchoHandler(logging.WARNING)
    logger = logging.getLogger("analysis")
    logger.addHandler(handler)
    try:
        client = MlflowClient(tracking_uri)
        experiments = [name for name in experiments if name.strip()]
        keys = [key.strip() for key in metrics.split(",") if key.strip()]
        try:
            frame = load_results(client=client, experiments=experiments, filters=filters, metrics=keys,
                                 include_unfinished=include_unfinished)
            if metric and metric_key(metric) not in set(frame["metric"]):
                raise AnalysisError(f"metric {metric!r} not in the loaded runs: {', '.join(sorted(frame['metric'].unique()))}")
        except AnalysisError as error:
            raise click.ClickException(str(error)) from error
        except MlflowException as error:  # e.g. no server at that address
            raise click.ClickException(f"cannot read runs from {client.tracking_uri}: {error.message}") from error
        written = write_report(frame, output, client, filmstrips=filmstrips, metric=metric_key(metric) or None, dpi=dpi)
        click.echo(f"{frame['run_id'].nunique()} image runs analysed; {len(written)} files in {Path(output)}")
        if log_run:
            params = {"experiments": ",".join(experiments), "filters": ";".join(filters), "metrics": metrics,
                      "include_unfinished": str(include_unfinished).lower(), "metric": metric, "dpi": str(dpi)}
            run = log_analysis_run(client, output, frame, params)
            address = run_url(client.tracking_uri, run.info.experiment_id, run.info.run_id)
            click.echo(f"analysis run {run.info.run_id} holds the outputs as artifacts (report.html)"
                       + (f": {address}" if address else ""))
    finally:
        logger.removeHandler(handler)
