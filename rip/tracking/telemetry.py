"""System metrics of configuration runs: CPU, memory, disk and network, and GPU with nvidia-ml-py.

The series carry the names MLflow's own system metrics use (`system/cpu_utilization_percentage`,
`system/system_memory_usage_megabytes`, `system/gpu_0_utilization_percentage`, ...), so the UI shows
them in a run's *System metrics* tab, as for `mlflow.start_run(log_system_metrics=True)`; runs here
are made with `MlflowClient`, which starts no monitor, hence this one.

One sampling thread per process serves every configuration run the process has open (configurations
that share an engine run at once): a run gets a sample when it is attached, every `interval` seconds,
and a last one when it is detached, each at its own next step, so a run of a few seconds has its
points too. A sample that cannot be logged (the server is away) is dropped: the runs' own records
wait and retry, the telemetry does not.
"""

import logging
import os
import threading
import time
from dataclasses import dataclass, field

from mlflow import MlflowClient
from mlflow.entities import Metric

from rip.tracking.tags import SYSTEM_PREFIX

log = logging.getLogger(__name__)

SAMPLING_INTERVAL = 2.0  # seconds; MLflow's default, 10 s, leaves a run of a few seconds without a point
INTERVAL_VARIABLE = "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"  # MLflow's own setting, honoured
MIN_CPU_WINDOW = 0.1  # seconds: CPU use over a shorter time is mostly noise


def sampling_interval() -> float:
    """Seconds between samples: $MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL, else `SAMPLING_INTERVAL`."""
    value = os.environ.get(INTERVAL_VARIABLE, "").strip()
    try:
        return float(value) if value and float(value) > 0 else SAMPLING_INTERVAL
    except ValueError:
        return SAMPLING_INTERVAL


class Sampler:
    """One reading of the machine: MLflow's system-metric names (without `system/`) -> value."""

    def __init__(self):
        import psutil

        self.psutil = psutil
        self.cpu_times, self.cpu_read = psutil.cpu_times(), time.monotonic()
        self.cpu_lock = threading.Lock()
        self.gpus = _Gpus.open()

    def cpu_percent(self) -> float:
        """The machine's CPU use since the last sample, over 0.1 s at least, whichever thread took it
        (psutil's own `cpu_percent()` keeps a window per thread, and its first is empty)."""
        with self.cpu_lock:
            time.sleep(max(0.0, self.cpu_read + MIN_CPU_WINDOW - time.monotonic()))
            before, self.cpu_times, self.cpu_read = self.cpu_times, self.psutil.cpu_times(), time.monotonic()
            now = self.cpu_times
        total = sum(now) - sum(before)
        idle = sum(getattr(now, name, 0.0) - getattr(before, name, 0.0) for name in ("idle", "iowait"))
        return 100 * (total - idle) / total if total > 0 else 0.0

    def network(self) -> tuple[float, float]:
        """Megabytes received and sent since the machine started."""
        counters = self.psutil.net_io_counters()
        return counters.bytes_recv / 1e6, counters.bytes_sent / 1e6

    def __call__(self) -> dict[str, float]:
        psutil = self.psutil
        memory = psutil.virtual_memory()
        disk = psutil.disk_usage(os.sep)
        values = {
            "cpu_utilization_percentage": self.cpu_percent(),
            "system_memory_usage_megabytes": memory.used / 1e6,
            "system_memory_usage_percentage": memory.used / memory.total * 100,
            "disk_usage_percentage": disk.percent,
            "disk_usage_megabytes": disk.used / 1e6,
            "disk_available_megabytes": disk.free / 1e6,
        }
        if self.gpus is not None:
            values.update(self.gpus.sample())
        return {key: round(value, 1) for key, value in values.items()}


class _Gpus:
    """NVIDIA GPUs through NVML (package nvidia-ml-py): memory, utilisation and power of each GPU
    this process may use (CUDA_VISIBLE_DEVICES), named by NVML's index as MLflow names them.

    A reading a GPU does not support (utilisation under MIG, power on some virtual GPUs) is left
    out from the start instead of failing at every sample.
    """

    def __init__(self, nvml, handles: dict[int, object]):
        self.nvml = nvml
        self.readings = {index: [name for name, read in self._reads().items() if self._works(read, handle)]
                         for index, handle in handles.items()}
        self.handles = handles

    @classmethod
    def open(cls) -> "_Gpus | None":
        try:
            import pynvml
        except ImportError:
            return None
        try:
            pynvml.nvmlInit()
            handles = {}
            for position in range(pynvml.nvmlDeviceGetCount()):
                handle = pynvml.nvmlDeviceGetHandleByIndex(position)
                handles[pynvml.nvmlDeviceGetIndex(handle)] = handle
        except pynvml.NVMLError as error:  # no NVIDIA driver or GPU: no GPU series
            log.debug("no GPU series: %s", error)
            return None
        visible = _visible(pynvml, handles)
        return cls(pynvml, {index: handle for index, handle in handles.items() if index in visible}) if visible else None

    def _reads(self) -> dict:
        nvml = self.nvml

        def memory(handle):
            info = nvml.nvmlDeviceGetMemoryInfo(handle)
            return {"memory_usage_percentage": info.used / info.total * 100, "memory_usage_megabytes": info.used / 1e6}

        def utilization(handle):
            return {"utilization_percentage": float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)}

        def power(handle):
            watts = nvml.nvmlDeviceGetPowerUsage(handle) / 1000
            return {"power_usage_watts": watts,
                    "power_usage_percentage": watts / (nvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000) * 100}

        return {"memory": memory, "utilization": utilization, "power": power}

    def _works(self, read, handle) -> bool:
        try:
            read(handle)
            return True
        except self.nvml.NVMLError as error:
            log.debug("GPU reading %s left out: %s", read.__name__, error)
            return False

    def sample(self) -> dict[str, float]:
        reads, values = self._reads(), {}
        for index, handle in self.handles.items():
            for name in self.readings[index]:
                try:
                    values.update({f"gpu_{index}_{key}": value for key, value in reads[name](handle).items()})
                except self.nvml.NVMLError as error:
                    log.debug("GPU %d reading %s failed: %s", index, name, error)
        return values


def _visible(nvml, handles: dict[int, object]) -> set[int]:
    """NVML indices of the GPUs CUDA_VISIBLE_DEVICES names (indices or GPU-UUIDs); all when unset or unclear."""
    setting = os.environ.get("CUDA_VISIBLE_DEVICES")
    if setting is None:
        return set(handles)
    names = [name.strip() for name in setting.split(",") if name.strip()]
    if all(name.isdigit() for name in names):
        return {int(name) for name in names} & set(handles)
    uuids = {}
    for index, handle in handles.items():
        try:
            uuid = nvml.nvmlDeviceGetUUID(handle)
            uuids[uuid.decode() if isinstance(uuid, bytes) else uuid] = index
        except nvml.NVMLError:
            return set(handles)
    if all(name in uuids for name in names):
        return {uuids[name] for name in names}
    return set(handles)  # MIG devices and other forms: every GPU, as MLflow does


@dataclass
class _Run:
    client: MlflowClient
    prefix: str  # system/ or system/NODE/
    step: int
    network: tuple[float, float]  # megabytes received and sent when the run was attached
    lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 1  # attachments not yet detached (units of one configuration in one engine)
    detached: bool = False


class SystemMetrics:
    """The process's sampling thread and the runs it logs to (see the module's docstring)."""

    def __init__(self, interval: float | None = None):
        self.interval = interval or sampling_interval()
        self.runs: dict[str, _Run] = {}
        self.lock = threading.Lock()
        self.wake = threading.Condition(self.lock)
        self.thread: threading.Thread | None = None
        self._sampler: Sampler | None = None

    @property
    def sampler(self) -> Sampler:
        if self._sampler is None:
            self._sampler = Sampler()
        return self._sampler

    def attach(self, client: MlflowClient, run_id: str, *, node: str = "", resume: bool = False) -> None:
        """Sample into run `run_id` from now on, and once now.

        `node` names this process's series in a run that several processes share (MLflow's
        `system/NODE/...`); `resume`: continue the run's series after their last step. A run
        attached twice is sampled once, until it is detached twice.
        """
        with self.lock:
            if run_id in self.runs:
                self.runs[run_id].users += 1
                return
        prefix = f"{SYSTEM_PREFIX}{node}/" if node else SYSTEM_PREFIX
        step = _next_step(client, run_id, prefix) if resume else 0
        run = _Run(client, prefix, step, self.sampler.network())
        self._log(run_id, run, self.sampler())
        with self.lock:
            if run_id in self.runs:  # attached meanwhile by another thread
                self.runs[run_id].users += 1
                return
            self.runs[run_id] = run
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._loop, name="rip-system-metrics", daemon=True)
                self.thread.start()
            self.wake.notify_all()

    def detach(self, run_id: str, last_sample: bool = True) -> None:
        """A last sample into run `run_id` (unless `last_sample` is false: the server is away), then none."""
        with self.lock:
            run = self.runs.get(run_id)
            if run is None:
                return
            run.users -= 1
            if run.users > 0:
                return
            del self.runs[run_id]
            self.wake.notify_all()
        if last_sample:
            self._log(run_id, run, self.sampler(), last=True)
        else:
            with run.lock:
                run.detached = True

    def _loop(self) -> None:
        deadline = time.monotonic() + self.interval
        while True:
            with self.lock:
                while self.runs and time.monotonic() < deadline:
                    self.wake.wait(deadline - time.monotonic())
                if not self.runs:
                    self.thread = None
                    return
                runs = dict(self.runs)
            deadline = max(deadline + self.interval, time.monotonic())
            values = self.sampler()
            for run_id, run in runs.items():
                self._log(run_id, run, values)

    def _log(self, run_id: str, run: _Run, values: dict[str, float], last: bool = False) -> None:
        received, sent = self.sampler.network()
        values = {**values, "network_receive_megabytes": round(received - run.network[0], 1),
                  "network_transmit_megabytes": round(sent - run.network[1], 1)}
        with run.lock:
            if run.detached:  # the thread's sample came after the last one
                return
            run.detached = last
            timestamp = int(time.time() * 1000)
            metrics = [Metric(run.prefix + key, value, timestamp, run.step) for key, value in values.items()]
            try:
                run.client.log_batch(run_id, metrics=metrics)
            except Exception as error:  # noqa: BLE001 - telemetry never stops a run
                log.debug("system metrics of run %s at step %d not logged: %s", run_id, run.step, error)
                return
            run.step += 1


def _next_step(client: MlflowClient, run_id: str, prefix: str) -> int:
    """The step after the last one of the run's series under `prefix` (0 when it has none)."""
    try:
        history = client.get_metric_history(run_id, f"{prefix}cpu_utilization_percentage")
    except Exception as error:  # noqa: BLE001
        log.debug("system metrics of run %s: no earlier steps read: %s", run_id, error)
        return 0
    return max((metric.step for metric in history), default=-1) + 1


_PROCESS: SystemMetrics | None = None


def system_metrics() -> SystemMetrics:
    """The process's `SystemMetrics`."""
    global _PROCESS
    if _PROCESS is None:
        _PROCESS = SystemMetrics()
    return _PROCESS
