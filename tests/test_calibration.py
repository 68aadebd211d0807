"""The verdicts' calibration at a small size: no false "holds" where an observation is false by
construction, and the strong effects found (scripts/calibrate_verdicts.py runs it at the study's size)."""

from analysis.calibration import calibrate
from analysis.simulation import Study

NETS = ("lpips_alex", "lpips_vgg")


def test_small_calibration():
    results = calibrate(4, replication=Study(experiment="rep", images=24, masks=(64, 128), metrics=NETS),
                        variability=Study(experiment="var", images=6, runs=6, masks=(64, 128), metrics=NETS))
    false = results[results["truth"] == "false"]
    assert set(false["finding"]) == {"1", "2a", "2b", "3", "4a", "4b", "5", "6a", "6b", "6c", "7a", "7b", "8a", "8b"}
    assert (false["holds"] <= 0.1).all(), false[false["holds"] > 0.1]
    power = results[(results["truth"] == "true") & (results["scope"] == "pooled")].set_index("finding")["holds"]
    assert (power[["1", "2a", "2b", "4b", "6a", "8a", "8b"]] >= 0.75).all(), power
