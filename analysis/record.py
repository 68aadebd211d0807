"""The analysis run: an MLflow run (tag rip.kind=analysis) holding an analysis's outputs.

Its few metrics are named `analysis.*`, never like the image runs' (`ssim`, `iteration`, ...), so
it never appears as a line among the image runs in the UI's charts; the numbers are artifacts.
"""

import os
import time
from pathlib import Path

import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, Run, RunTag

from analysis.load import KIND_TAG
from analysis.verdicts import FAILS, HOLDS, UNKNOWN

METRIC_PREFIX = "analysis."

ANALYSIS_EXPERIMENT = "rip-analysis"  # where an analysis of several experiments is recorded


def log_analysis_run(
    client: MlflowClient,
    folder: str | Path,
    frame: pd.DataFrame,
    params: dict[str, str],
    run_id: str | None = None,
    experiment: str | None = None,
    measures: dict[str, float] | None = None,
) -> Run:
    """Log every file under `folder` as artifacts of an analysis run; return the finished run.

    `run_id` (default: $MLFLOW_RUN_ID, set by `mlflow run`) records into an existing run. A new
    run goes to `experiment`, by default the analysed experiment when there is one, else
    "rip-analysis". With `verdicts.csv` in `folder`, metrics `analysis.verdicts_holds`,
    `analysis.verdicts_fail` and `analysis.verdicts_unknown` count its verdicts; each of `measures`
    is logged as `analysis.<name>` (e.g. set_values_computed: 0 when the set measures came from the cache).
    """
    run_id = run_id or os.environ.get("MLFLOW_RUN_ID")
    experiments = sorted(frame["experiment"].unique())
    if not run_id:
        name = experiment or (experiments[0] if len(experiments) == 1 else ANALYSIS_EXPERIMENT)
        found = client.get_experiment_by_name(name)
        experiment_id = found.experiment_id if found else client.create_experiment(name)
        run_id = client.create_run(experiment_id, run_name=f"analysis-{'-'.join(experiments)}"[:200]).info.run_id
    existing = client.get_run(run_id).data.params
    counts = {
        "n_image_runs": frame["run_id"].nunique(),
        "n_configurations": frame["parent_run_id"].nunique(),
        "n_images": frame["image_id"].nunique(),
        "analysed_experiments": ",".join(experiments),
    }
    params = {key: str(value)[:6000] for key, value in {**params, **counts}.items() if key not in existing}
    client.log_batch(
        run_id,
        metrics=[Metric(key, float(value), int(time.time() * 1000), 0) for key, value in
                 {**_verdict_counts(Path(folder)), **{METRIC_PREFIX + k: v for k, v in (measures or {}).items()}}
                 .items()],
        params=[Param(key, value) for key, value in params.items()],
        tags=[RunTag(KIND_TAG, "analysis")],
    )
    try:
        client.log_artifacts(run_id, str(folder))
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return client.get_run(run_id)


def _verdict_counts(folder: Path) -> dict[str, float]:
    """analysis.verdicts_* -> how many verdicts.csv rows hold, fail, lack data (none without the file)."""
    path = folder / "verdicts.csv"
    if not path.is_file():
        return {}
    verdicts = pd.read_csv(path)["verdict"]
    names = {HOLDS: "holds", FAILS: "fail", UNKNOWN: "unknown"}
    return {f"{METRIC_PREFIX}verdicts_{name}": float((verdicts == verdict).sum()) for verdict, name in names.items()}
