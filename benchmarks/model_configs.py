"""The published architectures of the inpainting model families, as diffusers and transformers build
them: each component's class and configuration, and where the values come from.

The hub repositories' config.json files are the authority; where they could not be read, the
values come from the public sources named in SOURCES (the model authors' code, diffusers'
conversion scripts, public copies of a repository's config.json). Only the values that shape the
computation are given; everything else is the class's default. SD 2's components are those of
benchmarks/sd2_inpainting/ (the study's model, its files' own configurations).
"""

import json
from pathlib import Path

SD2_FOLDER = Path(__file__).resolve().parent / "sd2_inpainting"

VAE_SD = dict(block_out_channels=[128, 256, 512, 512], latent_channels=4, layers_per_block=2,
              down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4)
CLIP_L_TEXT = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
                   max_position_embeddings=77, vocab_size=49408, projection_dim=768, hidden_act="quick_gelu")
CLIP_BIGG_TEXT = dict(hidden_size=1280, intermediate_size=5120, num_attention_heads=20, num_hidden_layers=32,
                      max_position_embeddings=77, vocab_size=49408, projection_dim=1280, hidden_act="gelu")

SOURCES = {
    "sd2": "benchmarks/sd2_inpainting/ (the unet, vae and text_encoder config.json of "
           "sd2-community/stable-diffusion-2-inpainting at 5f74973cbb64)",
    "sd15": "UNet: CompVis/stable-diffusion configs/stable-diffusion/v1-inference.yaml (320 channels × [1, 2, 4, 4], "
            "2 blocks, 8 heads, context 768) with the 9 input channels of the inpainting model card; text encoder: "
            "openai/clip-vit-large-patch14's text config; VAE: as SD 2's",
    "sdxl": "UNet: a public copy of diffusers/stable-diffusion-xl-1.0-inpainting-0.1's unet/config.json "
            "(_name_or_path valhalla/sdxl-inpaint-ema, diffusers 0.21.0.dev0); text encoders: "
            "openai/clip-vit-large-patch14 and laion/CLIP-ViT-bigG-14-laion2B-39B-b160k text configs, as in "
            "stabilityai/stable-diffusion-xl-base-1.0; VAE: madebyollin/sdxl-vae-fp16-fix's config (SD's layout)",
    "kandinsky22": "decoder UNet: INPAINT_UNET_CONFIG of diffusers' scripts/convert_kandinsky_to_diffusers.py "
                   "(Kandinsky 2.1's inpainting UNet: 384 channels × [1, 2, 3, 4], 3 blocks, 64-wide heads; 1.22B "
                   "parameters, as the 2.2 model card gives for its decoder) with 2.2's conditioning on the prior's "
                   "1280-wide image embedding (encoder_hid_dim_type image_proj, addition_embed_type image, as "
                   "diffusers' Kandinsky 2.2 tests build it); MoVQ: MOVQ_CONFIG of the same script, as "
                   "kandinsky-2-2-decoder's movq/config.json; prior: "
                   "PriorTransformer with 20 layers of 32 × 64 heads over CLIP ViT-bigG/14's 1280-wide embeddings "
                   "(kandinsky-2-2-prior), its text and image encoders ViT-bigG/14's "
                   "(laion/CLIP-ViT-bigG-14-laion2B-39B-b160k)",
    "flux-fill": "transformer: black-forest-labs/flux src/flux/util.py, configs['flux-dev-fill'] (in_channels 384, "
                 "out_channels 64, hidden 3072 = 24 heads × 128, depth 19, single blocks 38, context 4096, vec 768, "
                 "axes_dim [16, 56, 56], guidance_embed) in diffusers' names; VAE: its ae_params (ch 128, "
                 "ch_mult [1, 2, 4, 4], 2 res blocks, z_channels 16, no quant convs); text encoders: "
                 "google/t5-v1_1-xxl's config (T5-XXL encoder) and openai/clip-vit-large-patch14's text config",
}


def sd2() -> dict:
    """SD 2 inpainting's components from its files' configurations."""
    def config(name):
        return json.loads((SD2_FOLDER / name / "config.json").read_text())

    return {"unet": ("diffusers", "UNet2DConditionModel", config("unet")),
            "vae": ("diffusers", "AutoencoderKL", config("vae")),
            "text_encoder": ("transformers", "CLIPTextModel", config("text_encoder"))}


def sd15() -> dict:
    unet = dict(in_channels=9, out_channels=4, block_out_channels=[320, 640, 1280, 1280], layers_per_block=2,
                attention_head_dim=8, cross_attention_dim=768,
                down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
                up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3)
    return {"unet": ("diffusers", "UNet2DConditionModel", unet), "vae": ("diffusers", "AutoencoderKL", VAE_SD),
            "text_encoder": ("transformers", "CLIPTextModel", CLIP_L_TEXT)}


def sdxl() -> dict:
    unet = dict(in_channels=9, out_channels=4, block_out_channels=[320, 640, 1280], layers_per_block=2,
                attention_head_dim=[5, 10, 20], cross_attention_dim=2048, transformer_layers_per_block=[1, 2, 10],
                down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
                up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
                addition_embed_type="text_time", addition_time_embed_dim=256,
                projection_class_embeddings_input_dim=2816, use_linear_projection=True)
    return {"unet": ("diffusers", "UNet2DConditionModel", unet), "vae": ("diffusers", "AutoencoderKL", VAE_SD),
            "text_encoder": ("transformers", "CLIPTextModel", CLIP_L_TEXT),
            "text_encoder_2": ("transformers", "CLIPTextModelWithProjection", CLIP_BIGG_TEXT)}


def kandinsky22() -> dict:
    unet = dict(in_channels=9, out_channels=8, block_out_channels=[384, 768, 1152, 1536], layers_per_block=3,
                attention_head_dim=64, cross_attention_dim=768, encoder_hid_dim=1280, encoder_hid_dim_type="image_proj",
                addition_embed_type="image", resnet_time_scale_shift="scale_shift", class_embed_type=None,
                down_block_types=["ResnetDownsampleBlock2D"] + ["SimpleCrossAttnDownBlock2D"] * 3,
                up_block_types=["SimpleCrossAttnUpBlock2D"] * 3 + ["ResnetUpsampleBlock2D"],
                mid_block_type="UNetMidBlock2DSimpleCrossAttn")
    movq = dict(block_out_channels=[128, 256, 256, 512], latent_channels=4, layers_per_block=2, norm_type="spatial",
                num_vq_embeddings=16384, vq_embed_dim=4,
                down_block_types=["DownEncoderBlock2D"] * 3 + ["AttnDownEncoderBlock2D"],
                up_block_types=["AttnUpDecoderBlock2D"] + ["UpDecoderBlock2D"] * 3)
    prior = dict(num_attention_heads=32, attention_head_dim=64, num_layers=20, embedding_dim=1280, num_embeddings=77,
                 additional_embeddings=4)
    vision = dict(hidden_size=1664, intermediate_size=8192, num_attention_heads=16, num_hidden_layers=48, patch_size=14,
                  image_size=224, projection_dim=1280, hidden_act="gelu")
    return {"unet": ("diffusers", "UNet2DConditionModel", unet), "movq": ("diffusers", "VQModel", movq),
            "prior": ("diffusers", "PriorTransformer", prior),
            "prior_text_encoder": ("transformers", "CLIPTextModelWithProjection", CLIP_BIGG_TEXT),
            "prior_image_encoder": ("transformers", "CLIPVisionModelWithProjection", vision)}


def flux_fill() -> dict:
    transformer = dict(patch_size=1, in_channels=384, out_channels=64, num_layers=19, num_single_layers=38,
                       attention_head_dim=128, num_attention_heads=24, joint_attention_dim=4096,
                       pooled_projection_dim=768, guidance_embeds=True, axes_dims_rope=[16, 56, 56])
    vae = dict(VAE_SD, latent_channels=16, use_quant_conv=False, use_post_quant_conv=False)
    t5 = dict(d_model=4096, d_ff=10240, d_kv=64, num_heads=64, num_layers=24, vocab_size=32128,
              feed_forward_proj="gated-gelu", relative_attention_num_buckets=32)
    return {"transformer": ("diffusers", "FluxTransformer2DModel", transformer),
            "vae": ("diffusers", "AutoencoderKL", vae),
            "text_encoder": ("transformers", "CLIPTextModel", CLIP_L_TEXT),
            "text_encoder_2": ("transformers", "T5EncoderModel", t5)}


FAMILIES = {"sd2": sd2, "sd15": sd15, "sdxl": sdxl, "kandinsky22": kandinsky22, "flux-fill": flux_fill}
