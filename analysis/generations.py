"""A local copy of image runs' logged images (`original.png`, `generations/{percent:04d}.png`), each
run downloaded once into one folder and read from there, so a whole collection need not be in memory."""

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from PIL import Image

DOWNLOAD_THREADS = 4
GENERATIONS = "generations"


class RunImages:
    """Reads a run's original and generations from `folder`, downloading each run's once."""

    def __init__(self, client: MlflowClient, folder: str | Path):
        self.client = client
        self.folder = Path(folder)
        self.downloads = 0  # runs downloaded
        self._lock = threading.Lock()
        self._fetched: dict[str, bool] = {}  # run id -> whether it has generations

    def fetch(self, run_ids) -> None:
        """Download the runs not yet here, DOWNLOAD_THREADS at a time."""
        missing = [run_id for run_id in dict.fromkeys(run_ids) if run_id not in self._fetched]
        with ThreadPoolExecutor(DOWNLOAD_THREADS) as pool:
            list(pool.map(self._download, missing))

    def has_generations(self, run_id: str) -> bool:
        self.fetch([run_id])
        return self._fetched[run_id]

    def original(self, run_id: str) -> np.ndarray:
        self.fetch([run_id])
        return _read(self.folder / run_id / "original.png")

    def generation(self, run_id: str, percent: int) -> np.ndarray | None:
        """The run's generation at `percent`, or None when it has none there."""
        self.fetch([run_id])
        path = self.folder / run_id / GENERATIONS / f"{percent:04d}.png"
        return _read(path) if path.is_file() else None

    def _download(self, run_id: str) -> None:
        target = self.folder / run_id
        target.mkdir(parents=True, exist_ok=True)
        self.client.download_artifacts(run_id, "original.png", str(target))
        try:
            self.client.download_artifacts(run_id, GENERATIONS, str(target))
            found = any((target / GENERATIONS).glob("*.png"))
        except (MlflowException, OSError):  # a run logged without its generations
            found = False
        with self._lock:
            self._fetched[run_id] = found
            self.downloads += 1


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))
