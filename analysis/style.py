"""One look for every figure: rc settings, colours per mask, human metric names, titles, saving."""

import contextlib
import os
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties

from analysis.frames import metric_key

X_LABEL = "pixels inpainted (%)"
# Okabe–Ito: distinguishable with the common colour-vision deficiencies
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
RC = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "figure.titlesize": 9,
    "legend.fontsize": 7,
    "legend.title_fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.4,
    "lines.markersize": 3.5,
    "pdf.fonttype": 42,  # TrueType text in PDFs, as journals ask
    "svg.fonttype": "path",
    "svg.hashsalt": "rip",  # reproducible SVG ids
}
FORMATS = ("png", "svg", "pdf")
CHARACTER_WIDTH = 0.6  # a DejaVu Sans character's mean width, in ems (generous: wrapped titles never overflow)
NETS = {"alex": "AlexNet", "vgg": "VGG", "squeeze": "SqueezeNet"}
FAMILIES = {"lpips": "LPIPS", "stlpips": "ST-LPIPS"}
OTHERS = {"ssim": "SSIM", "psnr": "PSNR (dB)", "1-ssim": "1 − SSIM"}


def styled() -> contextlib.AbstractContextManager:
    """The context in which every figure is drawn."""
    return matplotlib.rc_context(RC)


def metric_label(metric: str) -> str:
    """A metric's name for readers: 'lpips_vgg' -> 'LPIPS (VGG)', '1-ssim' -> '1 − SSIM'."""
    if metric in OTHERS:
        return OTHERS[metric]
    key = metric_key(metric)
    family, _, net = key.partition("_")
    if family in FAMILIES and net:
        return f"{FAMILIES[family]} ({NETS.get(net, net)})"
    return OTHERS.get(key, metric)


def colours(levels: Iterable) -> dict:
    """A colour per level (e.g. mask size), in sorted order, the same in every figure."""
    return {level: PALETTE[i % len(PALETTE)] for i, level in enumerate(sorted(set(levels)))}


def mask_label(mask) -> str:
    return f"{int(mask)} px"


def count_text(counts: Sequence[int]) -> str:
    """'8' when every count is 8, else '6–8'."""
    counts = [int(c) for c in counts]
    low, high = min(counts), max(counts)
    return f"{low}" if low == high else f"{low}–{high}"


def describe(frame: pd.DataFrame) -> str:
    """Model, image set and size of the runs in `frame`, for a subtitle."""
    parts = []
    for column, name in (("model", "model"), ("images", "images"), ("size", "size")):
        if column in frame:
            values = sorted({_short(v) for v in frame[column].dropna().astype(str)})
            if values:
                text = ", ".join(values)
                parts.append(f"{name} {text} px" if column == "size" else f"{name} {text}")
    return " · ".join(parts)


def title(figure: Figure, text: str, frame: pd.DataFrame | None = None, note: str = "") -> None:
    """The figure's title, then its runs' description and what bars or bands mean, each wrapped to the
    figure's width."""
    lines = [text] + ([describe(frame)] if frame is not None and describe(frame) else []) + ([note] if note else [])
    size = FontProperties(size=matplotlib.rcParams["figure.titlesize"]).get_size_in_points()
    width = max(20, int(figure.get_figwidth() * 72 / (size * CHARACTER_WIDTH)))
    figure.suptitle("\n".join(part for line in lines for part in textwrap.wrap(line, width)))


def save(figure: Figure, path: str | Path, dpi: int = 300, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write `figure` as `path` with each suffix of `formats` (PNG at `dpi`); return the files."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    with styled():
        for fmt in formats:
            target = path.with_suffix(f".{fmt}")
            figure.savefig(target, dpi=dpi, format=fmt, metadata=_metadata(fmt))
            written.append(target)
    return written


def jitter(n: int, width: float, seed: int = 0) -> np.ndarray:
    """`n` reproducible offsets, uniform in ±width/2."""
    return np.random.default_rng(seed).uniform(-width / 2, width / 2, n)


def _metadata(fmt: str) -> dict:
    """No creation dates, so the same figure gives the same file."""
    return {"svg": {"Date": None}, "pdf": {"CreationDate": None}, "png": {"Software": None}}.get(fmt, {})


def _short(value: str) -> str:
    """A folder's last component instead of its absolute path."""
    return os.path.basename(value.rstrip("/")) if os.path.isabs(value) else value
