"""What one inpainting costs per model family: parameters and FLOPs at 512 px, and the GPU-hours of the
models preset.

Each family's published architecture (benchmarks/model_configs.py, with where each value comes from)
is built with random weights on the `meta` device, so even FLUX.1's 12B-parameter transformer costs
no memory, and every component's forward pass at 512 px is counted with
`torch.utils.flop_counter.FlopCounterMode` (matrix products, convolutions and attention: 2 FLOPs per
multiply-add; element-wise work is not counted). An inpainting is then composed as the pipeline runs
it at its own call defaults (read from its `__call__` signature) with the empty prompt: the denoiser
calls its scheduler makes at that strength (the pipeline's `get_timesteps` on the family's
scheduler), doubled where classifier-free guidance runs, the text encoders, and the VAE's encodes and
decode. Two columns: rip's call (guidance skipped where it is exact, SD 1.5 and SD 2, whose prompt
embedding rip encodes once per run) and the pipeline's own call.

GPU-hours of experiments/models.yaml follow from the FLOPs at an assumed sustained throughput: a
share `--mfu` of an H100 SXM's dense bf16/fp16 peak (989 TFLOP/s); no GPU has measured it yet
(docs/performance.md).

    .venv/bin/python benchmarks/model_costs.py [--size 512] [--mfu 0.35] [--json costs.json]
"""

import argparse
import importlib
import inspect
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.model_configs import FAMILIES, SD2_FOLDER, SOURCES  # noqa: E402
from rip import expand, load_preset  # noqa: E402
from rip.artefacts import FLUX_FILL, KANDINSKY22_INPAINTING, SD15_INPAINTING, SDXL_INPAINTING, STUDY_MODEL  # noqa: E402

H100_PEAK_TFLOPS = 989.0  # H100 SXM, dense bf16/fp16 tensor cores
MODEL_IDS = {"sd2": STUDY_MODEL.id, "sd15": SD15_INPAINTING.id, "sdxl": SDXL_INPAINTING.id,
             "kandinsky22": KANDINSKY22_INPAINTING.id, "flux-fill": FLUX_FILL.id}
NAMES = {"sd2": "Stable Diffusion 2 inpainting", "sd15": "Stable Diffusion 1.5 inpainting",
         "sdxl": "SDXL inpainting", "kandinsky22": "Kandinsky 2.2 inpainting", "flux-fill": "FLUX.1 Fill [dev]"}
META = torch.device("meta")


@dataclass
class Cost:
    family: str
    model: str
    parameters: int
    defaults: str  # steps, guidance, strength (and the prior's) as the pipeline's signature gives them
    denoiser_calls: str  # e.g. "49 × 2" (calls × samples per call)
    rip_tflop: float  # per inpainting, rip's call
    pipeline_tflop: float  # per inpainting, the pipeline's own call
    parts: dict  # TFLOP per inpainting of each component in rip's call


def build(library: str, class_name: str, config: dict) -> torch.nn.Module:
    """A component with random weights on the meta device."""
    cls = getattr(importlib.import_module(library), class_name)
    with META:
        if library == "transformers":
            return cls(cls.config_class(**config)).eval()
        return cls.from_config(config).eval()


def flops(call) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        call()
    return counter.get_total_flops()


def meta(*shape, dtype=torch.float32) -> torch.Tensor:
    return torch.zeros(*shape, dtype=dtype, device=META)


def tokens(length: int) -> torch.Tensor:
    return torch.zeros(1, length, dtype=torch.long, device=META)


def defaults(pipeline: str, **extra) -> dict:
    """The pipeline's `__call__` defaults of steps, guidance and strength (and of `extra` names)."""
    parameters = inspect.signature(getattr(importlib.import_module("diffusers"), pipeline).__call__).parameters
    names = ["num_inference_steps", "guidance_scale", "strength", *extra]
    return {name: parameters[name].default for name in names if name in parameters}


def denoising_steps(pipeline: str, scheduler, steps: int, strength: float) -> int:
    """How many times the pipeline calls its denoiser: its own `get_timesteps` on `scheduler`."""
    scheduler.set_timesteps(steps)
    get_timesteps = getattr(importlib.import_module("diffusers"), pipeline).get_timesteps
    return len(get_timesteps(SimpleNamespace(scheduler=scheduler), steps, strength, "cpu")[0])


def vae_flops(vae, size: int) -> tuple[int, int]:
    """FLOPs of one encode and one decode of a `size` px image."""
    latent = size // 2 ** (len(vae.config.block_out_channels) - 1)
    encode = flops(lambda: vae.encode(meta(1, 3, size, size)))
    if type(vae).__name__ == "VQModel":
        decode = flops(lambda: vae.decode(meta(1, vae.config.latent_channels, latent, latent), force_not_quantize=True))
    else:
        decode = flops(lambda: vae.decode(meta(1, vae.config.latent_channels, latent, latent)))
    return encode, decode


def stable_diffusion(family: str, parts: dict, size: int) -> tuple[dict, dict, str, int]:
    """SD 1.5 and SD 2: PNDM, guidance skipped by rip (exact with the empty prompt), prompt encoded once per run."""
    from diffusers import PNDMScheduler

    call = defaults("StableDiffusionInpaintPipeline")
    scheduler = PNDMScheduler.from_config(json.loads((SD2_FOLDER / "scheduler" / "scheduler_config.json").read_text()))
    steps = denoising_steps("StableDiffusionInpaintPipeline", scheduler, call["num_inference_steps"], call["strength"])
    unet, text = parts["unet"], parts["text_encoder"]
    latent = size // 8
    unet_flops = flops(lambda: unet(meta(1, 9, latent, latent), meta(1), encoder_hidden_states=meta(
        1, 77, unet.config.cross_attention_dim)))
    encode, decode = vae_flops(parts["vae"], size)
    text_flops = flops(lambda: text(tokens(77)))
    rip = {"unet": steps * unet_flops, "vae": encode + decode, "text_encoder": 0}
    own = {"unet": 2 * steps * unet_flops, "vae": encode + decode, "text_encoder": 2 * text_flops}
    return rip, own, f"{steps} × 1 (pipeline: × 2)", call


def sdxl(parts: dict, size: int) -> tuple[dict, dict, str, dict]:
    """SDXL: Euler at strength 0.9999, guidance kept (2 samples per UNet call), the empty prompt's negative
    embedding zeros (force_zeros_for_empty_prompt), the image and the masked image encoded."""
    from diffusers import EulerDiscreteScheduler

    call = defaults("StableDiffusionXLInpaintPipeline")
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       steps_offset=1, timestep_spacing="leading")
    steps = denoising_steps("StableDiffusionXLInpaintPipeline", scheduler, call["num_inference_steps"],
                            call["strength"])
    unet = parts["unet"]
    latent = size // 8
    added = {"text_embeds": meta(1, 1280), "time_ids": meta(1, 6)}
    unet_flops = flops(lambda: unet(meta(1, 9, latent, latent), meta(1), encoder_hidden_states=meta(1, 77, 2048),
                                    added_cond_kwargs=added))
    encode, decode = vae_flops(parts["vae"], size)
    text = flops(lambda: parts["text_encoder"](tokens(77))) + flops(lambda: parts["text_encoder_2"](tokens(77)))
    costs = {"unet": 2 * steps * unet_flops, "vae": 2 * encode + decode, "text_encoder": text}
    return costs, costs, f"{steps} × 2", call


def kandinsky22(parts: dict, size: int) -> tuple[dict, dict, str, dict]:
    """Kandinsky 2.2: the prior (25 steps, guidance: 2 samples) on the prompt and the empty negative prompt, its
    image encoder on a blank image, the decoder (100 DDPM steps, guidance: 2 samples), MoVQ encode and decode."""
    from diffusers import DDPMScheduler, UnCLIPScheduler

    call = defaults("KandinskyV22InpaintCombinedPipeline", prior_num_inference_steps=0, prior_guidance_scale=0)
    decoder = DDPMScheduler()
    decoder.set_timesteps(call["num_inference_steps"])
    prior_scheduler = UnCLIPScheduler()
    prior_scheduler.set_timesteps(call["prior_num_inference_steps"])
    steps, prior_steps = len(decoder.timesteps), len(prior_scheduler.timesteps)
    unet, prior = parts["unet"], parts["prior"]
    latent = size // 8
    unet_flops = flops(lambda: unet(meta(1, 9, latent, latent), meta(1), encoder_hidden_states=None,
                                    added_cond_kwargs={"image_embeds": meta(1, 1280)}))
    prior_flops = flops(lambda: prior(meta(1, 1280), meta(1), proj_embedding=meta(1, 1280),
                                      encoder_hidden_states=meta(1, 77, 1280),
                                      attention_mask=torch.ones(1, 77, dtype=torch.bool, device=META)))
    encode, decode = vae_flops(parts["movq"], size)
    text = 2 * flops(lambda: parts["prior_text_encoder"](tokens(77)))
    image = flops(lambda: parts["prior_image_encoder"](meta(1, 3, 224, 224)))
    costs = {"unet": 2 * steps * unet_flops, "prior": 2 * prior_steps * prior_flops, "vae": encode + decode,
             "text_encoder": text + image}
    return costs, costs, f"{steps} × 2 (prior {prior_steps} × 2)", call


def flux_fill(parts: dict, size: int) -> tuple[dict, dict, str, dict]:
    """FLUX.1 Fill: flow matching, distilled guidance (1 sample per call), T5-XXL on 512 tokens and CLIP once,
    the image and the masked image encoded."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    call = defaults("FluxFillPipeline")
    steps = denoising_steps("FluxFillPipeline", FlowMatchEulerDiscreteScheduler(shift=3.0),
                            call["num_inference_steps"], call["strength"])
    transformer = parts["transformer"]
    patches = (size // 16) ** 2  # 8× VAE, then 2 × 2 latent patches
    text_tokens = inspect.signature(
        importlib.import_module("diffusers").FluxFillPipeline.__call__).parameters["max_sequence_length"].default
    step_flops = flops(lambda: transformer(
        hidden_states=meta(1, patches, transformer.config.in_channels), encoder_hidden_states=meta(1, text_tokens, 4096),
        pooled_projections=meta(1, 768), timestep=meta(1), img_ids=meta(patches, 3), txt_ids=meta(text_tokens, 3),
        guidance=meta(1)))
    encode, decode = vae_flops(parts["vae"], size)
    text = flops(lambda: parts["text_encoder"](tokens(77))) + flops(lambda: parts["text_encoder_2"](tokens(text_tokens)))
    costs = {"transformer": steps * step_flops, "vae": 2 * encode + decode, "text_encoder": text}
    return costs, costs, f"{steps} × 1", call


def measure(family: str, size: int) -> Cost:
    parts = {name: build(*spec) for name, spec in FAMILIES[family]().items()}
    parameters = sum(p.numel() for module in parts.values() for p in module.parameters())
    if family in ("sd2", "sd15"):
        rip, own, calls, call = stable_diffusion(family, parts, size)
    else:
        rip, own, calls, call = {"sdxl": sdxl, "kandinsky22": kandinsky22, "flux-fill": flux_fill}[family](parts, size)
    shown = ", ".join(f"{name} {value:g}" for name, value in call.items())
    return Cost(family, MODEL_IDS[family], parameters, shown, calls, sum(rip.values()) / 1e12,
                sum(own.values()) / 1e12, {name: round(value / 1e12, 3) for name, value in rip.items()})


def preset_inpaintings() -> dict[str, int]:
    """Inpaintings per model of experiments/models.yaml: images × iterations, summed over its masks."""
    counts: dict[str, int] = {}
    for config in expand(load_preset("models")):
        images = int(config.images.split(":")[1].split("@")[0])
        counts[config.model] = counts.get(config.model, 0) + images * config.total_iterations
    return counts


def table(costs: list[Cost], inpaintings: dict[str, int], mfu: float) -> str:
    rate = H100_PEAK_TFLOPS * mfu
    lines = ["| family | parameters | defaults | denoiser calls × samples | TFLOP per inpainting (rip) | "
             "(pipeline's own call) | GPU-hours for the models preset |", "|---|---:|---|---|---:|---:|---:|"]
    total = 0.0
    for cost in costs:
        hours = inpaintings.get(cost.model, 0) * cost.rip_tflop / rate / 3600
        total += hours
        lines.append(f"| {NAMES[cost.family]} | {cost.parameters / 1e9:.2f} B | {cost.defaults} | {cost.denoiser_calls} "
                     f"| {cost.rip_tflop:.1f} | {cost.pipeline_tflop:.1f} | {hours:.1f} |")
    lines.append("| telea, biharmonic | — | — | — | CPU | CPU | — |")
    lines.append(f"\nAt {mfu:.0%} of {H100_PEAK_TFLOPS:g} TFLOP/s ({rate:.0f} TFLOP/s sustained, assumed): "
                 f"{total:.1f} H100-hours for the diffusion models of the preset "
                 f"({', '.join(f'{n:,}' for n in sorted(set(inpaintings.values())))} inpaintings per model).")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--mfu", type=float, default=0.35, help="assumed share of the H100's peak, sustained")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--json", help="also write every number to this file")
    args = parser.parse_args()
    start = time.perf_counter()
    costs = [measure(family, args.size) for family in args.families.split(",")]
    print(table(costs, preset_inpaintings(), args.mfu))
    print("\nTFLOP per inpainting by component (rip's call): " + "; ".join(
        f"{NAMES[c.family]}: " + ", ".join(f"{k} {v:g}" for k, v in c.parts.items()) for c in costs))
    print("Architectures: " + " | ".join(f"{NAMES[f]}: {SOURCES[f]}" for f in args.families.split(",")))
    print(f"({time.perf_counter() - start:.0f} s on the meta device, no weights in memory)")
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(c) for c in costs], indent=2))


if __name__ == "__main__":
    main()
