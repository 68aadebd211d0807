"""Where a model comes from: the pinned mirror, a revision, the Hugging Face cache, the removed id,
gated models. Hub answers come from a local server that answers as the hub does (HF_ENDPOINT);
caches are built in the hub's layout (blobs named by their SHA-256, snapshots linking to them)."""

import http.server
import os
import shutil
import subprocess
import threading

import pytest
from huggingface_hub import constants

from rip import artefacts
from rip.config import RunConfig
from rip.inpainters import load_inpainter
from rip.inpainters.base import ModelUnavailableError
from rip.inpainters.tiny import build_tiny_pipeline
from tests.conftest import BIN, cache_model

MIRROR, REMOVED = artefacts.STUDY_MODEL, artefacts.REMOVED_MODEL
OTHER_COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory):
    """Two saved tiny pipelines of different weights."""
    folders = []
    for seed in (0, 1):
        folder = tmp_path_factory.mktemp(f"tiny-{seed}")
        build_tiny_pipeline(seed).save_pretrained(folder)
        folders.append(folder)
    return folders


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache for this test (the machine is offline: HF_HUB_OFFLINE=1)."""
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_the_default_is_the_mirror_at_its_pinned_commit(hub_cache, tiny_folders):
    pinned, newer = tiny_folders
    cache_model(hub_cache, MIRROR.id, MIRROR.revision, pinned, refs=())
    cache_model(hub_cache, MIRROR.id, OTHER_COMMIT, newer, refs=("main",))
    config = RunConfig(size=64, mask=32, steps=2)
    assert config.model == MIRROR.id and config.model_revision == "" and config.revision == MIRROR.revision
    inpainter = load_inpainter(config, "cpu")
    assert inpainter.params()["resolved_revision"] == MIRROR.revision
    files = inpainter.model_files()
    blobs = hub_cache / f"models--{MIRROR.id.replace('/', '--')}" / "blobs"
    assert all((blobs / file["sha256"]).is_file() for file in files["files"])  # read from the blob names
    assert files["published"].startswith("no match: unet (loaded ")  # random weights: said, not refused
    assert inpainter.tags()["rip.model_published_sha256"] == files["published"]

    main = load_inpainter(RunConfig(size=64, mask=32, steps=2, model_revision="main"), "cpu")
    assert main.params()["resolved_revision"] == OTHER_COMMIT
    assert main.model_files()["digest"] != files["digest"]


def test_the_removed_id_still_loads_from_a_cache_that_holds_it(hub_cache, tiny_folders):
    commit = "81a84f49b15956b60b4272a405ad3daef3da4590"
    cache_model(hub_cache, REMOVED.id, commit, tiny_folders[0])
    config = RunConfig(model=REMOVED.id, size=64, mask=32, steps=2).validate()
    assert config.revision == ""  # its default branch, whatever the cache holds
    inpainter = load_inpainter(config, "cpu")
    assert inpainter.params()["resolved_revision"] == commit
    assert inpainter.model_files()["published"] == "not compared: no published hashes for this model"


def test_the_removed_id_without_a_cache_names_the_mirror_offline(hub_cache):
    with pytest.raises(ModelUnavailableError) as error:
        load_inpainter(RunConfig(model=REMOVED.id), "cpu")
    message = str(error.value)
    assert "\n" not in message
    assert "was removed from the Hugging Face hub" in message and f"--model {MIRROR.id}" in message


def test_a_revision_the_cache_does_not_hold_is_named_offline(hub_cache, tiny_folders):
    cache_model(hub_cache, MIRROR.id, MIRROR.revision, tiny_folders[0])
    with pytest.raises(ModelUnavailableError, match=f"{MIRROR.id}' at revision v9: it is not .fully. in the "
                                                    "Hugging Face cache and HF_HUB_OFFLINE is set"):
        load_inpainter(RunConfig(model_revision="v9"), "cpu")


@pytest.mark.parametrize("changes, fragment", [
    (dict(model="telea", model_revision="main"), "model_revision names a revision of a hub model; 'telea' is not one"),
    (dict(model_revision="a b"), "malformed model_revision 'a b'"),
])
def test_bad_revisions_are_refused(changes, fragment):
    with pytest.raises(ValueError, match=fragment):
        RunConfig(**changes).validate()


def test_the_pinned_commit_asked_by_name_is_the_default_configuration():
    explicit = RunConfig(model_revision=MIRROR.revision)
    assert explicit == RunConfig() and explicit.to_json() == RunConfig().to_json()
    assert "model_revision" not in RunConfig().to_json()  # as recorded before the field existed
    assert RunConfig(model_revision="main").draw_key != RunConfig().draw_key
    legacy = RunConfig().to_json()
    assert RunConfig.from_json(legacy) == RunConfig()


class _Hub(http.server.BaseHTTPRequestHandler):
    """Answers every file request as the hub answers for a missing repository, or a gated one."""

    def _answer(self):
        gated = "/gated-" in self.path
        self.send_response(401 if gated else 404)
        self.send_header("X-Error-Code", "GatedRepo" if gated else "RepoNotFound")
        self.send_header("X-Error-Message", "Access to this model is restricted." if gated else "Repository not found")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET = _answer

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def fake_hub():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


REMOVED_LINE = (f"model '{REMOVED.id}' was removed from the Hugging Face hub (November 2025) and this machine's cache "
                f"does not hold it; the study's default is now its community mirror {MIRROR.id} (pinned at "
                f"{MIRROR.revision[:12]}): leave --model out, or pass --model {MIRROR.id}")
GATED = "black-forest-labs/gated-fill"
GATED_LINE = (f"model '{GATED}' is gated on the Hugging Face hub: accept its conditions on "
              f"https://huggingface.co/{GATED} with your account, then give this machine a token (set HF_TOKEN, "
              "or run `hf auth login`)")


@pytest.fixture
def online(fake_hub, hub_cache, monkeypatch):
    """huggingface_hub talking to the local hub, as with HF_ENDPOINT set and HF_HUB_OFFLINE unset."""
    monkeypatch.setattr(constants, "ENDPOINT", fake_hub)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", fake_hub + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_TOKEN", raising=False)


@pytest.mark.parametrize("model, expected", [(REMOVED.id, REMOVED_LINE), (GATED, GATED_LINE)])
def test_hub_refusals_are_one_line(online, model, expected):
    with pytest.raises(ModelUnavailableError) as error:
        load_inpainter(RunConfig(model=model, size=64, mask=32), "cpu")
    assert str(error.value) == expected


@pytest.mark.slow
def test_rip_run_of_the_removed_id_stops_in_one_line_before_any_run(fake_hub, tmp_path):
    """The whole command, as a user meets it: the hub answers 404 for the removed repository."""
    env = {**os.environ, "HF_ENDPOINT": fake_hub, "HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_DISABLE_TELEMETRY": "1", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    env.pop("HF_TOKEN", None)
    result = subprocess.run([str(BIN / "rip"), "run", "--model", REMOVED.id, "--images", "sample:1", "--size", "64",
                             "--mask", "32", "--metrics", "ssim", "--experiment", "refused"],
                            env=env, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"Error: {REMOVED_LINE}"  # above it, MLflow creating its store
    from mlflow import MlflowClient

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("refused")
    assert experiment is None or client.search_runs([experiment.experiment_id]) == []


def test_cached_repository_layout_matches_huggingface_hub(hub_cache, tiny_folders):
    """The test cache above is what huggingface_hub itself reads."""
    snapshot = cache_model(hub_cache, MIRROR.id, MIRROR.revision, tiny_folders[0])
    from huggingface_hub import try_to_load_from_cache

    assert try_to_load_from_cache(MIRROR.id, "model_index.json", revision="main") == str(snapshot / "model_index.json")
    shutil.rmtree(hub_cache)
