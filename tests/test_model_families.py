"""The inpainting model families the study compares, each as a tiny random pipeline of its own
architecture built in code, saved, and loaded through `from_pretrained` as a hub model is: the
call's defaults, guidance skipping proved exact or refused, batch independence, determinism, the
mask convention, the output size, and what a family cannot do."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from diffusers import (AutoencoderKL, AutoPipelineForInpainting, DDPMScheduler, FlowMatchEulerDiscreteScheduler,
                       FluxFillPipeline, FluxTransformer2DModel, KandinskyV22InpaintCombinedPipeline, PNDMScheduler,
                       PriorTransformer, StableDiffusionInpaintPipeline, UNet2DConditionModel, UnCLIPScheduler,
                       VQModel)
from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
from mlflow import MlflowClient
from transformers import (CLIPConfig, CLIPImageProcessor, CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection,
                          CLIPVisionConfig, CLIPVisionModelWithProjection, T5Config, T5EncoderModel, T5TokenizerFast)

from rip.cli import main
from rip.config import RunConfig
from rip.inpainters import load_inpainter
from rip.inpainters.diffusion import DiffusionInpainter, load_pipeline, resolve_dtype, speed_up
from rip.inpainters.tiny import tiny_tokenizer
from tests.conftest import random_image

SIZE = 64
TEXT = dict(bos_token_id=512, eos_token_id=513, pad_token_id=513, vocab_size=514, hidden_size=32, intermediate_size=37,
            layer_norm_eps=1e-05, num_attention_heads=4, num_hidden_layers=2)
VISION = dict(hidden_size=32, image_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
              patch_size=8)


def tiny_vae(seed: int, **options) -> AutoencoderKL:
    """A VAE that downsamples by 8, as the real ones do."""
    torch.manual_seed(seed)
    return AutoencoderKL(block_out_channels=(32, 32, 64, 64), in_channels=3, out_channels=3, latent_channels=4,
                         sample_size=SIZE, down_block_types=("DownEncoderBlock2D",) * 4,
                         up_block_types=("UpDecoderBlock2D",) * 4, **options)


def build_tiny_sd15_inpainting_pipeline(seed: int = 0) -> StableDiffusionInpaintPipeline:
    """Stable Diffusion 1.5 inpainting's structure: 9-channel UNet, CLIP text encoder (768 wide in the real
    model, 32 here), PNDM scheduler, and a safety checker that rip leaves out."""
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=9, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=4,
    )
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(**TEXT))
    torch.manual_seed(seed)
    checker = StableDiffusionSafetyChecker(CLIPConfig(text_config=TEXT, vision_config=VISION, projection_dim=32))
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True,
                              set_alpha_to_one=False, steps_offset=1)
    return StableDiffusionInpaintPipeline(
        vae=tiny_vae(seed), text_encoder=text_encoder, tokenizer=tiny_tokenizer(), unet=unet, scheduler=scheduler,
        safety_checker=checker, feature_extractor=CLIPImageProcessor(crop_size=32, size=32),
    )


def build_tiny_kandinsky22_inpainting_pipeline(seed: int = 0) -> KandinskyV22InpaintCombinedPipeline:
    """Kandinsky 2.2 inpainting with its prior, as AutoPipelineForInpainting combines them: a prior that
    maps the prompt's CLIP embedding to an image embedding, and a decoder (9-channel UNet conditioned on
    image embeddings, MoVQ autoencoder downsampling by 8)."""
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        in_channels=9, out_channels=8, addition_embed_type="image", encoder_hid_dim=32,
        encoder_hid_dim_type="image_proj",
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn", block_out_channels=(32, 64), layers_per_block=1,
        cross_attention_dim=64, attention_head_dim=4, resnet_time_scale_shift="scale_shift", class_embed_type=None,
    )
    torch.manual_seed(seed)
    movq = VQModel(
        block_out_channels=(32, 32, 64, 64), in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 3 + ("AttnDownEncoderBlock2D",),
        up_block_types=("AttnUpDecoderBlock2D",) + ("UpDecoderBlock2D",) * 3,
        norm_num_groups=8, norm_type="spatial", num_vq_embeddings=12, vq_embed_dim=4,
    )
    torch.manual_seed(seed)
    prior = PriorTransformer(num_attention_heads=2, attention_head_dim=16, embedding_dim=32, num_layers=1)
    torch.manual_seed(seed)
    text_encoder = CLIPTextModelWithProjection(CLIPTextConfig(**TEXT, projection_dim=32))
    torch.manual_seed(seed)
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**VISION, projection_dim=32))
    return KandinskyV22InpaintCombinedPipeline(
        unet=unet, movq=movq,
        scheduler=DDPMScheduler(beta_schedule="linear", beta_start=0.00085, beta_end=0.012, clip_sample=False,
                                steps_offset=1, prediction_type="epsilon", thresholding=False),
        prior_prior=prior, prior_image_encoder=image_encoder, prior_text_encoder=text_encoder,
        prior_tokenizer=tiny_tokenizer(), prior_image_processor=CLIPImageProcessor(crop_size=32, size=32),
        prior_scheduler=UnCLIPScheduler(variance_type="fixed_small_log", prediction_type="sample",
                                        num_train_timesteps=1000, clip_sample=True, clip_sample_range=10.0),
    )


def tiny_t5_tokenizer() -> T5TokenizerFast:
    """A unigram T5 tokenizer over single characters, built offline."""
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(chr(c), -3.0) for c in range(33, 127)]
    return T5TokenizerFast(vocab=pieces, extra_ids=0, model_max_length=512)


def build_tiny_flux_fill_pipeline(seed: int = 0) -> FluxFillPipeline:
    """FLUX.1 Fill's structure: a flow-matching transformer with distilled guidance (guidance_embeds) whose input
    holds the packed latents, the masked image's latents and the mask; CLIP and T5 text encoders."""
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=4 * 4 * 2 + 8 * 8 * 4, out_channels=4 * 4, num_layers=1, num_single_layers=1,
        attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
        axes_dims_rope=[4, 4, 8], guidance_embeds=True,
    )  # in: 2x2-packed latents and masked latents (4 channels each), the 8x8 mask packed 2x2
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(**TEXT, projection_dim=32))
    torch.manual_seed(seed)
    text_encoder_2 = T5EncoderModel(T5Config(vocab_size=98, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                                             decoder_start_token_id=0, pad_token_id=0, eos_token_id=1))
    vae = tiny_vae(seed, use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035)
    return FluxFillPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder, tokenizer=tiny_tokenizer(),
        text_encoder_2=text_encoder_2, tokenizer_2=tiny_t5_tokenizer(), transformer=transformer,
    )


BUILDERS = {"sd15": build_tiny_sd15_inpainting_pipeline, "kandinsky22": build_tiny_kandinsky22_inpainting_pipeline,
            "flux-fill": build_tiny_flux_fill_pipeline}
CLASSES = {"sd15": "StableDiffusionInpaintPipeline", "kandinsky22": "KandinskyV22InpaintCombinedPipeline",
           "flux-fill": "FluxFillPipeline"}
# the call's defaults, read from each pipeline's signature: (steps, guidance, strength)
DEFAULTS = {"sd15": ("50", "7.5", "1.0"), "kandinsky22": ("100", "4.0", "1.0"), "flux-fill": ("50", "30.0", "1.0")}


@pytest.fixture(scope="module", params=["sd15", pytest.param("kandinsky22", marks=pytest.mark.slow),
                                               pytest.param("flux-fill", marks=pytest.mark.slow)])
def family(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"tiny-{request.param}")
    BUILDERS[request.param]().save_pretrained(folder)
    return request.param, folder


def square(top: int, left: int, side: int = 32) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    mask[top:top + side, left:left + side] = True
    return mask


def load(folder, **options) -> DiffusionInpainter:
    return load_inpainter(RunConfig(model=str(folder), size=SIZE, mask=32, steps=2, **options), "cpu")


def test_the_call_defaults_are_the_pipelines(family):
    name, folder = family
    inpainter = load_inpainter(RunConfig(model=str(folder), size=SIZE, mask=32), "cpu")
    params = inpainter.params()
    assert params["pipeline_class"] == CLASSES[name]
    assert (params["resolved_steps"], params["resolved_guidance"], params["resolved_strength"]) == DEFAULTS[name]
    assert params["safety_checker_loaded"] == "false"
    if name == "kandinsky22":  # the prior runs at its own defaults, on the empty prompt too
        assert (params["resolved_prior_num_inference_steps"], params["resolved_prior_guidance_scale"]) == ("25", "4.0")
    assert ("guidance_kind" in params) == (name == "flux-fill")  # FLUX.1's guidance is distilled, logged as such
    if name == "flux-fill":
        assert params["scheduler_class"] == "FlowMatchEulerDiscreteScheduler"


def test_guidance_is_skipped_only_where_it_changes_nothing(family):
    """SD 1.5: both halves of guidance see the empty prompt, skipping is exact. Kandinsky 2.2: the
    decoder's unconditional half is the prior's embedding of a blank image, skipping would change the
    images, so it is kept. FLUX.1 Fill: guidance is an input of the transformer (no unconditional
    pass to skip); guidance 1 is another model input, not the default call."""
    name, folder = family
    skipped, full = load(folder), load(folder, skip_guidance=False)
    images, masks = [random_image(SIZE, 1)], [square(16, 16)]
    exact = full.inpaint(images, masks, [3])[0].astype(np.int16)
    with_guidance_off = DiffusionInpainter(full.pipeline, name=name, num_inference_steps=2, guidance_scale=1.0)
    without = with_guidance_off.inpaint(images, masks, [3])[0]
    if name == "sd15":
        assert skipped.guidance_skipped
        assert np.abs(skipped.inpaint(images, masks, [3])[0] - exact).max() <= 1
        assert np.abs(without - exact).max() <= 1
    else:
        assert not skipped.guidance_skipped and skipped.params()["guidance_skipped"] == "false"
        assert np.abs(without - exact).max() > 10  # skipping would not be exact: refused


def test_outputs_are_deterministic_batch_independent_sized_and_masked(family):
    """Same seed, same output; an image's output does not depend on the others of its batch; True
    (white) in the mask is repainted, the rest comes back through the autoencoder, close to the input."""
    name, folder = family
    inpainter = load(folder)
    images = [random_image(SIZE, seed) for seed in (1, 2)]
    masks = [square(0, 0), square(32, 32)]
    together = inpainter.inpaint(images, masks, [7, 8])
    alone = [inpainter.inpaint([image], [mask], [seed])[0] for image, mask, seed in zip(images, masks, [7, 8])]
    assert [output.shape for output in together] == [(SIZE, SIZE, 3)] * 2
    assert all(np.abs(a.astype(np.int16) - b).max() <= 1 for a, b in zip(together, alone))
    assert np.array_equal(alone[0], inpainter.inpaint(images[:1], masks[:1], [7])[0])
    change = np.abs(alone[0].astype(np.int16) - images[0])
    assert change[masks[0]].mean() > change[~masks[0]].mean()


def test_kandinsky_refuses_a_strength_below_one(tmp_path):
    folder = tmp_path / "kandinsky"
    build_tiny_kandinsky22_inpainting_pipeline().save_pretrained(folder)
    with pytest.raises(ValueError, match="strength 0.5: KandinskyV22InpaintCombinedPipeline .* has no strength"):
        load(folder, strength=0.5)
    assert load(folder, strength=1.0).strength == 1.0


@pytest.mark.parametrize("speedup", ["compile", "channels_last"])
def test_speedups_for_a_unet_and_a_vae_are_refused_elsewhere(speedup):
    for pipeline in (build_tiny_flux_fill_pipeline(), build_tiny_kandinsky22_inpainting_pipeline()):
        with pytest.raises(ValueError, match=f"{speedup}: {type(pipeline).__name__} has no UNet and VAE"):
            speed_up(pipeline, **{speedup: True})


@pytest.mark.slow  # a tracking store and two iterations per image: 12-30 s on two shared cores
def test_each_family_runs_end_to_end_through_rip_run(family, tmp_path, monkeypatch):
    name, folder = family
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = CliRunner().invoke(main, [
        "run", "--model", str(folder), "--size", str(SIZE), "--mask", "32", "--percent", "50", "--step", "25",
        "--steps", "2", "--metrics", "ssim", "--images", "sample:1", "--tracking-uri", uri, "--experiment", name])
    assert result.exit_code == 0, result.output
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(name).experiment_id
    [parent] = client.search_runs([experiment], "tags.`mlflow.parentRunId` IS NULL")
    assert parent.info.status == "FINISHED" and parent.data.params["pipeline_class"] == CLASSES[name]


def test_autopipeline_does_not_know_flux_fill_so_it_loads_as_saved(tmp_path):
    build_tiny_flux_fill_pipeline().save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="can't find a pipeline linked to FluxFillPipeline"):
        AutoPipelineForInpainting.from_pretrained(tmp_path)
    assert type(load(tmp_path).pipeline).__name__ == "FluxFillPipeline"


@pytest.mark.parametrize("dtype, device, pipeline_class, expected", [
    ("auto", "cuda", "FluxFillPipeline", torch.bfloat16),  # FLUX.1's activations overflow fp16
    ("auto", "cuda:1", "FluxInpaintPipeline", torch.bfloat16),
    ("auto", "cuda", "StableDiffusionInpaintPipeline", torch.float16),
    ("auto", "cuda", "StableDiffusionXLInpaintPipeline", torch.float16),
    ("auto", "cuda", "KandinskyV22InpaintPipeline", torch.float16),
    ("auto", "cuda", "", torch.float16),
    ("auto", "cpu", "FluxFillPipeline", torch.float32),
    ("auto", "mps", "StableDiffusionInpaintPipeline", torch.float32),
    ("fp16", "cuda", "FluxFillPipeline", torch.float16),  # a named dtype is never overridden
    ("bf16", "cpu", "StableDiffusionInpaintPipeline", torch.bfloat16),
])
def test_dtype_auto_picks_each_familys_half_precision_on_cuda(dtype, device, pipeline_class, expected):
    assert resolve_dtype(dtype, device, pipeline_class) == expected


@pytest.mark.parametrize("name, expected", [("sd15", torch.float16),
                                            pytest.param("flux-fill", torch.bfloat16, marks=pytest.mark.slow)])
def test_dtype_auto_for_cuda_is_resolved_from_the_saved_pipeline_and_logged(name, expected, tmp_path):
    """The model's own model_index.json names its family; the pipeline loads (on the CPU) in that precision."""
    BUILDERS[name]().save_pretrained(tmp_path)
    pipeline, _, _ = load_pipeline(str(tmp_path), "auto", device="cuda")
    denoiser = getattr(pipeline, "unet", None) or pipeline.transformer
    assert {denoiser.dtype, pipeline.vae.dtype} == {expected}
    assert DiffusionInpainter(pipeline, name=name).params()["resolved_dtype"] == str(expected)
    cpu, _, _ = load_pipeline(str(tmp_path), "auto", device="cpu")
    assert (getattr(cpu, "unet", None) or cpu.transformer).dtype == torch.float32
