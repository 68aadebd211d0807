"""MLflow for searches: one run per study, and under it one configuration run per trial.

Trial runs are ordinary configuration runs (`rip.kind=configuration`, per-image child runs)
with the trial's number, worker, state and value on top. Every call goes through `Retrying`, so
a tracking-server hiccup does not end a worker.
"""

import json
import time
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from rip.tracking.resilience import Retrying
from rip.tracking.tags import CONFIG_TAG, KIND_TAG, PARENT_TAG, RUN_NAME_TAG, SPACE_TAG, STATE_TAG, STUDY_TAG, TRIAL_TAG
from rip.tracking.ui import short_value

RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}


class SearchTracker:
    """Creates and closes the study run and the trial runs."""

    def __init__(self, client: MlflowClient, retrying: Retrying | None = None):
        self.client = client
        self.retrying = retrying or Retrying()
        self._experiments: dict[str, str] = {}
        self._studies: dict[str, object] = {}  # study run id -> the study run

    def start_study_run(self, experiment_id: str, study_name: str, params: dict[str, str], run_id: str | None) -> str:
        """Create the study run (or adopt `run_id`, e.g. the one `mlflow run` made) and log the search's settings."""
        tags = {KIND_TAG: "study", STUDY_TAG: study_name, RUN_NAME_TAG: study_name, SPACE_TAG: params.get("space", "")}
        if run_id:  # `mlflow run` already logged the entry point's parameters
            logged = self.retrying(self.client.get_run, run_id).data.params
            params = {key: value for key, value in params.items() if key not in logged}
        else:
            run_id = self.retrying(self.client.create_run, experiment_id, run_name=study_name).info.run_id
        self.retrying(
            self.client.log_batch,
            run_id,
            params=[Param(key, value) for key, value in params.items()],
            tags=[RunTag(key, value) for key, value in tags.items()],
        )
        return run_id

    def require(self, run_id: str) -> None:
        """ValueError unless the study's run is on this tracking server."""
        try:
            self.retrying(self.client.get_run, run_id)
        except MlflowException as error:
            if error.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            raise ValueError(
                f"the study's MLflow run {run_id} is not on the tracking server {self.client.tracking_uri}: "
                "every worker of a study must use the same tracking server"
            ) from error

    def reopen(self, run_id: str) -> None:
        """Mark a finished study run RUNNING again: a worker continues the study."""
        if self.retrying(self.client.get_run, run_id).info.status != "RUNNING":
            self.retrying(self.client.update_run, run_id, status="RUNNING")

    def mark_worker_run(self, run_id: str, study_run_id: str, study_name: str) -> None:
        """Nest the run `mlflow run` made for a worker that joins an existing study under the study run."""
        for key, value in {KIND_TAG: "worker", PARENT_TAG: study_run_id, STUDY_TAG: study_name}.items():
            self.retrying(self.client.set_tag, run_id, key, value)

    def open_trial_run(self, study_run_id: str, study_name: str, number: int, tags: dict[str, str]) -> str:
        """An empty run for trial `number` under the study run; `run_experiment` records into it."""
        tags = {PARENT_TAG: study_run_id, STUDY_TAG: study_name, TRIAL_TAG: str(number), **tags}
        run = self.retrying(
            self.client.create_run, self._experiment_of(study_run_id), run_name=f"trial-{number}", tags=tags
        )
        return run.info.run_id

    def log_intermediate(self, run_id: str, percent: int, value: float) -> None:
        """The value the pruner saw at `percent`."""
        self.retrying(self.client.log_metric, run_id, "intermediate_value", value, step=percent)

    def close_trial_run(self, run_id: str, state: str, value: float | None = None,
                        study_run_id: str | None = None, number: int | None = None) -> None:
        """Tag the trial's state, name it by its parameters, log its value, and end the run if the
        runner did not (it failed early)."""
        run = self.retrying(self.client.get_run, run_id)
        tags = {STATE_TAG: state, RUN_NAME_TAG: self._trial_name(run, state)}
        self.retrying(self.client.log_batch, run_id, tags=[RunTag(k, v) for k, v in tags.items()])
        if value is not None:
            self.retrying(self.client.log_metric, run_id, "objective_value", value)
            self.retrying(self.client.log_metric, study_run_id, "trial_value", value, step=number)
        if run.info.status == "RUNNING":
            self.retrying(self.client.set_terminated, run_id, RUN_STATUS[state])

    def abandon(self, run_id: str) -> None:
        """Mark the run of a dead worker's trial, and its running image runs, FAILED."""
        run = self.retrying(self.client.get_run, run_id)
        children = self.retrying(
            self.client.search_runs,
            [run.info.experiment_id],
            f"tags.`{PARENT_TAG}` = '{run_id}' and attributes.status = 'RUNNING'",
        )
        for child in children:
            self.retrying(self.client.set_terminated, child.info.run_id, "FAILED")
        self.retrying(self.client.set_tag, run_id, STATE_TAG, "FAIL")
        if run.info.status == "RUNNING":
            self.retrying(self.client.set_terminated, run_id, "FAILED")

    def log_summary(self, run_id: str, folder: Path, metrics: dict[str, float], tags: dict[str, str]) -> None:
        """Log the summary's files, metrics and tags to the study run and end it."""
        timestamp = int(time.time() * 1000)
        self.retrying(self.client.log_artifacts, run_id, str(folder))
        self.retrying(
            self.client.log_batch,
            run_id,
            metrics=[Metric(key, value, timestamp, 0) for key, value in metrics.items()],
            tags=[RunTag(key, value) for key, value in tags.items()],
        )
        self.retrying(self.client.set_terminated, run_id, "FINISHED")

    def _trial_name(self, run, state: str) -> str:
        """`trial 3 · mask=128 mask_order=scan`, with `· pruned` or `· failed` when it did not complete."""
        config = json.loads(run.data.tags.get(CONFIG_TAG, "{}"))
        study = self._study_run(run.data.tags[PARENT_TAG])
        names = [item.split("=")[0] for item in study.data.tags.get(SPACE_TAG, "").split()]
        values = [f"{name}={short_value(config[name])}" for name in names if config.get(name) is not None]
        ending = {"PRUNED": "pruned", "FAIL": "failed"}.get(state)
        return " · ".join([f"trial {run.data.tags.get(TRIAL_TAG, '?')}", *filter(None, [" ".join(values), ending])])

    def _study_run(self, run_id: str):
        if run_id not in self._studies:
            self._studies[run_id] = self.retrying(self.client.get_run, run_id)
        return self._studies[run_id]

    def _experiment_of(self, run_id: str) -> str:
        if run_id not in self._experiments:
            self._experiments[run_id] = self.retrying(self.client.get_run, run_id).info.experiment_id
        return self._experiments[run_id]
