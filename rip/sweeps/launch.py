"""`rip submit`: start the workers of a shared sweep or search as one Slurm job array, with submitit.

First, on the submitting machine, what the workers will download is fetched into the caches and
checked offline (`rip prefetch`), as compute nodes often have no internet. Each array task is one
worker on one GPU, running the given `rip` command (the same on every task). A worker is checkpointable: when Slurm preempts it or its time runs out, submitit
requeues the task, and the requeued worker rejoins the queue; the unit it was computing is
continued by whichever worker claims its retry. `--cluster local` runs the tasks as local
processes (submitit's local executor), for a workstation and for the tests.
"""

import click

SHARED_COMMANDS = ("sweep", "tune")


class Worker:
    """One array task: `rip ARGS...` in the task's own process; `command` is the `rip` group."""

    def __init__(self, command: click.Command, args: list[str]):
        self.command, self.args = command, list(args)

    def __call__(self, index: int) -> int:
        try:
            self.command.main(self.args, prog_name="rip", standalone_mode=False)
        except click.ClickException as error:
            raise RuntimeError(f"worker {index}: {error.format_message()}") from None
        return 0

    def checkpoint(self, index: int):
        """What submitit requeues after a preemption or a timeout: the same worker."""
        import submitit

        return submitit.helpers.DelayedSubmission(self, index)


def check_command(args: list[str]) -> None:
    """ValueError unless `args` is a sweep or search that workers can share."""
    if not args or args[0] not in SHARED_COMMANDS:
        raise ValueError(f"submit a shared command: {' or '.join(SHARED_COMMANDS)}, e.g. "
                         "`rip submit --workers 8 -- sweep replication --storage postgresql://rip@db/studies`")
    if not any(arg == "--storage" or arg.startswith("--storage=") for arg in args):
        raise ValueError(f"`rip {args[0]}` workers share their work only through --storage: give it one")
    for flag in ("--status", "--dry-run", "--help"):
        if flag in args:
            raise ValueError(f"{flag} runs no worker: run it directly, not through rip submit")


def configurations(root: click.Group, args: list[str]) -> list:
    """The configurations whose runs `rip ARGS...` (a sweep or a search) makes: a sweep's grid, or a
    search's fixed conditions with each model, image set and seed its space lists."""
    import dataclasses
    import itertools

    from rip.config import RunConfig, parse_metrics
    from rip.sweeps.presets import expand, find_preset, load_preset, parse_overrides
    from rip.tuning.space import parse_space

    command = root.commands[args[0]]
    with command.make_context(args[0], list(args[1:])) as ctx:
        params = ctx.params
    if args[0] == "sweep":
        return expand({**load_preset(find_preset(params["preset"])), **parse_overrides(params["overrides"])})
    fields = {field.name for field in dataclasses.fields(RunConfig)}
    options = {name: value for name, value in params.items() if name in fields}
    base = RunConfig(**{**options, "metrics": parse_metrics(options["metrics"]),
                        "scheduler": options["scheduler"] or None})
    space = parse_space(params["space"], base)
    searched = ("model", "images", "seed")  # what decides the downloads
    return [dataclasses.replace(base, **dict(zip(searched, values)))
            for values in itertools.product(*(space.values(name, base) for name in searched))]


def submit_workers(root: click.Command, args: list[str], workers: int, folder: str, cluster: str | None = None, *,
                   partition: str | None = None, timeout_min: int = 24 * 60, gpus_per_task: int = 1,
                   cpus_per_task: int = 8, mem_gb: int = 32) -> list:
    """Submit `workers` tasks of `rip ARGS...` (`root` is the `rip` group) as one job array; return submitit's jobs."""
    import submitit

    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    executor.update_parameters(
        name=f"rip-{args[0]}", nodes=1, tasks_per_node=1, gpus_per_node=gpus_per_task, cpus_per_task=cpus_per_task,
        mem_gb=mem_gb, timeout_min=timeout_min, slurm_array_parallelism=workers,
        slurm_additional_parameters={"requeue": True}, **({"slurm_partition": partition} if partition else {}),
    )
    return executor.map_array(Worker(root, args), range(workers))


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--workers", type=click.IntRange(min=1), required=True, help="Array tasks: one worker, one GPU each.")
@click.option("--cluster", type=click.Choice(["slurm", "local"]), default="slurm", show_default=True,
              help="local: run the tasks as processes of this machine.")
@click.option("--folder", default="outputs/submitit", show_default=True, help="Job scripts and logs.")
@click.option("--partition", default=None, help="Slurm partition.")
@click.option("--time", "timeout_min", type=click.IntRange(min=1), default=24 * 60, show_default=True,
              help="Minutes per task before it is requeued.")
@click.option("--gpus-per-task", type=click.IntRange(min=0), default=1, show_default=True)
@click.option("--cpus-per-task", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--mem-gb", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--wait", is_flag=True, help="Wait for every task to end and report each.")
@click.option("--prefetch/--no-prefetch", default=True, show_default=True,
              help="First fetch here what the workers download (model, LPIPS backbones, dataset rows) and check "
                   "that they start offline, as `rip prefetch` does; the caches must be shared with the nodes.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, required=True)
@click.pass_context
def submit(ctx, command, workers, cluster, folder, wait, prefetch, **resources):
    """Start WORKERS workers of COMMAND, a shared rip sweep or tune, as one job array.

    e.g. rip submit --workers 16 --partition gpu -- sweep replication --storage postgresql://rip@db/studies
    """
    try:
        check_command(list(command))
        if prefetch:
            from rip.prefetch import prefetch as fetch

            fetch(configurations(ctx.find_root().command, list(command)), echo=click.echo)
        jobs = submit_workers(ctx.find_root().command, list(command), workers, folder, cluster, **resources)
    except (ValueError, RuntimeError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"submitted {len(jobs)} worker(s) of `rip {' '.join(command)}`: job {jobs[0].job_id.split('_')[0]}, "
               f"logs in {folder}")
    if not wait:
        return
    failed = 0
    for index, job in enumerate(jobs):
        try:
            job.result()
            click.echo(f"worker {index} ({job.job_id}): done")
        except Exception as error:  # submitit re-raises the task's error with its traceback
            failed += 1
            click.echo(f"worker {index} ({job.job_id}) failed: {str(error).strip().splitlines()[-1]}", err=True)
    if failed:
        raise click.ClickException(f"{failed} of {len(jobs)} worker(s) failed; logs in {folder}")
