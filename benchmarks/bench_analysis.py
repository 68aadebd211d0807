"""Loading a study-sized store: bulk metric histories versus one request per run and metric.

Populates a loopback `mlflow server` (started here unless --tracking-uri is given) with runs
shaped like the study's replication: 100 images x 4 masks = 400 image runs, 3 LPIPS nets,
9 checkpoints (0..400 %), the parameters and tags `rip run` logs, then times
`analysis.load_results` against the naive per-run `get_metric_history` loop.

    .venv/bin/python benchmarks/bench_analysis.py [--images 100] [--masks 32,64,128,256] [--tracking-uri URI]
"""

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from mlflow import MlflowClient  # noqa: E402

from analysis.history import metric_histories, naive_metric_histories  # noqa: E402
from analysis.load import load_runs, load_values  # noqa: E402
from analysis.simulation import Study, simulate, write_store  # noqa: E402

KEYS = ("lpips_alex", "lpips_vgg", "lpips_squeeze")
ENVIRONMENT = {f"version_{name}": "0" for name in ("torch", "diffusers", "transformers", "mlflow", "lpips",
                                                   "stlpips-pytorch", "numpy", "pillow", "rip")}
EXTRA = {**ENVIRONMENT, "code_commit": "bench", "resolved_device": "cpu", "resolved_steps": "50",
         "resolved_guidance": "7.5", "resolved_strength": "1.0", "resolved_dtype": "float16", "revision": "main"}


def populate(client: MlflowClient, experiment: str, images: int, masks: list[int], threads: int = 4) -> int:
    """Log a simulated study (analysis.simulation) as rip run would; return the number of image runs."""
    frame = simulate(Study(experiment=experiment, images=images, masks=tuple(masks), metrics=KEYS),
                     np.random.default_rng(0))
    write_store(client, frame, EXTRA, originals=False, threads=threads)
    return frame["run_id"].nunique()


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", help="an existing server [default: start one on loopback]")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--masks", default="32,64,128,256")
    args = parser.parse_args()

    server = None
    if not args.tracking_uri:
        from tests.conftest import MlflowServer

        server = MlflowServer(Path(tempfile.mkdtemp(prefix="bench-analysis-"))).start()
        args.tracking_uri = server.uri
    try:
        client = MlflowClient(args.tracking_uri)
        experiment = f"bench-analysis-{uuid.uuid4().hex[:8]}"
        count, seconds = timed(populate, client, experiment, args.images, [int(m) for m in args.masks.split(",")])
        print(f"populated {count} image runs x {len(KEYS)} metrics x 9 checkpoints in {seconds:.1f} s")

        runs, search_s = timed(load_runs, client, [experiment])
        bulk, bulk_s = timed(load_values, client, runs)
        keys = dict(zip(runs["run_id"], runs["metric_keys"]))
        interval, interval_s = timed(metric_histories, client, keys, use_bulk=False)
        naive, naive_s = timed(naive_metric_histories, client, keys)
        requests = sum(len(k) for k in keys.values())

        expected = naive.rename(columns={"key": "metric", "step": "percent"})[["run_id", "metric", "percent", "value"]]
        got = bulk[["run_id", "metric", "percent", "value"]]
        merged = expected.merge(got, on=["run_id", "metric", "percent"], suffixes=("_naive", "_bulk"))
        assert len(merged) == len(expected) == len(got) and (merged.value_naive == merged.value_bulk).all()
        assert len(interval) == len(naive)

        print(f"{len(bulk)} values of {len(runs)} runs, identical in both approaches")
        print(pd.DataFrame([
            ("search runs (paginated search_runs)", search_s),
            ("metric histories, bulk (get-history-bulk), into the tidy frame", bulk_s),
            ("metric histories, documented route (get-history-bulk-interval)", interval_s),
            (f"metric histories, naive ({requests} get_metric_history calls)", naive_s),
            ("load_results total, bulk", search_s + bulk_s),
            ("load_results total, naive", search_s + naive_s),
        ], columns=["step", "seconds"]).to_string(index=False, float_format=lambda s: f"{s:.2f}"))
    finally:
        if server:
            server.stop()


if __name__ == "__main__":
    main()
