"""Inpainting models beyond Stable Diffusion 2: a tiny SDXL inpainting pipeline built in code,
saved, and loaded as a user's model folder is."""

import logging

import numpy as np
import optuna
import pytest
import torch
from click.testing import CliRunner
from diffusers import (
    AutoencoderKL,
    EulerDiscreteScheduler,
    StableDiffusionXLInpaintPipeline,
    UNet2DConditionModel,
)
from mlflow import MlflowClient
from PIL import Image
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from rip.cli import main
from rip.config import RunConfig
from rip.inpainters import load_inpainter
from rip.inpainters.tiny import tiny_tokenizer
from rip.runner import run_experiment
from tests.conftest import random_image

SIZE = 64


def build_tiny_sdxl_inpainting_pipeline(seed: int = 0) -> StableDiffusionXLInpaintPipeline:
    """SDXL inpainting's structure (two text encoders, time ids, 9-channel UNet) at toy width."""
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=9, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=6 * 8 + 32,  # six time ids, the pooled projection
        cross_attention_dim=64,  # both encoders' hidden states side by side
    )
    torch.manual_seed(seed)
    vae = AutoencoderKL(
        block_out_channels=(32, 32, 64, 64), in_channels=3, out_channels=3, latent_channels=4, sample_size=128,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    )
    text = CLIPTextConfig(
        bos_token_id=512, eos_token_id=513, pad_token_id=513, vocab_size=514, hidden_size=32, intermediate_size=37,
        layer_norm_eps=1e-05, num_attention_heads=4, num_hidden_layers=2, hidden_act="gelu", projection_dim=32,
    )
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(text)
    text_encoder_2 = CLIPTextModelWithProjection(text)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       steps_offset=1, timestep_spacing="leading")
    return StableDiffusionXLInpaintPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tiny_tokenizer(), text_encoder_2=text_encoder_2,
        tokenizer_2=tiny_tokenizer(), unet=unet, scheduler=scheduler, requires_aesthetics_score=False,
    )


@pytest.fixture(scope="module")
def sdxl_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-sdxl-inpainting")
    build_tiny_sdxl_inpainting_pipeline().save_pretrained(folder)
    return folder


def test_sdxl_keeps_its_guidance_and_equals_its_own_default_call(sdxl_folder, caplog):
    # SDXL zeroes the unconditional embedding of an empty prompt: skipping guidance would change the images
    inpainter = load_inpainter(RunConfig(model=str(sdxl_folder), size=SIZE, mask=32, steps=3), "cpu")
    params = inpainter.params()
    assert params["pipeline_class"] == "StableDiffusionXLInpaintPipeline"
    assert params["guidance_skipped"] == "false" and params["resolved_guidance"] == "7.5"
    image, mask = random_image(SIZE, 3), np.zeros((SIZE, SIZE), dtype=bool)
    mask[16:48, 16:48] = True
    diffusers_logger = logging.getLogger("diffusers")  # the library's root logger: it does not propagate
    diffusers_logger.addHandler(caplog.handler)
    try:
        [output] = inpainter.inpaint([image], [mask], [5])
    finally:
        diffusers_logger.removeHandler(caplog.handler)
    logged = [record.getMessage() for record in caplog.records]

    default = inpainter.pipeline(
        prompt="", image=Image.fromarray(image), mask_image=Image.fromarray(mask.astype(np.uint8) * 255),
        height=SIZE, width=SIZE, num_inference_steps=3, generator=torch.Generator("cpu").manual_seed(5),
        output_type="np",
    ).images[0]
    expected = np.clip(np.rint(default * 255), 0, 255).astype(np.uint8)
    assert np.abs(output.astype(np.int16) - expected).max() <= 1
    assert np.abs(output.astype(np.int16) - image)[mask].mean() > 5  # the square was inpainted
    assert logged == []  # no notice on the VAE's upcast


def test_sdxl_outputs_do_not_depend_on_the_batch(sdxl_folder):
    inpainter = load_inpainter(RunConfig(model=str(sdxl_folder), size=SIZE, mask=32, steps=2), "cpu")
    images = [random_image(SIZE, seed) for seed in (1, 2)]
    masks = [np.zeros((SIZE, SIZE), dtype=bool) for _ in images]
    masks[0][:32, :32] = masks[1][32:, 32:] = True
    together = inpainter.inpaint(images, masks, [7, 8])
    alone = [inpainter.inpaint([image], [mask], [seed])[0] for image, mask, seed in zip(images, masks, [7, 8])]
    assert all(np.abs(a.astype(np.int16) - b).max() <= 1 for a, b in zip(together, alone))
    assert np.abs(together[0].astype(np.int16) - together[1]).max() > 10


def test_an_sdxl_model_folder_runs_end_to_end(sdxl_folder, mlflow_server, image_folder):
    config = RunConfig(model=str(sdxl_folder), images=str(image_folder), size=SIZE, mask=32, percent=50, step=25,
                       steps=2, metrics=("ssim",), experiment="other-pipelines")
    parent = run_experiment(config, mlflow_server.uri, progress=False)
    client = MlflowClient(mlflow_server.uri)
    run = client.get_run(parent)
    assert run.info.status == "FINISHED"
    assert run.data.params["pipeline_class"] == "StableDiffusionXLInpaintPipeline"
    children = client.search_runs([run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'")
    assert len(children) == len(list(image_folder.iterdir())) and {c.info.status for c in children} == {"FINISHED"}
    for child in children:
        history = {m.step: m.value for m in client.get_metric_history(child.info.run_id, "ssim")}
        assert sorted(history) == [0, 25, 50]
        assert history[0] == pytest.approx(1.0) and history[50] < 1.0


def test_a_search_varies_sdxl_guidance_with_the_empty_prompt(sdxl_folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    result = CliRunner().invoke(main, [
        "tune", "--model", str(sdxl_folder), "--size", str(SIZE), "--mask", "32", "--percent", "50", "--step", "25",
        "--steps", "2", "--metrics", "ssim", "--images", "sample:1", "--space", "guidance=1:12",
        "--sampler", "random", "--sampler-seed", "0", "--n-trials", "2", "--pruner", "none",
        "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--storage", storage, "--study-name", "sdxl",
        "--output", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    trials = optuna.load_study(study_name="sdxl", storage=storage).trials
    assert [trial.state.name for trial in trials] == ["COMPLETE", "COMPLETE"]
    guidance = [trial.params["guidance"] for trial in trials]
    assert len(set(guidance)) == 2 and all(1 <= value <= 12 for value in guidance)
    assert trials[0].value != trials[1].value  # guidance changed the images
