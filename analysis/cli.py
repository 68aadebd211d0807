"""`rip analyze`: a tracking server's runs -> the study's figures, tables and statistics."""

import logging
import os
from pathlib import Path

import click

from analysis.rules import Rules
from rip.tracking.ui import print_own_addresses


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
@click.option("--features", type=click.Choice(["inception", "stlpips-vgg", "none"]), default="inception",
              show_default=True,
              help="Feature network of the collection's KID, FID, precision, recall, density, coverage (inception: "
                   "the standard FID space, fetched by `rip prefetch --features inception`; stlpips-vgg: works "
                   "offline, not the standard space); none: no collection measures (diversity, cross-run distance).")
@click.option("--dpi", type=click.IntRange(min=30, max=2400), default=300, show_default=True,
              help="Resolution of the PNG figures (SVG and PDF are vector).")
@click.option("--log/--no-log", "log_run", default=True, show_default=True,
              help="Log the outputs as artifacts of an analysis run (tag rip.kind=analysis).")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=Rules.alpha,
              show_default=True, help="Chance of any false 'holds' in the verdict table (adjusted p-values).")
@click.option("--min-effect", type=click.FloatRange(0, 1, max_open=True), default=Rules.min_effect, show_default=True,
              help="Smallest relative change a verdict calls real (0.05: 5 % of the distance).")
@click.option("--agreement-rho", type=click.FloatRange(-1, 1, min_open=True, max_open=True), default=Rules.agreement_rho,
              show_default=True,
              help="Spearman rho above which two networks rank the images alike ('strong' from 0.7).")
@click.option("--large-cv", type=click.FloatRange(min=0, min_open=True), default=Rules.large_cv, show_default=True,
              help="Coefficient of variation across images above which their spread is called significant.")
def analyze(tracking_uri, experiments, filters, metrics, output, include_unfinished, metric, filmstrips, features, dpi,
            log_run, alpha, min_effect, agreement_rho, large_cv):
    """Turn recorded runs into figures, a summary table, statistics and verdicts on the study's findings."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    print_own_addresses()
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from analysis.collection import collect
    from analysis.features import FeaturesUnavailableError, ensure_features
    from analysis.frames import metric_key
    from analysis.links import run_url
    from analysis.load import AnalysisError, finished_runs, load_results
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
            # every run, unfinished ones too: the verdicts count their images (figures and tables leave them out)
            frame = load_results(client=client, experiments=experiments, filters=filters, metrics=keys,
                                 include_unfinished=True)
            shown = frame if include_unfinished else finished_runs(frame)
            if metric and metric_key(metric) not in set(shown["metric"]):
                raise AnalysisError(f"metric {metric!r} not in the loaded runs: {', '.join(sorted(shown['metric'].unique()))}")
        except AnalysisError as error:
            raise click.ClickException(str(error)) from error
        except MlflowException as error:  # e.g. no server at that address
            raise click.ClickException(f"cannot read runs from {client.tracking_uri}: {error.message}") from error
        if features != "none":  # before anything is written or logged
            try:
                ensure_features(features)
            except FeaturesUnavailableError as error:
                raise click.ClickException(str(error)) from error
        rules = Rules(alpha=alpha, min_effect=min_effect, agreement_rho=agreement_rho, large_cv=large_cv)
        collection = collect(client, shown, features) if features != "none" else None
        written = write_report(frame, output, client, filmstrips=filmstrips, metric=metric_key(metric) or None, dpi=dpi,
                               rules=rules, include_unfinished=include_unfinished, collection=collection)
        click.echo(f"{shown['run_id'].nunique()} image runs analysed; {len(written)} files in {Path(output)}")
        if log_run:
            params = {"experiments": ",".join(experiments), "filters": ";".join(filters), "metrics": metrics,
                      "include_unfinished": str(include_unfinished).lower(), "metric": metric, "features": features, "dpi": str(dpi),
                      "alpha": str(alpha), "min_effect": str(min_effect), "agreement_rho": str(agreement_rho),
                      "large_cv": str(large_cv)}
            measures = {"set_values_computed": collection.computed} if collection is not None else {}
            run = log_analysis_run(client, output, shown, params, measures=measures)
            address = run_url(client.tracking_uri, run.info.experiment_id, run.info.run_id)
            click.echo(f"analysis run {run.info.run_id} holds the outputs as artifacts (report.html)"
                       + (f": {address}" if address else ""))
    finally:
        logger.removeHandler(handler)


@click.command("export", short_help="A study's image runs as a folder that 🤗 datasets loads; --push-to-hub.")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--tracking-uri", default=None, help="MLflow tracking URI [default: $MLFLOW_TRACKING_URI].")
@click.option("--experiment", "experiments", multiple=True,
              help="Experiment to export (repeatable) [default: every experiment].")
@click.option("--filter", "filters", multiple=True, help="As `rip analyze --filter`: KEY=VALUE or KEY!=VALUE on a "
                                                        "parameter or tag (tags.NAME); A|B; repeatable or ';'-separated.")
@click.option("--push-to-hub", "repo", default="", metavar="REPO",
              help="Then upload OUT as Hugging Face dataset REPO (OWNER/NAME; needs HF_TOKEN or `hf auth login`).")
@click.option("--private", is_flag=True, help="With --push-to-hub: create REPO private.")
def export(out, tracking_uri, experiments, filters, repo, private):
    """Write the FINISHED image runs as a dataset in folder OUT that 🤗 datasets loads as it is,
    `datasets.load_dataset(OUT)`: one row per (image run, checkpoint) with the run's parameters, the
    image's labels, every metric and the generation; the originals (configuration "originals"); a
    dataset card."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from analysis.dataset_card import dataset_card
    from analysis.export import ExportError, export_runs, hub_token_missing, push_to_hub
    from analysis.load import AnalysisError

    if repo and (missing := hub_token_missing()):
        raise click.ClickException(missing)
    client = MlflowClient(tracking_uri)
    experiments = [name for name in experiments if name.strip()]
    command = " ".join(["rip export", *(f"--experiment {name}" for name in experiments),
                        *(f"--filter '{text}'" for text in filters), out])
    try:
        exported = export_runs(client, out, experiments, filters)
    except (AnalysisError, ExportError) as error:
        raise click.ClickException(str(error)) from error
    except MlflowException as error:
        raise click.ClickException(f"cannot read runs from {client.tracking_uri}: {error.message}") from error
    (Path(out) / "README.md").write_text(dataset_card(exported, command=command, tracking_uri=client.tracking_uri),
                                         encoding="utf-8")
    click.echo(f"{exported.rows} generations of {len(exported.runs)} image runs and {len(exported.originals)} "
               f"originals in {out}: datasets.load_dataset({str(out)!r})")
    if repo:
        click.echo(f"uploaded to {push_to_hub(Path(out), repo, private)}")
