"""MLproject's entry points forward every option of the command they run, with the same defaults."""

from pathlib import Path

import pytest
import yaml

from rip.cli import main

ROOT = Path(__file__).resolve().parent.parent
# set by `mlflow run` itself (MLFLOW_TRACKING_URI), or a --flag/--no-flag pair that takes no value
NOT_PARAMETERS = {"tracking_uri", "log"}


@pytest.mark.parametrize("entry, command", [("main", "run"), ("analyze", "analyze"), ("tune", "tune")])
def test_entry_point_forwards_every_option(entry, command):
    point = yaml.safe_load((ROOT / "MLproject").read_text())["entry_points"][entry]
    options = [p for p in main.commands[command].params if p.opts[0].startswith("--")]
    names = {p.opts[0][2:].replace("-", "_") for p in options} - NOT_PARAMETERS
    assert names == set(point["parameters"])
    for option in options:
        name = option.opts[0][2:].replace("-", "_")
        if name in NOT_PARAMETERS:
            continue
        assert f"{option.opts[0]} {{{name}}}" in point["command"]
        default = point["parameters"][name].get("default")
        expected = option.default if option.default is not None and not option.multiple else ""
        assert str(default).lower() == str(expected).lower(), name
