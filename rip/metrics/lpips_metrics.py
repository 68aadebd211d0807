"""LPIPS (Zhang et al. 2018) with torchvision's ImageNet backbones, from the `lpips` package.

The package ships its linear layers; torchvision loads the backbone from the torch hub cache
(`$TORCH_HOME/hub/checkpoints/`), downloading it on first use.
"""

import os
import socket
import warnings
from urllib.parse import urlparse

from rip.metrics.base import Metric, MetricUnavailableError, check_inputs

# lpips network name -> torchvision weights enum holding the backbone's URL
BACKBONE_WEIGHTS = {"alex": "AlexNet_Weights", "vgg": "VGG16_Weights", "squeeze": "SqueezeNet1_1_Weights"}
DOWNLOAD_TIMEOUT_S = 30  # per socket operation, so a dead network fails instead of hanging


class PerceptualDistance(Metric):
    """A distance computed by an LPIPS-style network taking image batches in [-1, 1]."""

    higher_is_better = False

    def __init__(self, name, network, device="cpu"):
        self.name = name
        self.device = device
        self.network = network.eval().to(device)

    def __call__(self, originals, images):
        import torch

        check_inputs(originals, images)
        with torch.no_grad():
            # [0, 1] -> [-1, 1], the networks' input range
            distances = self.network(originals.to(self.device) * 2 - 1, images.to(self.device) * 2 - 1)
        return distances.reshape(len(originals)).double().cpu().numpy()


def load_lpips(net, device="cpu"):
    """LPIPS with backbone `net` ("alex", "vgg" or "squeeze")."""
    import lpips

    ensure_backbone(net)
    with warnings.catch_warnings():  # lpips still passes torchvision's deprecated `pretrained=True`
        warnings.filterwarnings("ignore", message=".*deprecated since 0.13", category=UserWarning)
        network = lpips.LPIPS(net=net, verbose=False)
    return PerceptualDistance(f"lpips-{net}", network, device)


def ensure_backbone(net):
    """Make sure the backbone checkpoint of `net` is in the torch hub cache, or raise MetricUnavailableError."""
    import torch
    import torchvision

    url = getattr(torchvision.models, BACKBONE_WEIGHTS[net]).IMAGENET1K_V1.url
    file_name = os.path.basename(urlparse(url).path)
    directory = os.path.join(torch.hub.get_dir(), "checkpoints")
    path = os.path.join(directory, file_name)
    if os.path.isfile(path):
        return
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        os.makedirs(directory, exist_ok=True)
        hash_prefix = torch.hub.HASH_REGEX.search(file_name).group(1)
        torch.hub.download_url_to_file(url, path, hash_prefix, progress=False)
    except OSError as error:
        raise MetricUnavailableError(
            f"lpips-{net} needs torchvision's ImageNet backbone {file_name}, which is not in {directory} "
            f"and could not be downloaded ({error}). On a machine with internet, fetch {url} and copy it "
            f"to {path} (the directory is $TORCH_HOME/hub/checkpoints). stlpips-*, ssim and psnr work offline."
        ) from error
    finally:
        socket.setdefaulttimeout(previous_timeout)
