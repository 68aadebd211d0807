"""The analysis run: an MLflow run (tag rip.kind=analysis) holding an analysis's outputs."""

import os
from pathlib import Path

import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Param, RunTag

from analysis.load import KIND_TAG

ANALYSIS_EXPERIMENT = "rip-analysis"  # where an analysis of several experiments is recorded


def log_analysis_run(
    client: MlflowClient,
    folder: str | Path,
    frame: pd.DataFrame,
    params: dict[str, str],
    run_id: str | None = None,
    experiment: str | None = None,
) -> str:
    """Log every file under `folder` as artifacts of an analysis run; return its id.

    `run_id` (default: $MLFLOW_RUN_ID, set by `mlflow run`) records into an existing run. A new
    run goes to `experiment`, by default the analysed experiment when there is one, else
    "rip-analysis".
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
        params=[Param(key, value) for key, value in params.items()],
        tags=[RunTag(KIND_TAG, "analysis")],
    )
    try:
        client.log_artifacts(run_id, str(folder))
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return run_id
