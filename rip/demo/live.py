"""Demo runs: one configuration at a time through `run_experiment`, its events handed to the page
as they come, a stop that ends the run KILLED, and the loaded model kept for the next run."""

import logging
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from rip.config import RunConfig
from rip.failures import USER_ERRORS
from rip.inpainters import inpainter_key, load_inpainter, resolve_device
from rip.inpainters.base import Inpainter
from rip.metrics import Metric, load_metrics
from rip.protocol.engine import Checkpoint, Event
from rip.runner import ImagesFailedError, Started, StopRun, run_experiment

log = logging.getLogger(__name__)
STOPPED = "stopped in the demo"


@dataclass(frozen=True)
class Finished:
    run_id: str
    animation: bytes | None = None  # its image run's animation.webp (None: not logged, or not fetched)


@dataclass(frozen=True)
class Stopped:
    run_id: str


@dataclass(frozen=True)
class Failed:
    """The run could not start (`started` False: no run was created) or ended FAILED."""

    message: str
    started: bool


Update = Started | Checkpoint | Finished | Stopped | Failed


class LoadedModels:
    """The inpainter of the last run, kept while the next runs load the same (model, options); and
    the metrics, each loaded once. One pipeline in memory at a time."""

    def __init__(self):
        self.key: tuple | None = None
        self.inpainter: Inpainter | None = None
        self.metrics: dict[tuple[str, str], Metric] = {}
        self.lock = threading.Lock()

    def inpainter_for(self, config: RunConfig, device: str) -> Inpainter:
        with self.lock:
            key = (*inpainter_key(config), device)
            if key != self.key:
                self.key, self.inpainter = None, None  # the old pipeline goes before the new one loads
                self.inpainter = load_inpainter(config, device)
                self.key = key
            return self.inpainter

    def metrics_for(self, names: Sequence[str], device: str) -> list[Metric]:
        with self.lock:
            missing = [name for name in names if (name, device) not in self.metrics]
            for name, metric in zip(missing, load_metrics(missing, device)):
                self.metrics[name, device] = metric
            return [self.metrics[name, device] for name in names]


class LiveRun:
    """One configuration running on a thread of its own; `updates` yields what happens, in order."""

    def __init__(self, config: RunConfig, tracking_uri: str, models: LoadedModels, spool_root: Path | None = None):
        self.config = config
        self.tracking_uri = tracking_uri
        self.models = models
        self.spool_root = spool_root
        self.stop_requested = threading.Event()
        self.queue: queue.Queue[Update] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name=f"demo run {config.images}", daemon=True)

    def start(self) -> "LiveRun":
        self.thread.start()
        return self

    def stop(self) -> None:
        """End the run at its next event: what was computed is recorded, the run is marked KILLED."""
        self.stop_requested.set()

    def updates(self) -> Iterator[Update]:
        """Started, then each Checkpoint, then Finished, Stopped or Failed (the last one)."""
        while True:
            update = self.queue.get()
            yield update
            if isinstance(update, (Finished, Stopped, Failed)):
                return

    def _run(self) -> None:
        started = threading.Event()

        def on_start(info: Started) -> None:
            started.set()
            self.queue.put(info)

        def observer(event: Event) -> None:
            if isinstance(event, Checkpoint):
                self.queue.put(event)
            if self.stop_requested.is_set():
                raise StopRun(STOPPED)

        try:
            device = resolve_device(self.config.device)
            self.config.validate()
            metrics = self.models.metrics_for(self.config.metrics, device)
            inpainter = self.models.inpainter_for(self.config, device)
            run_id = run_experiment(self.config, self.tracking_uri, inpainter=inpainter, metrics=metrics,
                                    observer=observer, on_start=on_start, progress=False, spool_root=self.spool_root)
            self.queue.put(Finished(run_id, self._animation(run_id)))
        except StopRun as error:
            self.queue.put(Stopped(error.run_id))
        except (*USER_ERRORS, ImagesFailedError) as error:
            self.queue.put(Failed(str(error), started.is_set()))
        except Exception as error:  # the page shows one line; the server's log keeps the traceback
            log.exception("demo run of %s failed", self.config.images)
            self.queue.put(Failed(f"{type(error).__name__}: {error}", started.is_set()))


    def _animation(self, run_id: str) -> bytes | None:
        """The run's animation, fetched back from the tracking server; None when it has none or is out of reach."""
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        from analysis.artifacts import configuration_animations

        if not self.config.animation:
            return None
        try:
            return next(iter(configuration_animations(MlflowClient(self.tracking_uri), run_id).values()), None)
        except (MlflowException, OSError) as error:
            log.warning("the animation of run %s could not be fetched: %s", run_id, error)
            return None


class DemoRunner:
    """Starts the demo's runs into one tracking server and experiment, sharing the loaded models.

    `uploads`: where uploaded pictures are kept (default `rip.demo.uploads.uploads_root()`);
    `spool_root`: the runs' spool (default `$RIP_SPOOL`, see `rip.tracking.spool`).
    """

    def __init__(self, tracking_uri: str, experiment: str = "demo", uploads: Path | None = None,
                 spool_root: Path | None = None):
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.uploads = uploads
        self.spool_root = spool_root
        self.models = LoadedModels()
        self.running: set[LiveRun] = set()
        self.lock = threading.Lock()

    def start(self, config: RunConfig) -> LiveRun:
        run = LiveRun(config, self.tracking_uri, self.models, self.spool_root)
        with self.lock:
            self.running = {live for live in self.running if live.thread.is_alive()} | {run}
        return run.start()

    def stop_all(self, timeout: float = 60) -> None:
        """Stop every run still going (the server is closing) and wait for them to end KILLED."""
        with self.lock:
            running = list(self.running)
        for run in running:
            run.stop()
        for run in running:
            run.thread.join(timeout)
