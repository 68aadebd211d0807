"""Diffusers inpainting pipelines: any model id or folder, loaded with `from_pretrained`."""

import inspect
import socket
import warnings
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
from diffusers import (
    AutoPipelineForInpainting,
    DDIMScheduler,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    LMSDiscreteScheduler,
    PNDMScheduler,
)
from PIL import Image

from rip.inpainters.base import Inpainter, InpaintingFailure, ModelUnavailableError

HUB_CONNECT_TIMEOUT_S = 5
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
SCHEDULER_CLASSES = {
    "ddim": DDIMScheduler,
    "pndm": PNDMScheduler,
    "euler": EulerDiscreteScheduler,
    "euler-ancestral": EulerAncestralDiscreteScheduler,
    "dpm-solver": DPMSolverMultistepScheduler,
    "lms": LMSDiscreteScheduler,
}


class DiffusionInpainter(Inpainter):
    """Runs a diffusers inpainting pipeline on a batch, one mask and one generator per image.

    Arguments left as None take the pipeline's own defaults. With an empty prompt and no
    negative prompt, both halves of classifier-free guidance see the same embedding, so
    guidance is skipped (guidance_scale 1.0): same result, half the UNet work;
    `skip_unconditional_guidance=False` runs the pipeline's exact default call instead.
    An output with NaN or infinite values, or one the pipeline's safety checker flags, becomes
    an `InpaintingFailure`, never pixels.
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
        revision: str = "",
        tags: dict[str, str] | None = None,
    ):
        self.pipeline = pipeline
        self.name = name
        defaults = _call_defaults(pipeline)
        self.num_inference_steps = num_inference_steps or defaults["num_inference_steps"]
        self.guidance_scale = defaults["guidance_scale"] if guidance_scale is None else guidance_scale
        self.strength = defaults["strength"] if strength is None else strength
        self.prompt = prompt
        self.paste_back = paste_back
        self.guidance_skipped = skip_unconditional_guidance and not prompt and self.guidance_scale > 1
        self.revision = revision
        self._tags = tags or {}
        self.pipeline.set_progress_bar_config(disable=True)

    @classmethod
    def from_pretrained(
        cls,
        model: str,
        *,
        device: str,
        dtype: str = "auto",
        scheduler: str | None = None,
        safety_checker: bool = False,
        **options,
    ) -> "DiffusionInpainter":
        """Load a hub id or local folder in `dtype` (auto: fp16 on CUDA, fp32 elsewhere).

        The safety checker a model ships is left out unless `safety_checker` is set.
        """
        local_only = _hub_unreachable(model)
        with warnings.catch_warnings():  # diffusers still passes huggingface_hub a deprecated argument
            warnings.filterwarnings("ignore", message=".*local_dir_use_symlinks", category=UserWarning)
            index = _model_index(model, local_only)
            ships_checker = bool(index.get("safety_checker") and index["safety_checker"][0])
            if safety_checker and not ships_checker:
                raise ModelUnavailableError(f"model {model!r} ships no safety checker; run it with safety_checker=false")
            components = {} if ships_checker and safety_checker else _without_checker(index)
            try:
                pipeline = AutoPipelineForInpainting.from_pretrained(
                    model, dtype=resolve_dtype(dtype, device), local_files_only=bool(local_only), **components
                )
            except (OSError, ValueError, EnvironmentError) as error:
                raise ModelUnavailableError(f"cannot load inpainting model {model!r}: {error}") from error
        if scheduler is not None:
            replace_scheduler(pipeline, scheduler)
        tags = {"rip.model_safety_checker": "shipped" if ships_checker else "none"}
        return cls(pipeline.to(device), name=model, revision=_revision(model), tags=tags, **options)

    def inpaint(
        self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray], seeds: Sequence[int]
    ) -> list[np.ndarray]:
        height, width = images[0].shape[:2]
        pil_images = [Image.fromarray(image) for image in images]
        pil_masks = [Image.fromarray(mask.astype(np.uint8) * 255) for mask in masks]
        generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
        output = self.pipeline(
            prompt=[self.prompt] * len(images),
            image=pil_images,
            mask_image=pil_masks,
            height=height,
            width=width,
            num_inference_steps=self.num_inference_steps,
            guidance_scale=1.0 if self.guidance_skipped else self.guidance_scale,
            strength=self.strength,
            generator=generators,
            output_type="np",
        )
        flagged = getattr(output, "nsfw_content_detected", None) or [False] * len(images)
        overlay = self.pipeline.image_processor.apply_overlay
        results = []
        for array, unsafe, mask, image in zip(output.images, flagged, pil_masks, pil_images):
            if unsafe:
                results.append(InpaintingFailure("the safety checker flagged the output (withheld as a black image)"))
            elif not np.isfinite(array).all():
                results.append(InpaintingFailure(
                    f"the pipeline returned {np.size(array) - np.isfinite(array).sum()} non-finite values "
                    f"(NaN or inf; with fp16, try dtype=fp32 or bf16)"
                ))
            else:
                result = np.clip(np.rint(array * 255), 0, 255).astype(np.uint8)
                results.append(np.asarray(overlay(mask, image, Image.fromarray(result))) if self.paste_back else result)
        return results

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
            "model_revision": self.revision,
        }


    def tags(self) -> dict[str, str]:
        return self._tags


def replace_scheduler(pipeline: DiffusionPipeline, name: str) -> None:
    """Swap in scheduler `name` (see SCHEDULER_CLASSES), configured like the pipeline's own."""
    pipeline.scheduler = SCHEDULER_CLASSES[name].from_config(pipeline.scheduler.config)


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """'auto' -> fp16 on CUDA, fp32 elsewhere; else the named dtype."""
    if dtype == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    return DTYPES[dtype]


def _model_index(model: str, local_only: str) -> dict:
    """The model's model_index.json; ModelUnavailableError when it cannot be had.

    `local_only` (why the hub is out of reach, or empty) limits the search to the cache.
    """
    from huggingface_hub.errors import HFValidationError

    try:
        return DiffusionPipeline.load_config(model, local_files_only=bool(local_only))
    except (OSError, ValueError, HFValidationError) as error:
        reason = f"it is not in the Hugging Face cache and {local_only}" if local_only else _first_line(error)
        raise ModelUnavailableError(
            f"cannot load inpainting model {model!r}: {reason}.\n"
            "A hub model is downloaded from huggingface.co on first use; offline, download it "
            f"elsewhere (`hf download {model}`) into the Hugging Face cache, or pass a local folder."
        ) from error


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


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _call_defaults(pipeline: DiffusionPipeline) -> dict[str, float]:
    """The pipeline's own `__call__` defaults for steps, guidance and strength."""
    parameters = inspect.signature(pipeline.__call__).parameters
    fallback = {"num_inference_steps": 50, "guidance_scale": 7.5, "strength": 1.0}
    return {
        name: parameters[name].default if name in parameters else value
        for name, value in fallback.items()
    }


def _revision(model: str) -> str:
    """The commit of a cached hub model, or 'local' for a folder."""
    if Path(model).is_dir():
        return "local"
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(model, "model_index.json")
    return Path(cached).parent.name if isinstance(cached, str) else "unknown"
