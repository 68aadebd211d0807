"""Runs on a tracking server -> one tidy frame: a row per (image run, metric, percent).

Columns: experiment, parent_run_id, run_id, image_id, model, mask, seed, metric, percent,
iteration, value, status, then experiment_id, `label_<name>` for every image label seen (from
tags `rip.label.<name>` of the image or configuration run; empty where a run has none) and every
other run parameter. Configuration fields come typed from
the `rip.config` tag (mask, seed, size, percent, step, batch_size: int; paste_back: bool; the
rest as their parameter strings); a parameter whose name is taken by a column above is renamed
`param_<name>` (the configured `percent` is `param_percent`).
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields

import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Run, ViewType

from analysis.frames import GENERATION_MEASURES, LABEL_PREFIX, metric_key
from analysis.history import metric_histories
from rip.config import RunConfig
from rip.tracking.tags import CONFIG_TAG, IMAGE_TAG, KIND_TAG, LABEL_TAG, PARENT_TAG

logger = logging.getLogger(__name__)

IDENTITY = ["experiment", "parent_run_id", "run_id", "image_id", "model", "mask", "seed",
            "metric", "percent", "iteration", "value", "status"]
# columns that are not parameters: a parameter of one of these names becomes param_<name>
RESERVED = set(IDENTITY) - {"model", "mask", "seed"} | {"parent_status", "parent_name", "metric_keys", "experiment_id"}
INT_FIELDS = ("mask", "seed", "size", "percent", "step", "batch_size")
CONFIG_FIELDS = tuple(field.name for field in fields(RunConfig))
PAGE_SIZE = 2000  # runs per search request


class AnalysisError(ValueError):
    """Nothing (or nothing usable) to analyse; the message says why."""


@dataclass(frozen=True)
class Filter:
    """`KEY=VALUE` or `KEY!=VALUE` on a parameter (`mask`, `params.mask`) or tag (`tags.NAME`).

    VALUE may list alternatives separated by `|`. Tags of the configuration run count for its
    image runs (e.g. `tags.rip.backend=telea`). Metric names are spelt either way (`lpips-vgg`,
    `lpips_vgg`): `metric=NAME` keeps those metrics' values (like `--metrics`), and a filter on
    the `metrics` parameter matches runs that measured every metric of an alternative
    (`metrics=lpips-vgg,ssim`).
    """

    kind: str  # "param" or "tag"
    key: str
    values: tuple[str, ...]
    negate: bool = False

    @classmethod
    def parse(cls, text: str) -> "Filter":
        negate = "!=" in text
        key, sep, value = text.partition("!=" if negate else "=")
        key = key.strip()
        if not sep or not key:
            raise AnalysisError(f"malformed filter {text!r}: expected KEY=VALUE or KEY!=VALUE")
        kind = "param"
        for prefix, name in (("params.", "param"), ("param.", "param"), ("tags.", "tag"), ("tag.", "tag")):
            if key.startswith(prefix):
                kind, key = name, key[len(prefix) :]
                break
        return cls(kind, key, tuple(v.strip() for v in value.split("|")), negate)

    @property
    def on_metric(self) -> bool:
        """A filter on the metric keys (`metric=NAME`), not on runs."""
        return self.kind == "param" and self.key == "metric"

    def matches(self, params: dict[str, str], tags: dict[str, str]) -> bool:
        source = params if self.kind == "param" else tags
        if self.kind == "param" and self.key == "metrics":
            measured = _metric_set(source.get("metrics", ""))
            found = any(_metric_set(value) <= measured for value in self.values)
        else:
            found = source.get(self.key) in self.values
        return found != self.negate

    def keeps_metric(self, key: str) -> bool:
        """For `metric=` filters: whether the metric key `key` is kept."""
        return (key in {metric_key(value) for value in self.values}) != self.negate

    def __str__(self) -> str:
        prefix = "tags." if self.kind == "tag" else ""
        return f"{prefix}{self.key}{'!=' if self.negate else '='}{'|'.join(self.values)}"


def _metric_set(text: str) -> set[str]:
    return {metric_key(name) for name in text.split(",") if name.strip()}


def parse_filters(texts: Sequence[str]) -> list[Filter]:
    """Filters from strings; one string may hold several separated by ';'."""
    return [Filter.parse(part) for text in texts for part in text.split(";") if part.strip()]


def load_results(
    tracking_uri: str | None = None,
    experiments: Sequence[str] = (),
    filters: Sequence[str | Filter] = (),
    *,
    metrics: Sequence[str] = (),
    include_unfinished: bool = False,
    client: MlflowClient | None = None,
) -> pd.DataFrame:
    """The tidy frame of every image run matching `filters` in `experiments` (default: all).

    `metrics` restricts the metric keys (lpips_vgg or lpips-vgg alike); coverage, depth and the
    complexity measures (`analysis.frames.GENERATION_MEASURES`) are kept where logged. Image runs that are not FINISHED are
    left out, with a logged warning, unless `include_unfinished`. Raises AnalysisError when
    nothing is left to analyse.
    """
    client = client or MlflowClient(tracking_uri)
    runs = load_runs(client, experiments, filters, metrics=metrics, include_unfinished=include_unfinished)
    return load_values(client, runs)


def load_runs(
    client: MlflowClient,
    experiments: Sequence[str] = (),
    filters: Sequence[str | Filter] = (),
    *,
    metrics: Sequence[str] = (),
    include_unfinished: bool = False,
) -> pd.DataFrame:
    """One row per selected image run: identity, status, parameters and its metric keys."""
    filters = [f for item in filters for f in ([item] if isinstance(item, Filter) else parse_filters([item]))]
    on_metrics = [f for f in filters if f.on_metric]
    filters = [f for f in filters if not f.on_metric]
    metrics = [metric_key(name) for name in metrics if name.strip()]
    names = resolve_experiments(client, experiments)
    where = f"experiment(s) {', '.join(map(repr, names.values()))} at {client.tracking_uri}"
    children = search_runs(client, list(names), "image")
    if not children:
        raise AnalysisError(
            f"no recursive-inpainting runs in {where} (looked for runs tagged {KIND_TAG}=image); "
            "record some with `rip run` or `rip sweep` first"
        )
    parents = {run.info.run_id: run for run in search_runs(client, list(names), "configuration")}
    records = [_record(run, parents.get(run.data.tags.get(PARENT_TAG, "")), names) for run in children]
    _check_filter_keys(filters, records)
    selected = [r for r in records if all(f.matches(r["_params"], r["_tags"]) for f in filters)]
    if not selected:
        raise AnalysisError(
            f"{len(records)} image run(s) in {where}, but none match the filters "
            f"{'; '.join(map(str, filters))}"
        )
    if metrics or on_metrics:
        logged = set().union(*(record["metric_keys"] for record in selected))
        kept = {key for key in logged if (not metrics or key in metrics) and all(f.keeps_metric(key) for f in on_metrics)}
        if not kept:
            asked = "; ".join([f"--metrics {','.join(metrics)}"] * bool(metrics) + [str(f) for f in on_metrics])
            raise AnalysisError(f"no selected run logged the metric(s) asked for ({asked}); they logged: "
                                f"{', '.join(sorted(logged)) or 'nothing'}")
        kept |= logged & set(GENERATION_MEASURES)  # coverage, depth, complexity: always, for their own questions
        for record in selected:
            record["metric_keys"] = tuple(key for key in record["metric_keys"] if key in kept)
    selected = _drop_unfinished(selected, include_unfinished)
    frame = pd.DataFrame(selected).drop(columns=["_params", "_tags"])
    labels = [column for column in frame.columns if column.startswith(LABEL_PREFIX)]
    frame[labels] = frame[labels].fillna("")
    return frame.sort_values(["experiment", "model", "mask", "seed", "image_id"], kind="stable").reset_index(drop=True)


def load_values(client: MlflowClient, runs: pd.DataFrame) -> pd.DataFrame:
    """The tidy frame for `runs` (from `load_runs`): their metric histories, one value per row."""
    keys_by_run = dict(zip(runs["run_id"], runs["metric_keys"]))
    history = metric_histories(client, keys_by_run)
    if history.empty:
        raise AnalysisError(f"the {len(runs)} selected image run(s) logged no metric values")
    # a value logged twice at one step (e.g. a resumed run): the latest counts
    history = history.sort_values("timestamp", kind="stable").drop_duplicates(["run_id", "key", "step"], keep="last")
    history = history.rename(columns={"key": "metric", "step": "percent"}).drop(columns="timestamp")
    frame = history.merge(runs.drop(columns="metric_keys"), on="run_id", how="left")
    cells = (frame["size"] // frame["mask"]) ** 2
    frame["iteration"] = (frame["percent"] * cells / 100).round().astype(int)
    others = sorted(column for column in frame.columns if column not in IDENTITY)
    order = ["experiment", "model", "mask", "seed", "image_id", "metric", "percent"]
    frame = frame[IDENTITY + others].sort_values(order, kind="stable").reset_index(drop=True)
    frame["percent"] = frame["percent"].astype(int)
    return frame


def resolve_experiments(client: MlflowClient, names: Sequence[str]) -> dict[str, str]:
    """Experiment id -> name for `names` (all active experiments when empty)."""
    known = {}
    token = None
    while True:
        page = client.search_experiments(ViewType.ACTIVE_ONLY, max_results=1000, page_token=token)
        known.update({e.experiment_id: e.name for e in page})
        token = page.token
        if not token:
            break
    if not names:
        return known
    by_name = {name: experiment_id for experiment_id, name in known.items()}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise AnalysisError(
            f"unknown experiment {', '.join(map(repr, unknown))} at {client.tracking_uri}; "
            f"experiments there: {', '.join(sorted(by_name)) or 'none'}"
        )
    return {by_name[name]: name for name in dict.fromkeys(names)}


def search_runs(client: MlflowClient, experiment_ids: list[str], kind: str) -> list[Run]:
    """Every active run tagged rip.kind=`kind` in the experiments, page by page."""
    runs, token = [], None
    while True:
        page = client.search_runs(
            experiment_ids, f"tags.`{KIND_TAG}` = '{kind}'", max_results=PAGE_SIZE, page_token=token
        )
        runs += page
        token = page.token
        if not token:
            return runs


def _record(run: Run, parent: Run | None, experiments: dict[str, str]) -> dict:
    """An image run's row: identity, typed configuration, other parameters, metric keys."""
    tags = {**(parent.data.tags if parent else {}), **run.data.tags}
    params = dict(run.data.params)
    config = _config(tags.get(CONFIG_TAG))
    if config is not None:
        params.update(config.as_params())
    record = {
        "experiment": experiments.get(run.info.experiment_id, run.info.experiment_id),
        "experiment_id": run.info.experiment_id,
        "parent_run_id": run.data.tags.get(PARENT_TAG, ""),
        "run_id": run.info.run_id,
        "image_id": tags.get(IMAGE_TAG, run.info.run_name),
        "status": run.info.status,
        "parent_status": parent.info.status if parent else "MISSING",
        "parent_name": parent.info.run_name if parent else "",
        "metric_keys": tuple(sorted(key for key in run.data.metrics if key != "iteration")),
        "_params": params,
        "_tags": tags,
    }
    for name, value in params.items():
        record[f"param_{name}" if name in RESERVED else name] = value
    for tag, value in tags.items():
        if tag.startswith(f"{LABEL_TAG}."):
            record[LABEL_PREFIX + tag[len(LABEL_TAG) + 1:]] = value
    for name in INT_FIELDS:
        column = f"param_{name}" if name in RESERVED else name
        value = getattr(config, name) if config else params.get(name)
        record[column] = int(value) if value not in (None, "") else None
    paste_back = config.paste_back if config else params.get("paste_back") == "true"
    record["paste_back"] = bool(paste_back)
    return record


def _config(text: str | None) -> RunConfig | None:
    if not text:
        return None
    try:
        return RunConfig.from_json(text)
    except (ValueError, TypeError, KeyError):  # written by another version: fall back to params
        return None


def _check_filter_keys(filters: list[Filter], records: list[dict]) -> None:
    known = set().union(*(record["_params"] for record in records))
    for f in filters:
        if f.kind == "param" and f.key not in known:
            raise AnalysisError(
                f"unknown parameter {f.key!r} in filter {str(f)!r}; parameters: {', '.join(sorted(known))} "
                "(filter tags as tags.NAME=VALUE)"
            )


def _drop_unfinished(records: list[dict], include_unfinished: bool) -> list[dict]:
    """FINISHED image runs (all with `include_unfinished`), warning about the others."""
    unfinished = [r for r in records if r["status"] != "FINISHED"]
    if unfinished:
        detail = _unfinished_detail(pd.DataFrame(unfinished), len(records))
        if include_unfinished:
            logger.warning("%s: loaded the values they logged so far", detail)
        elif len(unfinished) == len(records):
            raise AnalysisError(_nothing_finished(detail))
        else:
            logger.warning("left out %s; --include-unfinished keeps them", detail)
            records = [r for r in records if r["status"] == "FINISHED"]
    open_parents = sorted({
        f"{r['parent_name'] or r['parent_run_id']} ({r['parent_status']})"
        for r in records if r["parent_status"] != "FINISHED"
    })
    if open_parents:
        logger.warning("configuration runs not finished, their finished image runs are included: %s",
                       ", ".join(open_parents))
    return records


def finished_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of FINISHED image runs of a frame loaded with `include_unfinished`; AnalysisError when
    there are none."""
    done = frame["status"] == "FINISHED"
    if not done.any():
        runs = frame.drop_duplicates("run_id")
        raise AnalysisError(_nothing_finished(_unfinished_detail(runs, len(runs))))
    return frame[done]


def _unfinished_detail(unfinished: pd.DataFrame, total: int) -> str:
    """"3 of 40 image runs are unfinished (2 FAILED, 1 RUNNING) in CONFIGURATION (EXPERIMENT), ..."."""
    statuses = ", ".join(f"{n} {status}" for status, n in unfinished["status"].value_counts().items())
    names = unfinished.get("parent_name", unfinished["parent_run_id"]).fillna("").astype(str)
    names = names.where(names != "", unfinished["parent_run_id"])
    configurations = sorted({f"{name} ({experiment})" for name, experiment in zip(names, unfinished["experiment"])})
    return f"{len(unfinished)} of {total} image runs are unfinished ({statuses}) in {', '.join(configurations)}"


def _nothing_finished(detail: str) -> str:
    return (f"no finished runs to analyse: {detail}. Wait for them to finish, or pass "
            "--include-unfinished (include_unfinished=True) to analyse the values they logged")
