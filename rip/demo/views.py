"""What the page shows of a run: the generation with its last square outlined, the distances so far."""

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from rip.config import RunConfig
from rip.protocol.engine import Checkpoint
from rip.protocol.masks import square_for

OUTLINE = (255, 0, 170)  # magenta: stands out on paintings and photographs alike
SHOWN_SIDE = 512  # generations are enlarged to this side (nearest neighbour) so the outline stays sharp


def outlined(checkpoint: Checkpoint, config: RunConfig) -> np.ndarray:
    """The checkpoint's generation, enlarged to at least `SHOWN_SIDE`, with the square inpainted last outlined."""
    scale = max(1, SHOWN_SIDE // config.size)
    picture = Image.fromarray(checkpoint.image)
    picture = picture.resize((config.size * scale, config.size * scale), Image.Resampling.NEAREST)
    if checkpoint.iteration:
        square = square_for(config, checkpoint.image_id, checkpoint.iteration - 1)
        top, left, side = square.top * scale, square.left * scale, square.mask * scale
        width = max(2, picture.width // 170)
        ImageDraw.Draw(picture).rectangle((left, top, left + side - 1, top + side - 1), outline=OUTLINE, width=width)
    return np.asarray(picture)


def distance_rows(checkpoint: Checkpoint, config: RunConfig) -> list[dict]:
    """One row per metric of the checkpoint: percent, metric, value (the plot's data)."""
    return [{"percent": checkpoint.percent, "metric": name, "value": checkpoint.values[metric_key(name)]}
            for name in config.metrics]


def distance_frame(rows: list[dict]) -> pd.DataFrame:
    """The plot's data: percent, metric, value."""
    return pd.DataFrame(rows, columns=["percent", "metric", "value"])


def caption(checkpoint: Checkpoint, config: RunConfig) -> str:
    """`150 %: 0.213`: the percent inpainted and the first metric's value."""
    return f"{checkpoint.percent} %: {checkpoint.values[metric_key(config.metrics[0])]:.3f}"


def metric_key(name: str) -> str:
    """A metric's key in checkpoint values and in MLflow: lpips-alex -> lpips_alex."""
    return name.replace("-", "_")
