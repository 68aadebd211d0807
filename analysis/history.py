"""Metric histories of many runs in a few requests.

`MlflowClient.search_runs` returns only each metric's latest value, and `get_metric_history`
costs one request per run and metric (1200 requests for the study's replication). An MLflow
server answers for 100 runs at once, two ways:

- `metrics/get-history-bulk` (served under /ajax-api/, the route the MLflow UI draws its
  charts from): one SQL query per request, up to 25 000 values;
- `metrics/get-history-bulk-interval` (the documented REST API): up to 2500 values per run,
  but one query per run on the server, about 7x slower.

The first is tried first; a server without it gets the second; a run whose values may have
been cut by either limit is read alone with `get_metric_history`. A local store (sqlite, files)
is called in-process the same way.
"""

from collections.abc import Iterable, Mapping

import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

BULK_PATH = "/ajax-api/2.0/mlflow/metrics/get-history-bulk"
INTERVAL_PATH = "/api/2.0/mlflow/metrics/get-history-bulk-interval"
MAX_RUNS_PER_REQUEST = 100  # both routes' limit
MAX_BULK_VALUES = 25_000  # per bulk request
MAX_INTERVAL_VALUES = 2_500  # per run in an interval request
COLUMNS = ["run_id", "key", "step", "value", "timestamp"]


def metric_histories(
    client: MlflowClient, keys_by_run: Mapping[str, Iterable[str]], *, use_bulk: bool = True
) -> pd.DataFrame:
    """Every logged value of the given metric keys of the given runs.

    `keys_by_run` maps a run id to its metric keys. Returns columns run_id, key, step, value,
    timestamp; one row per logged value. `use_bulk=False` skips the faster bulk route.
    """
    runs_by_key: dict[str, list[str]] = {}
    for run_id, keys in keys_by_run.items():
        for key in keys:
            runs_by_key.setdefault(key, []).append(run_id)
    source = _Source(client)
    source.bulk = source.bulk and use_bulk
    rows = []
    for key, run_ids in runs_by_key.items():
        for start in range(0, len(run_ids), MAX_RUNS_PER_REQUEST):
            rows += source.fetch(run_ids[start : start + MAX_RUNS_PER_REQUEST], key)
    return pd.DataFrame(rows, columns=COLUMNS)


def naive_metric_histories(client: MlflowClient, keys_by_run: Mapping[str, Iterable[str]]) -> pd.DataFrame:
    """The same frame with one `get_metric_history` request per run and key (for comparison)."""
    rows = [
        row for run_id, keys in keys_by_run.items() for key in keys for row in per_run_history(client, run_id, key)
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def per_run_history(client: MlflowClient, run_id: str, key: str) -> list[tuple]:
    return [(run_id, key, m.step, m.value, m.timestamp) for m in client.get_metric_history(run_id, key)]


class _Source:
    """Reads histories of up to 100 runs by the fastest route the tracking store offers."""

    def __init__(self, client: MlflowClient):
        self.client = client
        # MlflowClient has no public bulk-history method; its store knows how to reach the backend
        self.store = client._tracking_client.store
        self.remote = hasattr(self.store, "get_host_creds")
        self.bulk = self.remote or hasattr(self.store, "get_metric_history_bulk")

    def fetch(self, run_ids: list[str], key: str) -> list[tuple]:
        if self.bulk:
            try:
                rows = self._bulk(run_ids, key)
            except MlflowException:  # a server without the route: use the documented one
                self.bulk = False
            else:
                if len(rows) < MAX_BULK_VALUES:
                    return rows
        rows = self._interval(run_ids, key)
        counts = pd.Series([row[0] for row in rows], dtype=object).value_counts()
        cut = set(counts.index[counts >= MAX_INTERVAL_VALUES])  # possibly sampled: read whole
        return [row for row in rows if row[0] not in cut] + [
            row for run_id in sorted(cut) for row in per_run_history(self.client, run_id, key)
        ]

    def _bulk(self, run_ids: list[str], key: str) -> list[tuple]:
        if not self.remote:
            metrics = self.store.get_metric_history_bulk(run_ids, key, MAX_BULK_VALUES)
            return [(m.run_id, m.key, m.step, m.value, m.timestamp) for m in metrics]
        params = {"run_id": run_ids, "metric_key": key, "max_results": MAX_BULK_VALUES}
        return self._get(BULK_PATH, params, key)

    def _interval(self, run_ids: list[str], key: str) -> list[tuple]:
        if not self.remote:
            metrics = self.store.get_metric_history_bulk_interval(
                run_ids=run_ids, metric_key=key, max_results=MAX_INTERVAL_VALUES, start_step=None, end_step=None
            )
            return [(m.run_id, m.key, m.step, m.value, m.timestamp) for m in metrics]
        params = {"run_ids": run_ids, "metric_key": key, "max_results": MAX_INTERVAL_VALUES}
        return self._get(INTERVAL_PATH, params, key)

    def _get(self, path: str, params: dict, key: str) -> list[tuple]:
        from mlflow.utils.rest_utils import http_request_safe

        response = http_request_safe(self.store.get_host_creds(), path, "GET", params=params)
        return [
            (m["run_id"], m.get("key", key), int(m.get("step", 0)), float(m.get("value", 0.0)),
             int(m.get("timestamp", 0)))
            for m in response.json().get("metrics", [])
        ]
