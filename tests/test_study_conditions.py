"""The study's open choices as explicit conditions: safety checker, non-finite outputs, dtype, guidance."""

import mlflow
import numpy as np
import pytest
import torch
from diffusers import StableDiffusionInpaintPipeline
from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
from mlflow import MlflowClient
from transformers import CLIPConfig, CLIPImageProcessor

from rip.config import RunConfig
from rip.inpainters import load_inpainter
from rip.inpainters.base import InpaintingFailure
from rip.inpainters.diffusion import DiffusionInpainter
from rip.inpainters.tiny import build_tiny_pipeline
from rip.runner import ImagesFailedError, run_experiment
from tests.conftest import STYLES, random_image
from tests.test_inpainters import square_mask

SIZE = 64


def with_safety_checker(threshold: float) -> StableDiffusionInpaintPipeline:
    """The tiny pipeline with a tiny CLIP safety checker; a negative `threshold` flags every image."""
    torch.manual_seed(0)
    tiny_clip = dict(hidden_size=16, intermediate_size=37, num_attention_heads=2, num_hidden_layers=1)
    checker = StableDiffusionSafetyChecker(CLIPConfig(
        text_config=dict(vocab_size=99, **tiny_clip),
        vision_config=dict(image_size=32, patch_size=8, **tiny_clip),
        projection_dim=16,
    ))
    with torch.no_grad():
        checker.concept_embeds_weights.fill_(threshold)
        checker.special_care_embeds_weights.fill_(threshold)
    components = build_tiny_pipeline().components
    features = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return StableDiffusionInpaintPipeline(
        **{**components, "safety_checker": checker, "feature_extractor": features}, requires_safety_checker=True
    )


@pytest.fixture(scope="module")
def flagging_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model-with-checker")
    with_safety_checker(threshold=-10.0).save_pretrained(folder)
    return folder


def test_shipped_checker_is_off_unless_asked(flagging_model):
    inpainter = load_inpainter(RunConfig(model=str(flagging_model), steps=2), "cpu")
    assert inpainter.pipeline.safety_checker is None
    assert inpainter.tags()["rip.model_safety_checker"] == "shipped"
    assert inpainter.params()["safety_checker_loaded"] == "false"
    output = inpainter.inpaint([random_image(SIZE)], [square_mask(0, 0)], [1])[0]
    assert output.shape == (SIZE, SIZE, 3) and output.max() > 0


def test_flagged_output_is_a_failure_not_a_black_image(flagging_model):
    inpainter = load_inpainter(RunConfig(model=str(flagging_model), steps=2, safety_checker=True), "cpu")
    assert inpainter.pipeline.safety_checker is not None
    outputs = inpainter.inpaint([random_image(SIZE, 0), random_image(SIZE, 1)], [square_mask(0, 0)] * 2, [1, 2])
    assert all(isinstance(output, InpaintingFailure) and "safety checker" in output.reason for output in outputs)


def test_unflagged_outputs_pass_the_checker(tmp_path):
    with_safety_checker(threshold=10.0).save_pretrained(tmp_path)
    inpainter = load_inpainter(RunConfig(model=str(tmp_path), steps=2, safety_checker=True), "cpu")
    output = inpainter.inpaint([random_image(SIZE)], [square_mask(16, 16)], [3])[0]
    assert not isinstance(output, InpaintingFailure) and output[16:32, 16:32].max() > 0


def test_non_finite_output_fails_its_image_only():
    pipeline = build_tiny_pipeline()
    inpainter = DiffusionInpainter(pipeline, name="tiny", num_inference_steps=2)
    images, masks = [random_image(SIZE, 0), random_image(SIZE, 1)], [square_mask(0, 0)] * 2
    assert not any(isinstance(output, InpaintingFailure) for output in inpainter.inpaint(images, masks, [1, 2]))
    with torch.no_grad():
        pipeline.vae.decoder.conv_out.bias[0] = float("nan")
    outputs = inpainter.inpaint(images, masks, [1, 2])
    assert all(isinstance(output, InpaintingFailure) and "non-finite" in output.reason for output in outputs)


def test_failed_image_fails_its_run_and_the_others_complete(mlflow_server, image_folder, flagging_model):
    config = RunConfig(model=str(flagging_model), images=str(image_folder), size=SIZE, mask=32, percent=50,
                       step=25, steps=2, metrics=("ssim",), safety_checker=True, experiment="conditions")
    with pytest.raises(ImagesFailedError, match="astronaut.png, iteration 1: the safety checker flagged") as error:
        run_experiment(config, mlflow_server.uri, progress=False)
    client = MlflowClient(mlflow_server.uri)
    experiment = client.get_experiment_by_name("conditions").experiment_id
    children = client.search_runs([experiment], "tags.`rip.kind` = 'image'")
    assert sorted(run.info.status for run in children) == ["FAILED"] * 3
    assert all("iteration 1" in run.data.tags["rip.failure"] for run in children)
    assert all(run.data.metrics["ssim"] == pytest.approx(1.0) for run in children)  # 0 % stays logged
    parent = client.get_run(children[0].data.tags["mlflow.parentRunId"])
    assert parent.info.status == "FAILED" and parent.info.run_id in str(error.value)
    mlflow.set_tracking_uri("")


def test_dataset_labels_become_image_run_tags(mlflow_server, hub_dataset):
    config = RunConfig(model="telea", images=f"hf:{hub_dataset}:train:3@0", size=SIZE, mask=32, percent=50,
                       step=25, metrics=("ssim",), experiment="labels")
    parent = run_experiment(config, mlflow_server.uri, progress=False)
    client = MlflowClient(mlflow_server.uri)
    children = client.search_runs([client.get_run(parent).info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'")
    indices = sorted(np.random.default_rng(0).choice(23, size=3, replace=False).tolist())
    labels = {run.data.tags["rip.image_id"]: (run.data.tags["rip.label.style"], run.data.tags["rip.label.artist"])
              for run in children}
    assert labels == {f"paintings-{i:05d}": (STYLES[i % 3], f"artist {i}") for i in indices}


def test_dtype_and_guidance_are_applied():
    bf16 = load_inpainter(RunConfig(model="tiny", dtype="bf16"), "cpu")
    assert bf16.params()["resolved_dtype"] == "torch.bfloat16"
    exact = load_inpainter(RunConfig(model="tiny", skip_guidance=False), "cpu")
    skipped = load_inpainter(RunConfig(model="tiny"), "cpu")
    assert (exact.guidance_skipped, skipped.guidance_skipped) == (False, True)
    assert exact.params()["guidance_skipped"] == "false" and exact.guidance_scale == 7.5
