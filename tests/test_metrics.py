"""Metrics: values against independent computations, batching, and LPIPS checkpoint handling."""

import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from skimage import data
from skimage.metrics import structural_similarity
from skimage.transform import resize

from rip.metrics import METRIC_NAMES, Metric, MetricUnavailableError, load_metrics

SIZE = 64


def to_batch(*images):
    """(N, 3, H, W) float32 tensor in [0, 1] from (H, W, 3) float arrays."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().contiguous()


def noised(image, sigma, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(image + rng.normal(0, sigma, image.shape), 0, 1)


@pytest.fixture(scope="module")
def photos():
    """Two 64×64 RGB photographs in [0, 1]."""
    return [resize(image, (SIZE, SIZE), anti_aliasing=True) for image in (data.astronaut(), data.chelsea())]


@pytest.fixture(scope="module")
def pairs(photos):
    """Originals and images: identical, slightly noised, heavily noised, another photo."""
    astronaut, cat = photos
    originals = to_batch(astronaut, astronaut, astronaut, astronaut)
    images = to_batch(astronaut, noised(astronaut, 0.02), noised(astronaut, 0.2), cat)
    return originals, images


@pytest.fixture(scope="module")
def stlpips_metrics():
    return load_metrics(["stlpips-alex", "stlpips-vgg"])


def test_package_imports_without_torch():
    code = "import sys, rip.metrics; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[1], check=True)


def test_unknown_name_raises():
    with pytest.raises(ValueError, match="lpips-foo"):
        load_metrics(["ssim", "lpips-foo"])


def test_names_and_keys():
    ssim, psnr = load_metrics(["ssim", "psnr"])
    assert isinstance(ssim, Metric)
    assert (ssim.key, ssim.higher_is_better, psnr.key, psnr.higher_is_better) == ("ssim", True, "psnr", True)
    assert set(METRIC_NAMES) >= {"ssim", "psnr", "stlpips-alex", "stlpips-vgg"}


def test_rejects_out_of_range_inputs(pairs):
    originals, images = pairs
    (psnr,) = load_metrics(["psnr"])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        psnr(originals * 2 - 1, images)


def test_ssim_matches_skimage(pairs):
    originals, images = pairs
    (ssim,) = load_metrics(["ssim"])
    values = ssim(originals, images)
    expected = [
        structural_similarity(o.permute(1, 2, 0).double().numpy(), i.permute(1, 2, 0).double().numpy(),
                              channel_axis=-1, data_range=1.0)
        for o, i in zip(originals, images)
    ]
    assert values.dtype == np.float64 and values.shape == (4,)
    np.testing.assert_allclose(values, expected, rtol=1e-12)
    assert values[0] == 1.0
    assert values[0] > values[1] > values[2]


def test_psnr_matches_formula_and_caps_identical(pairs):
    originals, images = pairs
    (psnr,) = load_metrics(["psnr"])
    values = psnr(originals, images)
    mse = ((originals.double() - images.double()) ** 2).mean(dim=(1, 2, 3)).numpy()
    assert values.dtype == np.float64 and values.shape == (4,)
    assert values[0] == 100.0
    np.testing.assert_allclose(values[1:], 10 * np.log10(1 / mse[1:]), rtol=1e-10)


def test_stlpips_values(stlpips_metrics, pairs):
    originals, images = pairs
    for metric in stlpips_metrics:
        values = metric(originals, images)
        assert metric.higher_is_better is False
        assert values.dtype == np.float64 and values.shape == (4,)
        assert values[0] == 0.0
        assert 0 < values[1] < values[2], (metric.name, values)
        assert values[3] > values[1], (metric.name, values)


def test_results_do_not_depend_on_batch_size(stlpips_metrics, pairs):
    originals, images = pairs
    for metric in stlpips_metrics + load_metrics(["ssim", "psnr"]):
        together = metric(originals, images)
        one_by_one = np.concatenate([metric(originals[i : i + 1], images[i : i + 1]) for i in range(len(images))])
        np.testing.assert_allclose(together, one_by_one, rtol=0, atol=1e-5, err_msg=metric.name)


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty TORCH_HOME; returns its hub checkpoint directory."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert torch.hub.get_dir() == str(tmp_path / "hub")
    return tmp_path / "hub" / "checkpoints"


@pytest.mark.parametrize("name", ["lpips-alex", "lpips-vgg", "lpips-squeeze"])
def test_lpips_without_checkpoint_or_network_explains(name, torch_home, monkeypatch):
    def no_network(*args, **kwargs):
        raise socket.gaierror("no network")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    file_name = {"lpips-alex": "alexnet-owt-7be5be79.pth", "lpips-vgg": "vgg16-397923af.pth",
                 "lpips-squeeze": "squeezenet1_1-b8a52dc0.pth"}[name]
    with pytest.raises(MetricUnavailableError) as raised:
        load_metrics([name])
    message = str(raised.value)
    assert file_name in message and str(torch_home) in message
    assert f"https://download.pytorch.org/models/{file_name}" in message
    assert not (torch_home / file_name).exists()


def test_lpips_loads_backbones_from_torch_home(torch_home, pairs):
    torch_home.mkdir(parents=True)
    written = {}
    for net, model, file_name in [("alex", torchvision.models.alexnet, "alexnet-owt-7be5be79.pth"),
                                  ("squeeze", torchvision.models.squeezenet1_1, "squeezenet1_1-b8a52dc0.pth")]:
        torch.manual_seed(0)
        written[net] = model(weights=None).state_dict()
        torch.save(written[net], torch_home / file_name)

    originals, images = pairs
    for metric in load_metrics(["lpips-alex", "lpips-squeeze"]):
        net = metric.name.removeprefix("lpips-")
        # lpips splits torchvision's `features` into slices keeping the layer indices
        for key, value in metric.network.net.state_dict().items():
            torch.testing.assert_close(value, written[net]["features." + key.split(".", 1)[1]], rtol=0, atol=0)
        values = metric(originals, images)
        assert values.shape == (4,) and values[0] == 0.0 and (values[1:] > 0).all(), (metric.name, values)


def test_lpips_offline_names_every_missing_backbone_at_once(torch_home, monkeypatch):
    lookups = []

    def no_network(*args, **kwargs):
        lookups.append(args[0])
        raise socket.gaierror("no network")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    torch_home.mkdir(parents=True)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), torch_home / "alexnet-owt-7be5be79.pth")
    with pytest.raises(MetricUnavailableError) as raised:
        load_metrics(["ssim", "lpips-alex", "lpips-vgg", "lpips-squeeze"])
    message = str(raised.value)
    assert message.startswith("lpips-vgg, lpips-squeeze need torchvision's ImageNet backbones, not in "
                              f"{torch_home} and could not be downloaded")
    for file_name in ("vgg16-397923af.pth", "squeezenet1_1-b8a52dc0.pth"):
        assert f"\n  {torch_home / file_name}  from https://download.pytorch.org/models/{file_name}" in message
    assert "alexnet" not in message  # present: not named
    assert lookups == ["download.pytorch.org"]  # one failed download: the other is not tried
