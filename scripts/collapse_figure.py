"""Make docs/images/collapse-telea.png from an offline run, in a fresh SQLite store in a temporary folder.

    .venv/bin/python scripts/collapse_figure.py

runs `rip run --images sample:11 --model telea --size 128 --mask 32 --metrics stlpips-alex
--experiment collapse-demo` and `rip analyze --experiment collapse-demo --features stlpips-vgg`, and
puts the report's `collection_diversity`, `collection_distribution` and `collection_embedding`
figures side by side.
"""

import argparse
import tempfile
from pathlib import Path

from PIL import Image

from readme_images import rip  # the same fresh SQLite store and spool in a folder

REPO = Path(__file__).resolve().parent.parent
RUN = ["run", "--images", "sample:11", "--model", "telea", "--size", "128", "--mask", "32", "--metrics", "stlpips-alex",
       "--experiment", "collapse-demo"]
ANALYSIS = ["analyze", "--experiment", "collapse-demo", "--features", "stlpips-vgg", "--filmstrips", "0", "--no-log",
            "--dpi", "110"]
FIGURES = ("collection_diversity", "collection_distribution", "collection_embedding")
WIDTH = 1600  # px of the composed picture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "images" / "collapse-telea.png")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder)
        rip(store, *RUN)
        rip(store, *ANALYSIS, "--output", str(store / "analysis"))
        pictures = [Image.open(store / "analysis" / "figures" / f"{name}.png").convert("RGB") for name in FIGURES]
        height = min(picture.height for picture in pictures)
        pictures = [picture.resize((round(picture.width * height / picture.height), height), Image.LANCZOS)
                    for picture in pictures]
        row = Image.new("RGB", (sum(picture.width for picture in pictures), height), "white")
        left = 0
        for picture in pictures:
            row.paste(picture, (left, 0))
            left += picture.width
        row = row.resize((WIDTH, round(row.height * WIDTH / row.width)), Image.LANCZOS)
        row.convert("P", palette=Image.Palette.ADAPTIVE, colors=128).save(args.output, optimize=True)
    print(f"wrote {args.output} ({args.output.stat().st_size // 1000} kB)")


if __name__ == "__main__":
    main()
