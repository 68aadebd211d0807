"""A sweep in one process: its configurations run in order, those sharing a pipeline call together."""

from collections.abc import Callable, Sequence

from rip.config import RunConfig
from rip.inpainters import inpainter_key
from rip.protocol.engine import pipeline_key
from rip.runner import run_together
from rip.sweeps.models import Models
from rip.sweeps.presets import describe
from rip.tracking.ui import Addresses


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
    ordered = run_order(configs)
    numbers = {id(config): index for index, config in enumerate(ordered, 1)}
    groups: dict[tuple, list[RunConfig]] = {}
    for config in ordered:
        groups.setdefault(pipeline_key(config), []).append(config)
    addresses = Addresses()

    def announce(started) -> None:
        where = addresses.lines(started.tracking_uri, started.experiment_id, started.run_id, started.run_name)
        echo("\n".join([f"[{numbers[id(started.config)]}/{len(ordered)}] {describe(started.config)}: run "
                        f"{started.run_name} ({started.run_id})", *where]))

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
