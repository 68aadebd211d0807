"""Shift-tolerant LPIPS (Ghildyal & Liu, ECCV 2022) from the `stlpips-pytorch` package.

A different metric from LPIPS: its anti-aliased backbones were trained from scratch on human
perceptual judgements, not on ImageNet, so its values are not comparable with lpips-*.
The package ships its weights and works offline. It is BSD-2-Clause licensed, but its bundled
`models_lpf` code (from Adobe's antialiased-cnns) is under CC BY-NC-SA 4.0: non-commercial use only.
"""

from rip.metrics.lpips_metrics import PerceptualDistance


def load_stlpips(net, device="cpu"):
    """Shift-tolerant LPIPS with backbone `net` ("alex" or "vgg")."""
    from stlpips_pytorch import stlpips

    network = stlpips.LPIPS(net=net, variant="shift_tolerant", verbose=False)
    return PerceptualDistance(f"stlpips-{net}", network, device)
