"""A local write-ahead log of checkpoints: written before upload, removed once the server has them.

What the tracking server has not confirmed survives a crash or an outage on local disk, and
`rip run --resume` uploads it.
"""

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


def default_spool_root() -> Path:
    """`$RIP_SPOOL`, or `~/.cache/rip/spool`."""
    return Path(os.environ.get("RIP_SPOOL") or Path.home() / ".cache" / "rip" / "spool")


@dataclass(frozen=True)
class SpooledCheckpoint:
    image_id: str
    percent: int
    iteration: int
    values: dict[str, float]
    image_path: Path

    def image(self) -> np.ndarray:
        return np.asarray(Image.open(self.image_path).convert("RGB"))


class Spool:
    """Checkpoints of one parent run, under `root/<run id>/<image id>/<percent>/`."""

    def __init__(self, root: Path, run_id: str):
        self.folder = Path(root) / run_id

    def add(self, image_id: str, percent: int, iteration: int, values: dict[str, float], image: np.ndarray) -> None:
        """Write one checkpoint completely, or not at all (a rename publishes it)."""
        target = self.folder / image_id / f"{percent:04d}"
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".partial-"))
        Image.fromarray(image).save(staging / "generation.png")
        (staging / "record.json").write_text(json.dumps({"iteration": iteration, "values": values}))
        staging.rename(target)

    def remove(self, image_id: str, percent: int) -> None:
        """Drop one uploaded checkpoint, and the folders it leaves empty."""
        shutil.rmtree(self.folder / image_id / f"{percent:04d}", ignore_errors=True)
        for folder in (self.folder / image_id, self.folder):
            try:
                folder.rmdir()
            except OSError:  # not empty, or already gone
                break

    def entries(self) -> list[SpooledCheckpoint]:
        """Every complete checkpoint in the spool, by image and percent."""
        found = []
        for record in sorted(self.folder.glob("*/[0-9]*/record.json")):
            data = json.loads(record.read_text())
            found.append(
                SpooledCheckpoint(
                    image_id=record.parent.parent.name,
                    percent=int(record.parent.name),
                    iteration=data["iteration"],
                    values=data["values"],
                    image_path=record.parent / "generation.png",
                )
            )
        return found

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
