"""The feature networks' real loading code, end to end, without network: torch-fidelity's
Inception-v3 architecture with random weights saved under the file name the project looks for."""

import numpy as np
import pytest
import torch

from analysis.features import inception_weights, load_features
from tests.fid_inception import unloaded_inception


@pytest.fixture
def random_inception_weights(tmp_path, monkeypatch):
    """A random-weight state dict of the real architecture (every key and shape) in a fresh TORCH_HOME."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    torch.manual_seed(0)
    network = unloaded_inception()
    path = inception_weights()
    assert path.is_relative_to(tmp_path) and path.name == "weights-inception-2015-12-05-6726825d.pth"
    path.parent.mkdir(parents=True)
    torch.save(network.state_dict(), path)
    return network


def test_inception_features_embed_through_the_real_loading_code(random_inception_weights):
    """`load_features("inception")` reads the file from torch's cache: 2048 finite numbers per image,
    the same on a second pass and alone, different for different images."""
    images = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    images[2] = images[0][::-1]  # the same pixels, upside down
    network = load_features("inception")
    vectors = network.embed(list(images))
    with torch.no_grad():  # the file's weights, not a fresh initialisation: the saved network's own features
        direct = random_inception_weights(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous())[0]
    np.testing.assert_allclose(vectors, direct.numpy(), rtol=1e-5, atol=1e-6)
    assert network.dim == 2048 and vectors.shape == (3, 2048) and vectors.dtype == np.float32
    assert np.isfinite(vectors).all()
    np.testing.assert_array_equal(network.embed(list(images)), vectors)
    np.testing.assert_array_equal(network.embed(list(images[:1])), vectors[:1])
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert np.abs(vectors[a] - vectors[b]).max() > 1e-3 * np.abs(vectors).max(), (a, b)
