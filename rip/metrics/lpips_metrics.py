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

    ensure_backbones([net])
    with warnings.catch_warnings():  # lpips still passes torchvision's deprecated `pretrained=True`
        warnings.filterwarnings("ignore", message=".*deprecated since 0.13", category=UserWarning)
        network = lpips.LPIPS(net=net, verbose=False)
    return PerceptualDistance(f"lpips-{net}", network, device)


def ensure_backbones(nets, progress=False):
    """Put the backbone checkpoint of every net in `nets` into the torch hub cache, downloading what is
    missing (with a progress bar if `progress`); return the nets downloaded. Raise one
    MetricUnavailableError naming every checkpoint that is still missing.

    After a failed download the other missing checkpoints are not tried: they would fail alike.
    """
    missing, downloaded, failure = [], [], None
    for net in missing_backbones(nets):
        url, path = backbone_url(net), backbone_path(net)
        if failure is None:
            failure = _download(url, path, progress)
        if failure is None:
            downloaded.append(net)
        else:
            missing.append((net, url, path))
    if missing:
        names = ", ".join(f"lpips-{net}" for net, _, _ in missing)
        files = "".join(f"\n  {path}  from {url}" for _, url, path in missing)
        raise MetricUnavailableError(
            f"{names} need{'s' if len(missing) == 1 else ''} torchvision's ImageNet "
            f"backbone{'' if len(missing) == 1 else 's'}, not in "
            f"{os.path.dirname(missing[0][2])} and could not be downloaded ({failure}). On a machine with internet, `rip prefetch` "
            f"with the same options as this run fetches {'it' if len(missing) == 1 else 'them'} ahead; or fetch "
            f"each URL there and copy the file to its path (the directory is $TORCH_HOME/hub/checkpoints):{files}\n"
            "stlpips-*, ssim and psnr work offline."
        )
    return downloaded


def missing_backbones(nets):
    """The nets of `nets` whose backbone checkpoint is not in the torch hub cache."""
    return [net for net in nets if not os.path.isfile(backbone_path(net))]


def backbone_path(net):
    """Where torchvision looks for the ImageNet checkpoint of lpips network `net`."""
    import torch

    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(backbone_url(net)).path))


def backbone_url(net):
    """The URL of the ImageNet checkpoint torchvision loads for lpips network `net`."""
    import torchvision

    return getattr(torchvision.models, BACKBONE_WEIGHTS[net]).IMAGENET1K_V1.url


def _download(url, path, progress=False):
    """Download `url` to `path`; the error, or None on success."""
    import torch

    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        hash_prefix = torch.hub.HASH_REGEX.search(os.path.basename(path)).group(1)
        torch.hub.download_url_to_file(url, path, hash_prefix, progress=progress)
    except OSError as error:
        return error
    finally:
        socket.setdefaulttimeout(previous_timeout)
    return None
