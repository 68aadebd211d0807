"""What `rip analyze`'s collection stage costs: the set measures of a store of the replication's size.

    python benchmarks/bench_collection.py --images 100 --masks 64,128,256 --size 64

writes a synthetic store (a configuration run per mask, an image run per image with `original.png`
and `generations/{percent:04d}.png` at 0..400 % every 50 %, and an ST-LPIPS value per checkpoint)
into a fresh SQLite store under --folder, then times `analysis.collection.collect` twice: the first
call computes every feature and pairwise distance and logs them back; the second finds them cached.
The generations move each picture a little toward one shared picture at every checkpoint. Prints
the counts and seconds of each stage as one JSON line.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from mlflow import MlflowClient
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.collection import collect  # noqa: E402
from analysis.collection_scenarios import smooth_picture  # noqa: E402
from analysis.load import load_results  # noqa: E402
from analysis.simulation import Study, simulate, write_store  # noqa: E402
from rip.tracking.tags import IMAGE_TAG, KIND_TAG  # noqa: E402

PERCENTS = tuple(range(0, 401, 50))


def write(client: MlflowClient, experiment: str, images: int, masks: tuple[int, ...], size: int) -> int:
    """The store: runs and metrics through `analysis.simulation.write_store`, then each image run's PNGs."""
    frame = simulate(Study(experiment=experiment, images=images, masks=masks, metrics=("stlpips_alex",),
                           percents=PERCENTS), np.random.default_rng(0))
    write_store(client, frame, originals=False)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    runs = client.search_runs([experiment_id], f"tags.`{KIND_TAG}` = 'image'", max_results=5000)
    shared = smooth_picture(size, 1)

    def pictures(run) -> None:
        seed = int(run.data.tags[IMAGE_TAG].split("-")[-1])
        original = smooth_picture(size, 100 + seed)
        with tempfile.TemporaryDirectory() as folder:
            Image.fromarray(original.astype(np.uint8)).save(Path(folder, "original.png"))
            client.log_artifact(run.info.run_id, str(Path(folder, "original.png")))
            generations = Path(folder, "generations")
            generations.mkdir()
            for percent in PERCENTS:
                weight = percent / 800
                image = np.rint((1 - weight) * original + weight * shared).astype(np.uint8)
                Image.fromarray(image).save(generations / f"{percent:04d}.png")
            client.log_artifacts(run.info.run_id, str(generations), "generations")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(pictures, runs))
    return len(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--masks", default="64,128,256")
    parser.add_argument("--size", type=int, default=64, help="side of the logged images, px")
    parser.add_argument("--features", default="stlpips-vgg")
    parser.add_argument("--folder", default=None, help="where the store goes [default: a temporary folder]")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    folder = Path(args.folder or tempfile.mkdtemp(prefix="bench-collection-"))
    folder.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = "bench-collection"
    if client.get_experiment_by_name(experiment) is None:
        client.create_experiment(experiment, artifact_location=(folder / "artifacts").as_uri())
    start = time.perf_counter()
    runs = write(client, experiment, args.images, tuple(int(m) for m in args.masks.split(",")), args.size)
    written = time.perf_counter() - start
    frame = load_results(client=client, experiments=[experiment])
    start = time.perf_counter()
    first = collect(client, frame, args.features)
    fresh = time.perf_counter() - start
    start = time.perf_counter()
    second = collect(client, frame, args.features)
    cached = time.perf_counter() - start
    embedded = sum(len(v.image_ids) * (len(v.percents) + 1) for v in first.vectors.values())
    print(json.dumps({"image_runs": runs, "checkpoints": len(PERCENTS), "size_px": args.size,
                      "features": args.features, "cpu_threads": os.cpu_count(), "store_written_s": round(written, 1),
                      "collect_s": round(fresh, 1), "embedded_images": embedded,
                      "pair_distances": int(len(first.diversity)), "computed": first.computed,
                      "cached_collect_s": round(cached, 1), "cached_computed": second.computed}))


if __name__ == "__main__":
    main()
