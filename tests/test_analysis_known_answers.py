"""Verdicts with known answers: small simulated studies logged to a tracking server as `rip run` logs
them, analysed as the study's two experiments together (labelled, one run FAILED)."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from analysis.cli import analyze
from analysis.load import load_results
from analysis.simulation import Study, simulate, write_store
from analysis.verdicts import FAILS, HOLDS, POOLED, verdicts

pytestmark = pytest.mark.slow
NETS = ("lpips_alex", "lpips_vgg")
REPLICATION = Study(images=10, masks=(64, 128), metrics=NETS, labels=("Baroque", "Cubism", "Realism"))
VARIABILITY = Study(images=5, runs=4, masks=(64,), metrics=NETS, labels=("Baroque", "Cubism", "Realism"))
FALSE = dict(curve="flat", image_sd=0.1, network_sd=0.0, run_sd=0.2, run_persistence=1.0, run_decay=0.0,
             run_mask_step=0.0, noise_decay=0.0)  # a jump at 50 % then flat; run SD = 2 × image SD


@pytest.fixture(scope="module")
def stores(mlflow_server):
    """Experiments true-replication, true-variability (every observation true, one run FAILED) and
    false-replication, false-variability (findings 1 and 6a false)."""
    client = MlflowClient(mlflow_server.uri)
    rng = np.random.default_rng(0)
    true = pd.concat([simulate(replace(REPLICATION, experiment="true-replication", failed=1), rng),
                      simulate(replace(VARIABILITY, experiment="true-variability"), rng)])
    false = pd.concat([simulate(replace(REPLICATION, experiment="false-replication", masks=(64,), **FALSE), rng),
                       simulate(replace(VARIABILITY, experiment="false-variability", **FALSE), rng)])
    write_store(client, true)
    write_store(client, false, originals=False)  # only its verdicts are read
    return client


def pooled(table: pd.DataFrame, finding: str, experiment: str) -> pd.Series:
    rows = table[(table["finding"].astype(str) == finding) & table["context"].str.contains(f"experiment={experiment}")
                 & ((table["mask"].astype(str) == POOLED) | (table["metric"] == POOLED))]
    assert len(rows) >= 1
    return rows["verdict"]


def test_rip_analyze_on_two_labelled_experiments_states_the_known_answers(stores, mlflow_server, tmp_path):
    result = CliRunner().invoke(analyze, ["--tracking-uri", mlflow_server.uri, "--experiment", "true-replication",
                                          "--experiment", "true-variability", "--output", str(tmp_path),
                                          "--filmstrips", "0", "--dpi", "30", "--no-log", "--features", "none"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "verdicts.csv", keep_default_na=False)
    assert (pooled(table, "1", "true-replication") == HOLDS).all()
    assert (pooled(table, "6a", "true-variability") == HOLDS).all()
    # the FAILED run: its image is counted, left out, and tried in the sensitivity column
    counts = pd.read_csv(tmp_path / "completeness.csv")
    assert counts["failed"].sum() == 1 and set(counts["used"][counts["context"].str.contains("true-replication")]) == {9}
    replication = table[table["context"].str.contains("true-replication")]
    assert set(replication["incomplete"].astype(int)) == {1} and replication["verdict_with_incomplete"].ne("").all()
    assert "image runs are unfinished (1 FAILED)" in result.output
    # labels of two experiments: a figure per experiment; the verdicts open the report
    assert len(list(tmp_path.glob("figures/label_style-*.png"))) == 2
    page = (tmp_path / "report.html").read_text()
    assert page.index("findings</h2>") < page.index("<h2>Runs</h2>")


def test_a_jump_then_flat_and_a_run_sd_twice_the_image_sd_do_not_hold(stores, mlflow_server):
    table = verdicts(load_results(mlflow_server.uri, ["false-replication", "false-variability"]))
    assert (table[(table["finding"] == "1") & table["context"].str.contains("false-replication")]["verdict"] == FAILS).all()
    spread = table[(table["finding"] == "6a") & table["context"].str.contains("false-variability")]
    assert len(spread) and (spread["verdict"] == FAILS).all()
