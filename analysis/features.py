"""Feature networks that embed images for the distribution measures (KID, FID, precision, recall,
density, coverage) and the embedding figure: one vector per image, batched on a device.

- `inception`: the standard FID space, Inception-v3's 2048 pool features with the TensorFlow
  2015-12-05 weights, through torch-fidelity's extractor (images resized to 299 px as TensorFlow
  did). Its weight file comes from the internet once (`rip prefetch --features inception`,
  `rip.artefacts.FID_INCEPTION`).
- `stlpips-vgg`: the anti-aliased VGG16 trained on human perceptual judgements that the ST-LPIPS
  package ships, so it works without network. Each of its five ReLU stages is unit-normalised over
  channels at every position (as LPIPS compares them), averaged over positions, and the five are
  concatenated: 1472 numbers. Not the standard space: its values do not compare with published
  FID or KID, only across the runs analysed with it.

    network = load_features("stlpips-vgg")
    vectors = network.embed(images)  # uint8 (N, H, W, 3) -> float32 (N, dim)
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rip.artefacts import FID_INCEPTION

FEATURES = ("inception", "stlpips-vgg")
DEFAULT_FEATURES = "inception"
BATCH = 16  # images per forward pass


class FeaturesUnavailableError(RuntimeError):
    """A feature network's weights are not on this machine."""


@dataclass
class FeatureNetwork:
    """Embeds uint8 RGB images (H, W, 3) as float32 vectors of length `dim`."""

    name: str
    dim: int
    forward: Callable  # uint8 tensor (N, 3, H, W) on `device` -> float tensor (N, dim)
    device: str = "cpu"

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """float32 (N, dim) for N uint8 images of one shape, BATCH at a time."""
        import torch

        out = np.zeros((len(images), self.dim), dtype=np.float32)
        with torch.no_grad():
            for start in range(0, len(images), BATCH):
                batch = np.stack(images[start:start + BATCH]).transpose(0, 3, 1, 2)
                tensor = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
                out[start:start + len(batch)] = self.forward(tensor).float().cpu().numpy()
        return out


def inception_weights() -> Path:
    """Where torch-fidelity's Inception-v3 weights are looked for: torch's hub cache."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / FID_INCEPTION.file


def check_features(name: str) -> None:
    """ValueError for an unknown name; FeaturesUnavailableError (one line) when its weights are missing."""
    if name not in FEATURES:
        raise ValueError(f"unknown feature network {name!r}; valid names: {', '.join(FEATURES)}")
    if name == "inception" and not inception_weights().is_file():
        raise FeaturesUnavailableError(
            f"--features inception needs the FID Inception-v3 weights {FID_INCEPTION.file}, not in "
            f"{inception_weights().parent}: fetch them with `rip prefetch --features inception` "
            "on a machine with internet (or analyse with --features stlpips-vgg, which works offline)")


def ensure_features(name: str) -> None:
    """`check_features`, downloading the Inception weights first when they are missing (once, about
    95 MB, as LPIPS fetches its backbones); FeaturesUnavailableError when that fails too."""
    try:
        check_features(name)
    except FeaturesUnavailableError as missing:
        from rip.prefetch import fetch_fid_inception

        try:
            fetch_fid_inception(inception_weights())
        except (OSError, RuntimeError) as error:  # no network; a hash mismatch
            raise FeaturesUnavailableError(f"{missing} [download failed: {error}]") from error


def load_features(name: str, device: str = "cpu") -> FeatureNetwork:
    """The feature network `name` (see FEATURES) on `device`."""
    check_features(name)
    return _inception(device) if name == "inception" else _stlpips_vgg(device)


def _inception(device: str) -> FeatureNetwork:
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    extractor = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                            feature_extractor_weights_path=str(inception_weights())).to(device)
    return FeatureNetwork("inception", 2048, lambda batch: extractor(batch)[0], device)


def _stlpips_vgg(device: str) -> FeatureNetwork:
    from stlpips_pytorch.utils import normalize_tensor

    from rip.metrics.stlpips_metrics import load_stlpips

    lpips = load_stlpips("vgg", device).network

    def forward(batch):
        scaled = lpips.scaling_layer(batch.float() / 127.5 - 1)  # [0, 255] -> [-1, 1], then LPIPS's scaling
        return _concat([normalize_tensor(stage).mean(dim=(2, 3)) for stage in lpips.net.forward(scaled)])

    return FeatureNetwork("stlpips-vgg", sum(lpips.chns), forward, device)


def _concat(parts):
    import torch

    return torch.cat(parts, dim=1)
