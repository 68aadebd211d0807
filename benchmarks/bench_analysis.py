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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric, Param, RunTag  # noqa: E402

from analysis.history import metric_histories, naive_metric_histories  # noqa: E402
from analysis.load import load_runs, load_values  # noqa: E402
from rip.config import RunConfig  # noqa: E402

KEYS = ("lpips_alex", "lpips_vgg", "lpips_squeeze")
ENVIRONMENT = {f"version_{name}": "0" for name in ("torch", "diffusers", "transformers", "mlflow", "lpips",
                                                   "stlpips-pytorch", "numpy", "pillow", "rip")}


def populate(client: MlflowClient, experiment: str, images: int, masks: list[int], threads: int = 4) -> int:
    """Log the runs with log_batch; return the number of image runs."""
    experiment_id = client.create_experiment(experiment)
    rng = np.random.default_rng(0)
    steps = list(range(0, 401, 50))
    jobs = []
    for mask in masks:
        config = RunConfig(mask=mask, images=f"wikiart:{images}", experiment=experiment)
        params = {**config.as_params(), **ENVIRONMENT, "code_commit": "bench", "resolved_device": "cpu",
                  "resolved_steps": "50", "resolved_guidance": "7.5", "resolved_strength": "1.0",
                  "resolved_dtype": "float16", "revision": "main"}
        parent = client.create_run(experiment_id, run_name=f"sd2-mask{mask}-seed0").info.run_id
        client.log_batch(parent, params=[Param(k, v) for k, v in params.items()],
                         tags=[RunTag("rip.kind", "configuration"), RunTag("rip.config", config.to_json()),
                               RunTag("rip.backend", "diffusers")])
        for index in range(images):
            curve = rng.uniform(0.2, 0.7) * (1 - np.exp(-np.array(steps) / rng.uniform(50, 200)))
            jobs.append((parent, config, params, f"wikiart-{index:05d}", curve))

    def child(job) -> None:
        parent, config, params, image_id, curve = job
        run_id = client.create_run(experiment_id, run_name=image_id, tags={
            "mlflow.parentRunId": parent, "rip.kind": "image", "rip.image_id": image_id,
            "rip.config": config.to_json(), "rip.image_origin": f"/cache/{image_id}.png"}).info.run_id
        metrics = [Metric(key, float(value + 0.01 * k), 0, step)
                   for k, key in enumerate(KEYS) for step, value in zip(steps, curve)]
        metrics += [Metric("iteration", step * (512 // config.mask) ** 2 // 100, 0, step) for step in steps]
        client.log_batch(run_id, metrics=metrics, params=[Param(k, v) for k, v in params.items()])
        client.set_terminated(run_id)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(child, jobs))
    for parent in {job[0] for job in jobs}:
        client.set_terminated(parent)
    return len(jobs)


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
