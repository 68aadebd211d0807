"""`rip prefetch` and `rip submit`'s use of it: what runs download, fetched ahead and checked offline."""

import socket
import threading

import pytest
from click.testing import CliRunner
from huggingface_hub import constants

from rip import artefacts
from rip.cli import main
from rip.inpainters.tiny import build_tiny_pipeline
from rip.prefetch import NO_NETWORK, offline
from rip.sweeps.launch import configurations
from tests.conftest import cache_model

MIRROR = artefacts.STUDY_MODEL
SMALL = ["--size", "64", "--mask", "32", "--metrics", "ssim", "--device", "cpu"]


@pytest.fixture
def caches(tmp_path, monkeypatch):
    """Empty caches: Hugging Face's, torch's, rip's (the machine is offline: HF_HUB_OFFLINE=1)."""
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("RIP_CACHE", str(tmp_path / "rip"))
    return tmp_path


def prefetch(*args):
    return CliRunner().invoke(main, ["prefetch", *args])


def test_offline_every_missing_thing_is_named(caches):
    images = f"hf:huggan/paintings@{'a' * 40}:train:2"
    result = prefetch("--images", images, "--metrics", "lpips-alex,ssim", "--device", "cuda")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert f"  model {MIRROR.id} @ {MIRROR.revision[:12]} (fp16 variant where it has one): MISSING" in lines
    assert "  lpips-alex backbone: MISSING" in lines and f"  images {images} (seed 0): MISSING" in lines
    assert "Error: 3 of 3 thing(s) the runs need are not in the caches (HF_HUB_OFFLINE is set: nothing was fetched)"\
        in result.output
    backbone = caches / "torch" / "hub" / "checkpoints" / artefacts.LPIPS_BACKBONES["alex"].file
    assert f"  lpips-alex backbone: {backbone} is missing (torchvision's ImageNet backbone for lpips-alex)" in lines
    assert (f"model {MIRROR.id} @ {MIRROR.revision[:12]} (fp16 variant where it has one): cannot load inpainting "
            f"model '{MIRROR.id}' at revision {MIRROR.revision}: it is not (fully) in the Hugging Face cache") \
        in result.output
    rows = caches / "rip" / "hf" / "huggan--paintings" / ("a" * 40) / "train"
    assert f"images {images} (seed 0): {images} needs images that are not in the cache {rows}" in result.output


def test_prefetch_fetches_once_then_finds_everything(caches, hub_dataset, tmp_path):
    model = tmp_path / "tiny"
    build_tiny_pipeline().save_pretrained(model)
    options = ["--model", str(model), "--images", f"hf:{hub_dataset}:3", *SMALL]
    first = prefetch(*options)
    assert first.exit_code == 0, first.output
    assert f"  model {model} (fp32): already there: 3 weight file(s)" in first.output
    assert f"  images hf:{hub_dataset}:3 (seed 0): fetched " in first.output  # read from the local parquet copy
    assert first.output.rstrip().splitlines()[-1].startswith("checked offline (HF_HUB_OFFLINE=1, no network): ")

    second = prefetch(*options)
    assert second.exit_code == 0, second.output
    assert f"  images hf:{hub_dataset}:3 (seed 0): already there: 3 image(s)" in second.output
    assert "nothing to fetch: everything was already in the caches" in second.output


def test_a_hub_model_in_the_cache_is_checked_at_its_pinned_commit(caches, tmp_path):
    model = tmp_path / "tiny"
    build_tiny_pipeline().save_pretrained(model)
    cache_model(caches / "hf", MIRROR.id, MIRROR.revision, model, refs=())
    result = prefetch("--images", "sample:1", *SMALL, "--device", "auto", "--dtype", "fp32")
    assert result.exit_code == 0, result.output
    assert (f"  model {MIRROR.id} @ {MIRROR.revision[:12]} (fp32): already there: 3 weight file(s), "
            in result.output)
    assert f"{MIRROR.revision}\n" in result.output


def test_a_preset_and_its_overrides_are_prefetched(caches):
    result = prefetch("demo", "--set", "seed=3")
    assert result.exit_code == 0, result.output
    assert "experiments/demo.yaml: 2 configuration(s)" in result.output
    assert "  images sample:4@0 (seed 3): already there: 4 image(s)" in result.output


def test_the_offline_check_refuses_every_connection():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    acceptor = threading.Thread(target=lambda: listener.accept()[0].close(), daemon=True)
    acceptor.start()
    with offline():
        assert constants.HF_HUB_OFFLINE
        with pytest.raises(OSError, match=NO_NETWORK):
            socket.create_connection(("127.0.0.1", port))
        with socket.socket() as unconnected, pytest.raises(OSError, match=NO_NETWORK):
            unconnected.connect(("127.0.0.1", port))
    socket.create_connection(("127.0.0.1", port)).close()  # and afterwards, as before
    acceptor.join(timeout=30)
    assert not acceptor.is_alive()  # the one connection let through was accepted
    listener.close()


def test_submit_prefetches_what_its_workers_run(tmp_path):
    preset = tmp_path / "grid.yaml"
    preset.write_text("model: telea\nimages: sample:2\nmask: [16, 32]\nsize: 64\nmetrics: [ssim]\n")
    sweep = configurations(main, ["sweep", str(preset), "--set", "seed=[0, 1]", "--storage", "sqlite:///q.db"])
    assert [(c.mask, c.seed) for c in sweep] == [(16, 0), (16, 1), (32, 0), (32, 1)]
    tune = configurations(main, ["tune", "--images", "wikiart:4", "--space", "model=tiny,telea seed=0,1",
                                 "--storage", "sqlite:///q.db"])
    assert [(c.model, c.images, c.seed) for c in tune] == [
        ("tiny", "wikiart:4", 0), ("tiny", "wikiart:4", 1), ("telea", "wikiart:4", 0), ("telea", "wikiart:4", 1)]
