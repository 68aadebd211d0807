"""Pixel-level metrics from scikit-image: SSIM and PSNR."""

import numpy as np

from rip.metrics.base import Metric, check_inputs

PSNR_CAP_DB = 100.0  # PSNR is clipped here; identical images (infinite PSNR) give this value


def _to_hwc(batch):
    return batch.detach().cpu().double().permute(0, 2, 3, 1).numpy()


def _pairs(originals, images):
    """(H, W, 3) float64 arrays of each pair."""
    check_inputs(originals, images)
    return zip(_to_hwc(originals), _to_hwc(images))


class Ssim(Metric):
    """Structural similarity with scikit-image's defaults (7×7 uniform window), 1 = identical."""

    name = "ssim"
    higher_is_better = True

    def __call__(self, originals, images):
        from skimage.metrics import structural_similarity

        return np.array(
            [structural_similarity(o, i, channel_axis=-1, data_range=1.0) for o, i in _pairs(originals, images)],
            dtype=np.float64,
        )


class Psnr(Metric):
    """Peak signal-to-noise ratio in dB, clipped at PSNR_CAP_DB so it stays finite."""

    name = "psnr"
    higher_is_better = True

    def __call__(self, originals, images):
        from skimage.metrics import mean_squared_error, peak_signal_noise_ratio

        values = [
            PSNR_CAP_DB if mean_squared_error(o, i) == 0 else peak_signal_noise_ratio(o, i, data_range=1.0)
            for o, i in _pairs(originals, images)
        ]
        return np.minimum(np.array(values, dtype=np.float64), PSNR_CAP_DB)
