"""Presets (experiments/*.yaml) -> a grid of configurations, each run as one MLflow run.

A preset overrides only what differs from RunConfig's defaults. A list expands into one
configuration per value (`mask: [64, 128, 256]`), and so does an integer range `seed: 0..9`
(inclusive); several lists give their product, the first key varying slowest. For `metrics`, a
list of names (or "a,b") is one value; a list of lists is a grid.
"""

import dataclasses
import itertools
import types
import typing
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import click
import yaml
from tqdm.auto import tqdm

from rip.config import RunConfig, parse_metrics
from rip.inpainters import inpainter_key
from rip.sweep_units import DEFAULT_CHUNK_SIZE

PRESET_FOLDER = Path(__file__).resolve().parent.parent / "experiments"  # the presets shipped with rip
SWEEP_TAG = "rip.sweep"  # the preset's name, on every configuration run of the sweep
SWEEP_ID_TAG = "rip.sweep_id"  # one id per invocation, or per shared sweep (drawn when it is registered)
_FIELDS = {field.name: field for field in dataclasses.fields(RunConfig)}


def find_preset(name: str | Path) -> Path:
    """The preset file: the path `name` or `name`.yaml, else the shipped preset called `name`
    (experiments/`name`.yaml in rip's folder), from any working directory."""
    candidates = [Path(name), Path(f"{name}.yaml")]
    if Path(name).name == str(name):  # a bare name, e.g. "demo"
        candidates.append(PRESET_FOLDER / f"{name}.yaml")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    presets = sorted(p.stem for p in PRESET_FOLDER.glob("*.yaml"))
    raise ValueError(f"no preset {str(name)!r}; shipped presets (in {PRESET_FOLDER}): {', '.join(presets) or 'none'}")


def load_preset(path: str | Path) -> dict:
    """The preset's mapping of RunConfig fields to values or lists of values."""
    path = find_preset(path)
    try:
        preset = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"cannot parse preset {path}: {error}") from error
    if not isinstance(preset, dict):
        raise ValueError(f"preset {path} must be a mapping of configuration fields, got {type(preset).__name__}")
    return preset


def parse_overrides(items: Sequence[str]) -> dict:
    """`["mask=32", "seed=[0, 1]"]` -> {"mask": 32, "seed": [0, 1]} (values read as YAML)."""
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"malformed override {item!r}: expected KEY=VALUE")
        overrides[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return overrides


def expand(preset: dict) -> list[RunConfig]:
    """Every configuration of the grid, in order (not validated: see `check`)."""
    unknown = [key for key in preset if key not in _FIELDS]
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(map(repr, unknown))}; fields: {', '.join(_FIELDS)}")
    axes = {key: [_coerce(key, v) for v in _values(key, value)] for key, value in preset.items()}
    return [RunConfig(**dict(zip(axes, combination))) for combination in itertools.product(*axes.values())]


def check(configs: Sequence[RunConfig], resolve_images: bool = True) -> None:
    """Validate every configuration and (optionally) load every image set, before any run starts.

    Raises ValueError naming each bad configuration. `resolve_images=False` skips image sets
    that would be downloaded (wikiart:N); local ones are always read.
    """
    from rip.images import load_images, resolve_image_set

    errors = []
    for index, config in enumerate(configs, 1):
        try:
            config.validate()
        except ValueError as error:
            errors.append(f"configuration {index} ({describe(config)}): {error}")
    if errors:
        raise ValueError("invalid configurations, nothing was run:\n  " + "\n  ".join(errors))
    loaded = set()
    for config in configs:
        if not resolve_images and config.images.startswith(("wikiart", "hf:")):
            continue
        sources = tuple(resolve_image_set(config.images, config.seed))
        if (sources, config.size) not in loaded:
            load_images(list(sources), config.size, config.pad_color, config.resample)
            loaded.add((sources, config.size))


def run_sweep(
    configs: Sequence[RunConfig],
    tracking_uri: str | None = None,
    *,
    tags: dict[str, str] | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> list[str]:
    """Run every configuration as one MLflow run; return the parent run ids in run order.

    Configurations that share a pipeline call (`pipeline_key`) run together in one engine, whose
    calls mix their images (`run_together`); each group loads its model once, and metrics are
    loaded once. Call `check` first: a failing configuration stops the sweep.
    """
    from rip.engine import pipeline_key
    from rip.runner import run_together

    ordered = run_order(configs)
    numbers = {id(config): index for index, config in enumerate(ordered, 1)}
    groups: dict[tuple, list[RunConfig]] = {}
    for config in ordered:
        groups.setdefault(pipeline_key(config), []).append(config)

    def announce(started) -> None:
        echo(f"[{numbers[id(started.config)]}/{len(ordered)}] {describe(started.config)}: run {started.run_name} "
             f"({started.run_id})")

    models, run_ids = Models(), {}
    for group in groups.values():
        loaded = [models.get(config) for config in group]
        ids = run_together(group, tracking_uri, inpainter=loaded[0][1], metrics=[metrics for _, _, metrics in loaded],
                           tags=tags, progress=progress, on_start=announce)
        run_ids.update(zip(map(id, group), ids))
    return [run_ids[id(config)] for config in ordered]


def run_order(configs: Sequence[RunConfig]) -> list[RunConfig]:
    """Configurations grouped by the model they load, in grid order within a model."""
    first = {}
    for config in configs:
        first.setdefault(inpainter_key(config), len(first))
    return sorted(configs, key=lambda c: first[inpainter_key(c)])


class Models:
    """The inpainter and metrics of each configuration: one model in memory at a time, shared by
    configurations that load the same one; each metric loaded once per device."""

    def __init__(self):
        self.key, self.inpainter, self.metrics = None, None, {}

    def get(self, config: RunConfig) -> tuple[str, "object", list]:
        """(device, inpainter, metrics) for `config`."""
        from rip.inpainters import load_inpainter, resolve_device
        from rip.metrics import load_metrics

        device = resolve_device(config.device)
        if inpainter_key(config) != self.key:
            self.inpainter = None  # release the previous model before loading the next
            self.inpainter, self.key = load_inpainter(config, device), inpainter_key(config)
        for name in config.metrics:
            if (name, device) not in self.metrics:
                self.metrics[name, device] = load_metrics([name], device)[0]
        return device, self.inpainter, [self.metrics[name, device] for name in config.metrics]


def describe(config: RunConfig) -> str:
    """The fields that differ from the defaults, e.g. "mask=128 seed=3 images=wikiart:100"."""
    defaults = RunConfig()
    changed = {k: v for k, v in dataclasses.asdict(config).items() if v != getattr(defaults, k) and k != "experiment"}
    return " ".join(f"{k}={','.join(v) if isinstance(v, tuple) else v}" for k, v in changed.items()) or "defaults"


def _values(key: str, value) -> list:
    """The grid axis of one preset entry."""
    if key == "metrics":
        if isinstance(value, list) and value and all(isinstance(v, (list, str)) for v in value) and any(
            isinstance(v, list) or "," in v for v in value
        ):
            return value  # a list of metric lists
        return [value]
    if isinstance(value, str) and ".." in value and _FIELDS[key].type is int:
        low, _, high = value.partition("..")
        try:
            return list(range(int(low), int(high) + 1))
        except ValueError:
            raise ValueError(f"{key}: malformed range {value!r}, expected e.g. 0..9") from None
    return value if isinstance(value, list) else [value]


def _coerce(key: str, value):
    """`value` as field `key` expects it; ValueError naming the field otherwise."""
    kind = _FIELDS[key].type
    options = typing.get_args(kind) if isinstance(kind, types.UnionType) else (kind,)
    if value is None:
        if type(None) in options:
            return None
        raise ValueError(f"{key} cannot be empty (null)")
    if key == "metrics":
        names = parse_metrics(value) if isinstance(value, str) else tuple(map(str, value))
        return names
    if int in options and isinstance(value, int) and not isinstance(value, bool):
        return value
    if float in options and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if bool in options and isinstance(value, bool):
        return value
    if str in options and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    expected = " or ".join(getattr(t, "__name__", str(t)) for t in options)
    raise ValueError(f"{key} must be {expected}, got {value!r}")


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
    from rip.cli import _sigterm_interrupts
    from rip.inpainters.base import ModelUnavailableError
    from rip.metrics import MetricUnavailableError
    from rip.resilience import TrackingUnavailableError

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
        tags = {SWEEP_TAG: path.stem, SWEEP_ID_TAG: uuid.uuid4().hex[:12]}
        with _sigterm_interrupts():
            run_ids = run_sweep(configs, tracking_uri, tags=tags, echo=tqdm.write)  # above the progress bar
    except (ValueError, RuntimeError, ModelUnavailableError, MetricUnavailableError,
            TrackingUnavailableError) as error:
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
    from rip.workqueue import check_storage_url

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

    from rip.cli import _sigterm_interrupts
    from rip.images import resolve_image_set
    from rip.sweep_units import SweepPlan, status_lines
    from rip.sweep_worker import work_on_sweep
    from rip.workqueue import connect, shown

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
        return
    tags = {SWEEP_TAG: name}
    try:
        with _sigterm_interrupts():
            study = work_on_sweep(plan, storage, tracking_uri, tags=tags, echo=click.echo, **queue)
    except KeyboardInterrupt as error:
        click.echo(f"stopped by {error or 'KeyboardInterrupt'}: the unit in progress is queued again; "
                   "the same command continues the sweep", err=True)
        raise SystemExit(130) from None
    click.echo("\n".join(status_lines(study, plan, describe)))
