"""Diffusers inpainting pipelines: any model id or folder, loaded with `from_pretrained`."""

import inspect
import logging
import socket
import warnings
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
from diffusers import (AutoPipelineForInpainting, DDIMScheduler, DiffusionPipeline, DPMSolverMultistepScheduler,
                       EulerAncestralDiscreteScheduler, EulerDiscreteScheduler, FluxFillPipeline,
                       KandinskyV22InpaintCombinedPipeline, LMSDiscreteScheduler, PNDMScheduler,
                       StableDiffusionInpaintPipeline)
from diffusers.utils import logging as diffusers_logging
from diffusers.utils.torch_utils import randn_tensor

from rip.inpainters.base import Inpainted, Inpainter, InpaintingFailure, ModelUnavailableError, to_arrays, to_batch
from rip.inpainters.hub import ModelFiles, first_line, hub_error, loaded_files, model_index
from rip.inpainters.schedules import check_denoising_steps
from rip.tracking.tags import MODEL_SHA256_TAG, PUBLISHED_SHA256_TAG, SAFETY_CHECKER_TAG

HUB_CONNECT_TIMEOUT_S = 5
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
HALF_PRECISION = {"Flux": torch.bfloat16}
"""The half precision `dtype` auto loads on CUDA, by the prefix of the pipeline class in the model's
model_index.json: bf16 for FLUX.1, whose activations overflow fp16's range; fp16 for every other family."""
SCHEDULER_CLASSES = {
    "ddim": DDIMScheduler,
    "pndm": PNDMScheduler,
    "euler": EulerDiscreteScheduler,
    "euler-ancestral": EulerAncestralDiscreteScheduler,
    "dpm-solver": DPMSolverMultistepScheduler,
    "lms": LMSDiscreteScheduler,
}
LOADED_AS_SAVED = {"FluxFillPipeline": FluxFillPipeline}
"""Inpainting pipelines that `AutoPipelineForInpainting` does not know (it raises "can't find a pipeline linked to
FluxFillPipeline"), loaded as their model_index.json names them."""
ONE_IMAGE_PER_CALL = (KandinskyV22InpaintCombinedPipeline,)
"""Pipelines whose output for one image depends on the others of its call: Kandinsky 2.2's decoder pastes the
first image's unmasked latents into every image of the batch (`mask_image[:1] * image[:1]`)."""
SIGNED_PIXELS = (KandinskyV22InpaintCombinedPipeline,)
"""Pipelines that take and return image tensors in [-1, 1] rather than [0, 1]."""


class _NoFp32ModulesNotice(logging.Filter):
    """Drops diffusers' notice on casting a model that has no modules to keep in float32 (it is
    printed whatever the list holds, and SDXL pipelines cast their VAE on every call)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "should be kept in float32: []" not in record.getMessage()


diffusers_logging.get_logger("diffusers.models.modeling_utils").addFilter(_NoFp32ModulesNotice())


class DiffusionInpainter(Inpainter):
    """Runs a diffusers inpainting pipeline on a batch, one mask and one generator per image.

    Arguments left as None take the pipeline's own defaults. With an empty prompt and no
    negative prompt, both halves of a Stable Diffusion inpainting pipeline's classifier-free
    guidance see the same embedding, so guidance is skipped (guidance_scale 1.0): same result,
    half the UNet work; `skip_unconditional_guidance=False` runs the pipeline's exact default call
    instead. Other pipelines keep their guidance: SDXL zeroes the unconditional embedding of an
    empty prompt, Kandinsky 2.2 guides with the prior's embedding of a blank image, and FLUX.1
    Fill's guidance is distilled (an input of the transformer, with no unconditional pass), so
    skipping it would change the result. A `strength` below 1 is refused for a pipeline that has
    no such argument (Kandinsky 2.2 always starts from pure noise).
    An output with NaN or infinite values, or one the pipeline's safety checker flags, becomes
    an `InpaintingFailure`, never pixels.

    Images stay tensors on the pipeline's device: each output is quantised there to uint8 as
    `clip(rint(x * 255))`, the study's per-iteration rounding. For Stable Diffusion inpainting
    pipelines the prompt is encoded once and passed as `prompt_embeds`, and at full strength
    with a 9-channel UNet the initial noise and the masked images' latents are drawn here, in
    the pipeline's order (per image: noise, then the VAE sample), with one VAE call per batch.
    `static_batch`: every pipeline call gets exactly this many images (the tail padded), as
    `torch.compile` wants.
    """

    def __init__(
        self,
        pipeline: DiffusionPipeline,
        *,
        name: str,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        strength: float | None = None,
        prompt: str = "",
        paste_back: bool = False,
        skip_unconditional_guidance: bool = True,
        static_batch: int | None = None,
        files: ModelFiles | None = None,
        tags: dict[str, str] | None = None,
    ):
        self.pipeline = pipeline
        self.name = name
        defaults = _call_defaults(pipeline)
        self.num_inference_steps = num_inference_steps or defaults["num_inference_steps"]
        self.guidance_scale = defaults["guidance_scale"] if guidance_scale is None else guidance_scale
        self.takes_strength = "strength" in inspect.signature(pipeline.__call__).parameters
        if strength is not None and strength < 1 and not self.takes_strength:
            raise ValueError(f"strength {strength}: {type(pipeline).__name__} ({name}) has no strength, it always "
                             "denoises from pure noise; leave strength empty or set it to 1")
        self.strength = defaults["strength"] if strength is None else strength
        check_schedule(pipeline.scheduler, self.num_inference_steps, self.strength)
        self.prompt = prompt
        self.paste_back = paste_back
        self.guidance_skipped = (
            skip_unconditional_guidance and not prompt and self.guidance_scale > 1
            and not guidance_acts_on_empty_prompt(pipeline)
        )
        self.static_batch = 1 if isinstance(pipeline, ONE_IMAGE_PER_CALL) else static_batch
        self.files = files or ModelFiles(name, "in-memory")
        self._tags = tags or {}
        self._embeddings: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self.pipeline.set_progress_bar_config(disable=True)

    @classmethod
    def from_pretrained(
        cls,
        model: str,
        *,
        device: str,
        dtype: str = "auto",
        revision: str = "",
        scheduler: str | None = None,
        safety_checker: bool = False,
        **options,
    ) -> "DiffusionInpainter":
        """Load a hub id (at `revision`: a commit, branch or tag; '' = the default branch) or a local
        folder in `dtype` (auto: see `resolve_dtype`); in fp16, the repository's `fp16` variant files
        where it has them.

        The safety checker a model ships is left out unless `safety_checker` is set. What was
        loaded (commit, variant, the SHA-256 of each weight file) is in `files`.
        """
        pipeline, files, ships_checker = load_pipeline(model, dtype, device=device, revision=revision,
                                                       safety_checker=safety_checker)
        if scheduler is not None:
            replace_scheduler(pipeline, scheduler)
        tags = {SAFETY_CHECKER_TAG: "shipped" if ships_checker else "none"}
        return cls(pipeline.to(device), name=model, files=files, tags=tags, **options)

    @property
    def device(self) -> torch.device:
        return self.pipeline._execution_device

    def inpaint(
        self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray], seeds: Sequence[int]
    ) -> list["np.ndarray | InpaintingFailure"]:
        batch = to_batch(images, self.device)
        result = self.inpaint_batch(batch, torch.from_numpy(np.stack(masks)).to(self.device), seeds)
        return [failure or array for array, failure in zip(to_arrays(result.images), result.failures)]

    def inpaint_batch(self, images: torch.Tensor, masks: torch.Tensor, seeds: Sequence[int]) -> Inpainted:
        size = self.static_batch or len(seeds)
        parts = [
            self._call(*_padded(images[start:start + size], masks[start:start + size], seeds[start:start + size], size))
            for start in range(0, len(seeds), size)
        ]
        count = [min(size, len(seeds) - start) for start in range(0, len(seeds), size)]
        return Inpainted(
            torch.cat([part.images[:n] for part, n in zip(parts, count)]),
            [failure for part, n in zip(parts, count) for failure in part.failures[:n]],
        )

    @torch.no_grad()
    def _call(self, images: torch.Tensor, masks: torch.Tensor, seeds: Sequence[int]) -> Inpainted:
        """One pipeline call: uint8 (N, 3, H, W) images, boolean (N, H, W) masks, one seed each."""
        # 1. Inputs as the pipeline's preprocessing makes them from PIL images: floats in [0, 1]
        height, width = images.shape[2:]
        pixels = images.float().div(255)
        signed = isinstance(self.pipeline, SIGNED_PIXELS)
        mask = masks[:, None].float()
        generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
        guidance = 1.0 if self.guidance_skipped else self.guidance_scale
        arguments = self._prompt_arguments(len(seeds), guidance)
        if self._draws_latents():
            arguments.update(self._latents(pixels, mask, generators, arguments["prompt_embeds"].dtype))

        if self.takes_strength:
            arguments["strength"] = self.strength

        # 2. Inpaint
        output = self.pipeline(
            image=pixels * 2 - 1 if signed else pixels,
            mask_image=mask,
            height=height,
            width=width,
            num_inference_steps=self.num_inference_steps,
            guidance_scale=guidance,
            generator=generators,
            output_type="pt",
            **arguments,
        )
        outputs = (output.images + 1) / 2 if signed else output.images

        # 3. Quantise as the study did, on the device; failed images never become pixels
        result = torch.round(outputs.float() * 255).clamp(0, 255).to(torch.uint8)
        if self.paste_back:
            result = torch.where(masks[:, None], result, images)
        flagged = getattr(output, "nsfw_content_detected", None) or [False] * len(seeds)
        non_finite = (~torch.isfinite(outputs)).flatten(1).sum(1).tolist()
        return Inpainted(result, [_failure(unsafe, count) for unsafe, count in zip(flagged, non_finite)])

    def _prompt_arguments(self, count: int, guidance: float) -> dict:
        """The prompt's call arguments for `count` images: embeddings computed once, where the pipeline takes them."""
        if not isinstance(self.pipeline, StableDiffusionInpaintPipeline):
            return {"prompt": [self.prompt] * count}
        if self._embeddings is None:
            self._embeddings = self.pipeline.encode_prompt(
                self.prompt, self.device, 1, guidance > 1 and self.pipeline.unet.config.time_cond_proj_dim is None
            )
        positive, negative = self._embeddings
        arguments = {"prompt_embeds": positive.expand(count, -1, -1)}
        if negative is not None:
            arguments["negative_prompt_embeds"] = negative.expand(count, -1, -1)
        return arguments

    def _draws_latents(self) -> bool:
        """Whether `_latents` reproduces the pipeline's own draws: SD inpainting, 9-channel UNet, full strength."""
        return (
            isinstance(self.pipeline, StableDiffusionInpaintPipeline)
            and self.pipeline.unet.config.in_channels == 9
            and self.strength == 1.0
        )

    def _latents(self, pixels: torch.Tensor, mask: torch.Tensor, generators: list, dtype: torch.dtype) -> dict:
        """The initial noise and the masked images' latents, as the pipeline would draw them.

        Each generator draws the noise first, then the VAE sample of its masked image (the
        pipeline's order); the masked images go through the VAE encoder in one call.
        """
        pipeline, device = self.pipeline, self.device
        count, _, height, width = pixels.shape
        scale = pipeline.vae_scale_factor
        shape = (count, pipeline.vae.config.latent_channels, height // scale, width // scale)
        noise = randn_tensor(shape, generator=generators, device=device, dtype=dtype)
        masked = ((2.0 * pixels - 1.0) * (mask < 0.5)).to(device=device, dtype=dtype)
        posterior = pipeline.vae.encode(masked).latent_dist
        sample = randn_tensor(
            posterior.mean.shape, generator=generators, device=posterior.parameters.device,
            dtype=posterior.parameters.dtype,
        )
        latents = pipeline.vae.config.scaling_factor * (posterior.mean + posterior.std * sample)
        return {"latents": noise, "masked_image_latents": latents}

    def params(self) -> dict[str, str]:
        unet = getattr(self.pipeline, "unet", None) or getattr(self.pipeline, "transformer", None)
        return {
            "pipeline_class": type(self.pipeline).__name__,
            "scheduler_class": type(self.pipeline.scheduler).__name__,
            "resolved_device": str(self.pipeline.device),
            "resolved_dtype": str(unet.dtype if unet is not None else self.pipeline.dtype),
            "resolved_steps": str(self.num_inference_steps),
            "resolved_guidance": str(self.guidance_scale),
            "resolved_strength": str(self.strength),
            "guidance_skipped": str(self.guidance_skipped).lower(),
            "safety_checker_loaded": str(getattr(self.pipeline, "safety_checker", None) is not None).lower(),
            "resolved_revision": self.files.revision,
            "resolved_variant": self.files.variant or "none",
            **_family_params(self.pipeline),
        }

    def tags(self) -> dict[str, str]:
        if not self.files.files:
            return self._tags
        return {**self._tags, MODEL_SHA256_TAG: self.files.digest, PUBLISHED_SHA256_TAG: self.files.published()}

    def model_files(self) -> dict | None:
        return self.files.as_json() if self.files.files else None


def speed_up(pipeline: DiffusionPipeline, *, compile: bool = False, channels_last: bool = False,
             fuse_qkv: bool = False) -> None:
    """Opt-in speedups that keep outputs within float tolerance, applied in place.

    `fuse_qkv`: one projection for query, key and value (UNet and VAE attention);
    `channels_last`: NHWC memory layout of the UNet and VAE; `compile`: `torch.compile` of the
    UNet and the VAE decoder for static shapes (give the inpainter a `static_batch`); both refused
    for pipelines without a UNet and a VAE (FLUX.1's transformer, Kandinsky's MoVQ).
    """
    for name, asked in (("compile", compile), ("channels_last", channels_last)):
        if asked and not all(isinstance(getattr(pipeline, part, None), torch.nn.Module) for part in ("unet", "vae")):
            raise ValueError(f"{name}: {type(pipeline).__name__} has no UNet and VAE to speed up; leave {name} off")
    if fuse_qkv:
        if not hasattr(pipeline, "fuse_qkv_projections"):
            raise ValueError(f"fuse_qkv: {type(pipeline).__name__} cannot fuse QKV projections")
        pipeline.fuse_qkv_projections()
    if channels_last:
        for model in (pipeline.unet, pipeline.vae):
            model.to(memory_format=torch.channels_last)
    if compile:
        pipeline.unet.compile(dynamic=False)
        pipeline.vae.decoder.compile(dynamic=False)


def _padded(images: torch.Tensor, masks: torch.Tensor, seeds: Sequence[int], size: int):
    """A batch of exactly `size` images: the last one repeated (its outputs are discarded)."""
    missing = size - len(seeds)
    if missing <= 0:
        return images, masks, seeds
    fill = [images.shape[0] - 1] * missing
    return torch.cat([images, images[fill]]), torch.cat([masks, masks[fill]]), [*seeds, *[seeds[-1]] * missing]


def _failure(unsafe: bool, non_finite: int) -> InpaintingFailure | None:
    if unsafe:
        return InpaintingFailure("the safety checker flagged the output (withheld as a black image)")
    if non_finite:
        return InpaintingFailure(
            f"the pipeline returned {non_finite} non-finite values (NaN or inf; with fp16, try dtype=fp32 or bf16)"
        )
    return None


def replace_scheduler(pipeline: DiffusionPipeline, name: str) -> None:
    """Swap in scheduler `name` (see SCHEDULER_CLASSES), configured like the pipeline's own."""
    pipeline.scheduler = SCHEDULER_CLASSES[name].from_config(pipeline.scheduler.config)


def guidance_acts_on_empty_prompt(pipeline: DiffusionPipeline) -> bool:
    """Whether classifier-free guidance changes `pipeline`'s images when the prompt is empty: not for
    Stable Diffusion inpainting (both halves see the empty prompt's embedding), yes for others such
    as SDXL, which zeroes the unconditional embedding."""
    return not isinstance(pipeline, StableDiffusionInpaintPipeline)


def check_schedule(scheduler, steps: int, strength: float) -> None:
    """Raise ValueError naming the values when `scheduler` cannot denoise `steps` steps at `strength`."""
    check_denoising_steps(steps, strength)
    if isinstance(scheduler, PNDMScheduler) and not scheduler.config.skip_prk_steps and steps < scheduler.pndm_order:
        raise ValueError(
            f"steps {steps}: {type(scheduler).__name__} without skip_prk_steps needs at least "
            f"{scheduler.pndm_order} steps (its Runge-Kutta warm-up); use more steps or another scheduler"
        )


def resolve_dtype(dtype: str, device: str, pipeline_class: str = "") -> torch.dtype:
    """The named dtype; 'auto' -> on CUDA the half precision of `pipeline_class`'s family (HALF_PRECISION:
    bf16 for FLUX.1, else fp16), fp32 elsewhere."""
    if dtype != "auto":
        return DTYPES[dtype]
    if not device.startswith("cuda"):
        return torch.float32
    return next((half for prefix, half in HALF_PRECISION.items() if pipeline_class.startswith(prefix)), torch.float16)


def load_pipeline(model: str, dtype: str, *, device: str = "cpu", revision: str = "",
                  safety_checker: bool = False) -> tuple[DiffusionPipeline, ModelFiles, bool]:
    """Load a hub id (at `revision`; '' = the default branch) or a folder in `dtype` as resolved for
    `device` and the model's pipeline class (`resolve_dtype`), on the CPU, as
    `DiffusionInpainter.from_pretrained` does, downloading what the cache lacks when the hub is
    reachable: the pipeline, what it was loaded from, and whether the model ships a safety checker."""
    local_only = _hub_unreachable(model)
    with warnings.catch_warnings():  # diffusers still passes huggingface_hub a deprecated argument
        warnings.filterwarnings("ignore", message=".*local_dir_use_symlinks", category=UserWarning)
        index, folder = model_index(model, revision, local_only)
        dtype = resolve_dtype(dtype, device, index.get("_class_name", ""))
        ships_checker = bool(index.get("safety_checker") and index["safety_checker"][0])
        if safety_checker and not ships_checker:
            raise ModelUnavailableError(f"model {model!r} ships no safety checker; run it with safety_checker=false")
        components = {} if ships_checker and safety_checker else _without_checker(index)
        variant = "fp16" if dtype == torch.float16 else ""
        loader = LOADED_AS_SAVED.get(index.get("_class_name"), AutoPipelineForInpainting)
        pipeline = _load_pipeline(loader, model, revision, dtype, variant, local_only, components)
    files = loaded_files(model, folder, index, variant, left_out={name for name in components if name in index})
    return pipeline, files, ships_checker


def _load_pipeline(loader, model: str, revision: str, dtype: torch.dtype, variant: str, local_only: str,
                   components: dict) -> DiffusionPipeline:
    """`loader.from_pretrained` (AutoPipelineForInpainting, or a pipeline class), with the `variant` files
    where the model has them; `local_only` (why the hub is out of reach, or empty) limits it to the cache."""
    from huggingface_hub.errors import HfHubHTTPError

    arguments = dict(revision=revision or None, dtype=dtype, local_files_only=bool(local_only), **components)
    try:
        try:
            return loader.from_pretrained(model, variant=variant or None, **arguments)
        except ValueError as error:
            if not variant or "no such modeling files are available" not in str(error):
                raise
            return loader.from_pretrained(model, **arguments)  # the model has no such variant
    except (OSError, ValueError, HfHubHTTPError) as error:
        cause = hub_error(model, revision, local_only, error)
        if cause is not error:
            raise cause from error
        raise ModelUnavailableError(f"cannot load inpainting model {model!r}: {first_line(error)}") from error


def _hub_unreachable(model: str) -> str:
    """Why the hub cannot be asked for `model` (offline mode, no connection), or '' when it can.

    One quick connection attempt, so that an offline machine uses its cache at once instead of
    retrying for half a minute.
    """
    from huggingface_hub import constants

    if Path(model).is_dir():
        return ""
    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    endpoint = urlparse(constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname, port), timeout=HUB_CONNECT_TIMEOUT_S).close()
    except OSError as error:
        return f"{endpoint.hostname} cannot be reached ({error})"
    return ""


def _without_checker(index: dict) -> dict:
    """from_pretrained arguments that leave out the pipeline's safety checker, if it has one."""
    if "safety_checker" not in index:
        return {}
    return {"safety_checker": None, "requires_safety_checker": False}


def _family_params(pipeline: DiffusionPipeline) -> dict[str, str]:
    """What only some families have: a prior's call defaults (Kandinsky 2.2), distilled guidance (FLUX.1)."""
    parameters = inspect.signature(pipeline.__call__).parameters
    params = {f"resolved_{name}": str(parameters[name].default)
              for name in ("prior_num_inference_steps", "prior_guidance_scale") if name in parameters}
    transformer = getattr(pipeline, "transformer", None)
    if transformer is not None and getattr(transformer.config, "guidance_embeds", False):
        params["guidance_kind"] = "distilled: guidance_scale is an input of the transformer, no unconditional pass"
    return params


def _call_defaults(pipeline: DiffusionPipeline) -> dict[str, float]:
    """The pipeline's own `__call__` defaults for steps, guidance and strength."""
    parameters = inspect.signature(pipeline.__call__).parameters
    fallback = {"num_inference_steps": 50, "guidance_scale": 7.5, "strength": 1.0}
    return {
        name: parameters[name].default if name in parameters else value
        for name, value in fallback.items()
    }
