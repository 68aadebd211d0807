"""Distances between the original and a generation: one interface, several metrics."""

from collections.abc import Sequence

from rip.metrics.base import Metric, MetricUnavailableError

METRIC_NAMES = ("lpips-alex", "lpips-vgg", "lpips-squeeze", "stlpips-alex", "stlpips-vgg", "ssim", "psnr")

__all__ = ["METRIC_NAMES", "Metric", "MetricUnavailableError", "load_metrics"]


def load_metrics(names: Sequence[str], device: str = "cpu") -> list[Metric]:
    """Build the metrics called `names` (see METRIC_NAMES), their networks on `device`."""
    if isinstance(names, str):
        raise TypeError(f"names must be a sequence of metric names, not the string {names!r}")
    unknown = [name for name in names if name not in METRIC_NAMES]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; valid names: {', '.join(METRIC_NAMES)}")
    lpips_nets = [name.removeprefix("lpips-") for name in names if name.startswith("lpips-")]
    if lpips_nets:  # every missing backbone named at once, before any network is built
        from rip.metrics.lpips_metrics import ensure_backbones

        ensure_backbones(lpips_nets)
    return [_load(name, device) for name in names]


def _load(name: str, device: str) -> Metric:
    family, _, net = name.partition("-")
    if family == "lpips":
        from rip.metrics.lpips_metrics import load_lpips

        return load_lpips(net, device)
    if family == "stlpips":
        from rip.metrics.stlpips_metrics import load_stlpips

        return load_stlpips(net, device)
    from rip.metrics.pixel_metrics import Psnr, Ssim

    return Ssim() if name == "ssim" else Psnr()
