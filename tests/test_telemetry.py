"""System metrics and `perf/` figures on configuration runs (CPU here; the GPU series in test_gpu.py)."""

import logging
import threading
import time
import warnings

import pytest
from mlflow import MlflowClient

from rip.config import RunConfig
from rip.runner import run_experiment
from rip.tracking.tags import BATCH_SIZE_USED, INPAINTINGS_PER_S, PEAK_GPU_MEMORY
from rip.tracking.telemetry import SystemMetrics

CPU_SERIES = ("cpu_utilization_percentage", "system_memory_usage_megabytes", "system_memory_usage_percentage")
# Telea, three images at 64 px, 4 inpaintings each: a run of a few seconds
SHORT = dict(model="telea", size=64, mask=32, percent=100, step=50, metrics=("ssim",), batch_size=2)


def histories(client, run_id, prefix):
    run = client.get_run(run_id)
    return {key: client.get_metric_history(run_id, key) for key in run.data.metrics if key.startswith(prefix)}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A local store, created before the tests (SQLAlchemy's deprecation notice on MLflow's tables comes first)."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('telemetry') / 'mlflow.db'}"
    MlflowClient(uri).search_experiments()
    return uri


def test_a_short_run_has_cpu_and_memory_series_and_its_speed(store, image_folder, tmp_path, caplog):
    config = RunConfig(images=str(image_folder), experiment="telemetry", **SHORT)
    client = MlflowClient(store)
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        started = time.time()
        run_id = run_experiment(config, store, spool_root=tmp_path / "spool", progress=False)
        seconds = time.time() - started
    assert [str(w.message) for w in caught] == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    series = histories(client, run_id, "system/")
    for name in CPU_SERIES:
        points = series[f"system/{name}"]
        assert len(points) >= 2  # one when the run opened, one when it ended
        assert [point.step for point in points] == list(range(len(points)))
    assert all(0 <= point.value <= 100 for point in series["system/cpu_utilization_percentage"])
    assert all(0 < point.value < 100 for point in series["system/system_memory_usage_percentage"])
    assert all(point.value > 50 for point in series["system/system_memory_usage_megabytes"])
    assert not any("gpu" in key for key in series)  # no CUDA here
    perf = client.get_run(run_id).data.metrics
    assert perf[BATCH_SIZE_USED] == 2
    assert 12 / seconds < perf[INPAINTINGS_PER_S] < 1e4  # 3 images × 4 inpaintings, in less than the whole call
    assert PEAK_GPU_MEMORY not in perf


def test_system_metrics_can_be_switched_off(store, image_folder, tmp_path):
    config = RunConfig(images=str(image_folder), experiment="telemetry-off", system_metrics=False, **SHORT)
    run_id = run_experiment(config, store, spool_root=tmp_path / "spool", progress=False)
    metrics = MlflowClient(store).get_run(run_id).data.metrics
    assert not [key for key in metrics if key.startswith("system/")] and INPAINTINGS_PER_S in metrics


def test_system_metrics_stay_out_of_the_configuration_identity():
    config = RunConfig(model="telea")
    off = RunConfig(model="telea", system_metrics=False)
    assert off.draw_key == config.draw_key
    from rip.sweeps.units import SweepPlan
    from rip.tracking.ui import configuration_name

    assert configuration_name(off) == configuration_name(config)
    assert SweepPlan("p", (off,), (1,)).key == SweepPlan("p", (config,), (1,)).key
    legacy = {key: value for key, value in config.__dict__.items() if key != "system_metrics"}
    import json

    assert RunConfig.from_json(json.dumps(legacy)) == config  # runs recorded before the field


class FakeClient:
    """Collects log_batch calls; the metric history of a resumed run."""

    def __init__(self, history=()):
        self.logged: list[tuple[str, list]] = []
        self.history = list(history)
        self.lock = threading.Lock()

    def log_batch(self, run_id, metrics=()):
        with self.lock:
            self.logged.append((run_id, list(metrics)))

    def get_metric_history(self, run_id, key):
        return [metric for metric in self.history if metric.key == key]

    def steps(self, run_id, key="system/cpu_utilization_percentage"):
        return [m.step for rid, metrics in self.logged if rid == run_id for m in metrics if m.key == key]


def test_one_thread_samples_every_open_run_each_at_its_own_steps():
    client = FakeClient()
    sampler = SystemMetrics(interval=0.05)
    sampler.attach(client, "a")
    time.sleep(0.2)
    sampler.attach(client, "b")
    sampler.attach(client, "b")  # a second unit of the same configuration
    time.sleep(0.2)
    sampler.detach("b")
    assert "b" in sampler.runs  # still one unit of it
    sampler.detach("b")
    sampler.detach("a")
    count = len(client.steps("a"))
    time.sleep(0.15)
    assert len(client.steps("a")) == count  # nothing after the last sample
    assert client.steps("a") == list(range(count)) and count >= 5
    assert client.steps("b") == list(range(len(client.steps("b")))) and len(client.steps("b")) >= 3
    assert [thread for thread in threading.enumerate() if thread.name == "rip-system-metrics"] == []
    keys = {m.key for _, metrics in client.logged for m in metrics}
    assert {f"system/{name}" for name in CPU_SERIES} | {"system/network_receive_megabytes"} <= keys


def test_a_resumed_run_continues_its_series_and_nodes_have_their_own():
    from mlflow.entities import Metric

    client = FakeClient([Metric("system/node-1/cpu_utilization_percentage", 1.0, 0, step) for step in range(7)])
    sampler = SystemMetrics(interval=60)
    sampler.attach(client, "r", node="node-1", resume=True)
    sampler.detach("r")
    assert client.steps("r", "system/node-1/cpu_utilization_percentage") == [7, 8]
    sampler.attach(client, "s", node="node-2", resume=True)
    sampler.detach("s", last_sample=False)
    assert client.steps("s", "system/node-2/cpu_utilization_percentage") == [0]
