import time

import numpy as np
import pytest
import requests
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from rip.tracking.resilience import Retrying, TrackingUnavailableError, is_transient
from rip.tracking.spool import Spool


def test_spool_round_trip_and_removal(tmp_path):
    spool = Spool(tmp_path, "run1")
    image = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    spool.add("img-a", 50, 8, {"ssim": 0.5, "psnr": 20.0}, image)
    spool.add("img-a", 100, 16, {"ssim": 0.25, "psnr": 10.0}, image[::-1].copy())
    entries = spool.entries()
    assert [(e.image_id, e.percent, e.iteration) for e in entries] == [("img-a", 50, 8), ("img-a", 100, 16)]
    assert entries[0].values == {"ssim": 0.5, "psnr": 20.0}
    assert np.array_equal(entries[0].image(), image)
    assert np.array_equal(entries[1].image(), image[::-1])
    spool.remove("img-a", 50)
    assert [e.percent for e in spool.entries()] == [100]
    spool.remove("img-a", 100)
    assert spool.entries() == [] and not spool.folder.exists()


def test_spool_ignores_partial_writes(tmp_path):
    spool = Spool(tmp_path, "run1")
    partial = spool.folder / "img" / ".partial-x"
    partial.mkdir(parents=True)
    (partial / "record.json").write_text("{")
    assert spool.entries() == []


def test_transient_errors_are_recognised():
    assert is_transient(requests.exceptions.ConnectionError("refused"))
    assert is_transient(MlflowException("API request to http://x/api failed with exception refused"))
    assert not is_transient(MlflowException("Changing param values is not allowed", error_code=INVALID_PARAMETER_VALUE))
    assert not is_transient(ValueError("bad"))


def test_retrying_recovers_from_a_short_outage():
    failures = iter([requests.exceptions.ConnectionError("down")] * 2)

    def flaky():
        error = next(failures, None)
        if error:
            raise error
        return "ok"

    started = time.monotonic()
    assert Retrying(limit=5, first_delay=0.05)(flaky) == "ok"
    assert time.monotonic() - started < 2


def test_retrying_gives_up_after_the_limit():
    calls = []

    def down():
        calls.append(time.monotonic())
        raise requests.exceptions.ConnectionError("down")

    with pytest.raises(TrackingUnavailableError, match="unreachable for .* s \\(limit 0.3 s\\)"):
        Retrying(limit=0.3, first_delay=0.05)(down)
    assert len(calls) >= 3
    assert calls[-1] - calls[0] >= 0.25


def test_retrying_raises_other_errors_at_once():
    calls = []

    def broken():
        calls.append(1)
        raise MlflowException("Changing param values is not allowed", error_code=INVALID_PARAMETER_VALUE)

    with pytest.raises(MlflowException):
        Retrying(limit=5)(broken)
    assert calls == [1]
