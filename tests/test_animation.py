"""Each image run's checkpoints as an animated WebP: frames, labels, the run option, resume."""

import base64
import io
import re

import numpy as np
import pytest
from mlflow import MlflowClient
from PIL import Image

from rip.config import RunConfig
from rip.images import load_letterboxed, resolve_image_set
from rip.images.animation import FRAME_SIDE, animate, band_height, checkpoint_animation, labelled, percent_label
from rip.runner import StopRun, run_experiment
from rip.tracking.tags import ANIMATION_ARTIFACT, ANIMATION_PAGE_ARTIFACT
from tests.test_ui_records import StopAfter

SMALL = dict(model="telea", size=64, mask=32, percent=100, step=50, metrics=("ssim",), batch_size=2,
             complexity=False, system_metrics=False)
TOLERANCE = 6.0  # mean absolute difference per channel (0-255) that lossy WebP leaves (4:2:0 colour, quality 80)


def decoded_frames(data: bytes) -> list[np.ndarray]:
    """Every frame of an animated WebP, as RGB arrays."""
    with Image.open(io.BytesIO(data)) as animation:
        assert animation.format == "WEBP"
        frames = []
        for index in range(animation.n_frames):
            animation.seek(index)
            frames.append(np.asarray(animation.convert("RGB")))
    return frames


def difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(float) - b.astype(float)).mean())


def assert_frames_show(data: bytes, images: dict[int, np.ndarray]) -> None:
    """Frame i is the i-th checkpoint (scaled to FRAME_SIDE at most) over the band naming its percent."""
    frames = decoded_frames(data)
    percents = sorted(images)
    assert len(frames) == len(percents)
    scaled = {}
    for percent, array in images.items():
        image = Image.fromarray(array)
        if image.width > FRAME_SIDE:
            image = image.resize((FRAME_SIDE, round(image.height * FRAME_SIDE / image.width)), Image.LANCZOS)
        scaled[percent] = np.asarray(image)
    for frame, percent in zip(frames, percents):
        image = Image.fromarray(scaled[percent])
        band = band_height(image.width)
        assert frame.shape == (image.height + band, image.width, 3)
        picture = frame[: image.height]
        assert difference(picture, scaled[percent]) < TOLERANCE, percent
        for other in percents:  # nearer its own checkpoint than any clearly different one
            if difference(scaled[other], scaled[percent]) > 2 * TOLERANCE:
                assert difference(picture, scaled[other]) > difference(picture, scaled[percent]), (percent, other)
        # the band says this checkpoint's percent: it is nearest to that label drawn alone
        blank = Image.new("RGB", image.size)
        drawn = {p: np.asarray(labelled(blank, percent_label(p)))[image.height:] for p in percents}
        nearest = min(percents, key=lambda p: difference(frame[image.height:], drawn[p]))
        assert nearest == percent
    bands = [frame[-band_height(frame.shape[1]):] for frame in frames]
    assert all(difference(a, b) > 1 for a, b in zip(bands, bands[1:]))  # every label differs from the next


def test_study_sized_runs_are_downscaled_and_small():
    photographs, _ = load_letterboxed(resolve_image_set("sample:4", 0), 512, "white", "lanczos")
    pictures = [np.rot90(photo, turn) for turn in range(3) for photo in photographs]  # nine 512 px checkpoints
    images = dict(zip(range(0, 401, 50), pictures))
    data = checkpoint_animation(images[0], images)
    assert_frames_show(data, images)
    assert decoded_frames(data)[0].shape == (FRAME_SIDE + band_height(FRAME_SIDE), FRAME_SIDE, 3)
    assert len(data) < 100_000  # nine 256 px frames, lossy


def test_animate_checks_its_frames():
    frame = Image.new("RGB", (32, 32))
    with pytest.raises(ValueError, match="2 frames but 1 labels"):
        animate([frame, frame], ["0 %"])
    with pytest.raises(ValueError, match="differ in size"):
        animate([frame, Image.new("RGB", (32, 16))], ["0 %", "50 %"])
    with pytest.raises(ValueError, match="at least one frame"):
        animate([], [])


def logged_animation(client: MlflowClient, run_id: str, folder) -> tuple[bytes, dict[int, np.ndarray]]:
    """An image run's animation and its logged generations by percent."""
    data = open(client.download_artifacts(run_id, ANIMATION_ARTIFACT, str(folder)), "rb").read()
    generations = {}
    for artifact in client.list_artifacts(run_id, "generations"):
        with Image.open(client.download_artifacts(run_id, artifact.path, str(folder))) as image:
            generations[int(artifact.path[-8:-4])] = np.asarray(image.convert("RGB"))
    return data, generations


def image_runs(client: MlflowClient, parent_id: str) -> dict[str, str]:
    experiment = client.get_run(parent_id).info.experiment_id
    runs = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{parent_id}'")
    return {run.data.tags["rip.image_id"]: run.info.run_id for run in runs}


@pytest.mark.slow
def test_rip_run_logs_each_image_runs_animation(mlflow_server, ui_experiment, tmp_path):
    client = MlflowClient(mlflow_server.uri)
    experiment = client.get_experiment_by_name("ui-browser").experiment_id
    [parent] = client.search_runs([experiment], "tags.`rip.kind` = 'configuration'")
    assert parent.data.params["animation"] == "true"
    children = image_runs(client, parent.info.run_id)
    assert len(children) == 2
    for run_id in children.values():
        data, generations = logged_animation(client, run_id, tmp_path / run_id)
        assert sorted(generations) == [0, 50, 100]
        assert_frames_show(data, generations)  # 128 px: frames at full size
        # the page the MLflow UI's artifact view plays holds the same file
        page = open(client.download_artifacts(run_id, ANIMATION_PAGE_ARTIFACT, str(tmp_path / run_id))).read()
        assert re.findall(r'src="data:image/webp;base64,([^"]+)"', page) == [base64.b64encode(data).decode()]


@pytest.mark.slow
def test_animation_off_logs_none_and_resume_makes_the_same_one(mlflow_server, image_folder, tmp_path):
    client = MlflowClient(mlflow_server.uri)
    config = RunConfig(images=str(image_folder), experiment="animation", **SMALL)
    off = run_experiment(RunConfig(**{**config.__dict__, "animation": False}), mlflow_server.uri,
                         spool_root=tmp_path / "spool", progress=False)
    assert client.get_run(off).data.params["animation"] == "false"
    for run_id in image_runs(client, off).values():
        logged = {artifact.path for artifact in client.list_artifacts(run_id)}
        assert "original.png" in logged and not logged & {ANIMATION_ARTIFACT, ANIMATION_PAGE_ARTIFACT}

    whole = run_experiment(config, mlflow_server.uri, spool_root=tmp_path / "spool", progress=False)
    # stopped at its fourth checkpoint: the first two images at 50 %, the third not started
    with pytest.raises(StopRun) as stopped:
        run_experiment(config, mlflow_server.uri, observer=StopAfter(4), spool_root=tmp_path / "spool",
                       progress=False)
    resumed = run_experiment(config, mlflow_server.uri, resume_run=stopped.value.run_id,
                             spool_root=tmp_path / "spool", progress=False)
    expected, got = image_runs(client, whole), image_runs(client, resumed)
    assert sorted(got) == sorted(expected) == ["astronaut.png", "camera.png", "chelsea.jpg"]
    for image_id, run_id in got.items():
        data, generations = logged_animation(client, run_id, tmp_path / run_id)
        assert_frames_show(data, generations)
        # frames from the earlier attempt's logged PNGs equal the ones kept while running: the same file
        assert data == logged_animation(client, expected[image_id], tmp_path / image_id)[0], image_id


def test_the_option_changes_no_result():
    on, off = RunConfig(model="telea"), RunConfig(model="telea", animation=False)
    from rip.config import FREE_FIELDS
    from rip.sweeps.units import SweepPlan
    from rip.tracking.ui import configuration_name

    assert off.draw_key == on.draw_key and configuration_name(off) == configuration_name(on)
    assert SweepPlan("p", (off,), (1,)).key == SweepPlan("p", (on,), (1,)).key
    assert "animation" in FREE_FIELDS and off.as_params()["animation"] == "false"
