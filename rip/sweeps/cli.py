"""`rip sweep`: every configuration of a preset, in one process or shared by workers through a queue."""

import uuid

import click
from tqdm.auto import tqdm

from rip.failures import USER_ERRORS, sigterm_interrupts
from rip.sweeps.presets import check, describe, expand, find_preset, load_preset, parse_overrides
from rip.sweeps.units import DEFAULT_CHUNK_SIZE
from rip.tracking.tags import SWEEP_ID_TAG, SWEEP_TAG


@click.command()
@click.argument("preset")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a preset entry (YAML value, lists expand), e.g. --set images=sample:2.")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI [default: $MLFLOW_TRACKING_URI].")
@click.option("--dry-run", is_flag=True, help="List the configurations and check them; run nothing.")
@click.option("--storage", default=None,
              help="Share the sweep between workers through this Optuna storage (sqlite:///FILE, or "
                   "postgresql://USER@HOST/DB for many machines): run the same command on every GPU.")
@click.option("--chunk-size", type=int, default=None,
              help=f"With --storage: images per unit of work [default: {DEFAULT_CHUNK_SIZE}].")
@click.option("--status", is_flag=True, help="With --storage: show the sweep's progress; run nothing.")
@click.option("--heartbeat-interval", type=int, default=60, show_default=True,
              help="With --storage: seconds between a running unit's heartbeats.")
@click.option("--grace-period", type=int, default=None,
              help="With --storage: seconds without heartbeat before a unit is retried [default: 2 intervals].")
@click.option("--max-retries", type=int, default=3, show_default=True,
              help="With --storage: retries of a unit whose worker died or stopped.")
def sweep(preset, overrides, tracking_uri, dry_run, storage, chunk_size, status, **queue):
    """Run every configuration of PRESET (a shipped preset's name, e.g. demo, or a file) as one MLflow run each.

    With --storage, the sweep is a queue of units (a configuration, a chunk of its images) that
    every worker started with the same command shares.
    """
    try:
        path = find_preset(preset)
        _check_queue_options(storage, chunk_size, status, **queue)
        entries = {**load_preset(path), **parse_overrides(overrides)}
        configs = expand(entries)
        click.echo(f"{path}: {len(configs)} configuration(s)")
        if dry_run:
            for index, config in enumerate(configs, 1):
                click.echo(f"  {index}. {describe(config)}")
        check(configs, resolve_images=not dry_run and not status)
        if dry_run:
            click.echo("all configurations are valid")
            return
        if storage:
            return _shared_sweep(path.stem, configs, storage, chunk_size or DEFAULT_CHUNK_SIZE, status,
                                 tracking_uri, **queue)
        from rip.sweeps.local import run_sweep  # loads the inpainting stack: not for --dry-run

        tags = {SWEEP_TAG: path.stem, SWEEP_ID_TAG: uuid.uuid4().hex[:12]}
        with sigterm_interrupts():
            run_ids = run_sweep(configs, tracking_uri, tags=tags, echo=tqdm.write)  # above the progress bar
    except USER_ERRORS as error:
        raise click.ClickException(str(error)) from error
    except KeyboardInterrupt as error:
        stopped = getattr(error, "run_ids", [])
        click.echo(f"stopped by {error or 'KeyboardInterrupt'}"
                   + "".join(f"\n  run {run_id} is marked KILLED: continue it with `rip run --resume {run_id}`"
                             for run_id in stopped), err=True)
        raise SystemExit(130) from None
    click.echo(f"sweep {tags[SWEEP_ID_TAG]} ({path.stem}): {len(run_ids)} run(s) finished")


def _check_queue_options(storage, chunk_size, status, heartbeat_interval, grace_period, max_retries) -> None:
    """ValueError naming the first bad option of a shared sweep."""
    if not storage:
        given = [name for name, value in (("--chunk-size", chunk_size), ("--status", status)) if value]
        if given:
            raise ValueError(f"{' and '.join(given)} need(s) --storage")
        return
    from rip.sweeps.workqueue import check_storage_url

    check_storage_url(storage)
    for name, value in (("--chunk-size", chunk_size), ("--heartbeat-interval", heartbeat_interval),
                        ("--grace-period", grace_period)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")
    if max_retries < 0:
        raise ValueError(f"--max-retries must not be negative, got {max_retries}")


def _shared_sweep(name, configs, storage, chunk_size, status, tracking_uri, **queue) -> None:
    """One worker of the sweep in `storage`, or its status."""
    import optuna

    from rip.images import resolve_image_set
    from rip.sweeps.local import run_order
    from rip.sweeps.units import SweepPlan, status_lines
    from rip.sweeps.worker import where_runs_are, work_on_sweep
    from rip.sweeps.workqueue import connect, shown

    ordered = run_order(configs)
    counts = [len(resolve_image_set(config.images, config.seed)) for config in ordered]
    plan = SweepPlan(name, tuple(ordered), tuple(counts), chunk_size)
    if status:
        loaded, lock = connect(storage, plan.study_name, queue["heartbeat_interval"], queue["grace_period"], None)
        lock.close()
        try:
            study = optuna.load_study(study_name=plan.study_name, storage=loaded)
        except KeyError:
            raise ValueError(f"no sweep {plan.study_name} in {shown(storage)}: no worker of this preset "
                             f"(with chunk size {chunk_size}) has started") from None
        click.echo("\n".join(status_lines(study, plan, describe)))
        addresses = where_runs_are(study, plan, tracking_uri)  # after the status, should the server be away
        if addresses:
            click.echo("\n".join(addresses))
        return
    tags = {SWEEP_TAG: name}
    try:
        with sigterm_interrupts():
            study = work_on_sweep(plan, storage, tracking_uri, tags=tags, echo=tqdm.write, **queue)  # above the bar
    except KeyboardInterrupt as error:
        click.echo(f"stopped by {error or 'KeyboardInterrupt'}: the unit in progress is queued again; "
                   "the same command continues the sweep", err=True)
        raise SystemExit(130) from None
    click.echo("\n".join(status_lines(study, plan, describe)))
