"""Diffusers inpainting pipelines: any model id or folder, loaded with `from_pretrained`."""

import inspect
from collections.abc import Sequence
from pathlib import Path

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

from rip.inpainters.base import Inpainter, ModelUnavailableError

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
    guidance is skipped (guidance_scale 1.0): same result, half the UNet work.
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
        cls, model: str, *, device: str, scheduler: str | None = None, **options
    ) -> "DiffusionInpainter":
        """Load a hub id or local folder; fp16 on CUDA, fp32 elsewhere."""
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
        try:
            pipeline = AutoPipelineForInpainting.from_pretrained(model, dtype=dtype)
        except (OSError, ValueError, EnvironmentError) as error:
            raise ModelUnavailableError(
                f"cannot load inpainting model {model!r}: {error}\n"
                "A hub model is downloaded from huggingface.co on first use; offline, download it "
                f"elsewhere (`hf download {model}`) into the Hugging Face cache, or pass a local folder."
            ) from error
        if scheduler is not None:
            replace_scheduler(pipeline, scheduler)
        return cls(pipeline.to(device), name=model, revision=_revision(model), **options)

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
        ).images
        results = [np.clip(np.rint(array * 255), 0, 255).astype(np.uint8) for array in output]
        if self.paste_back:
            overlay = self.pipeline.image_processor.apply_overlay
            results = [
                np.asarray(overlay(mask, image, Image.fromarray(result)))
                for mask, image, result in zip(pil_masks, pil_images, results)
            ]
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
            "model_revision": self.revision,
        }


    def tags(self) -> dict[str, str]:
        return self._tags


def replace_scheduler(pipeline: DiffusionPipeline, name: str) -> None:
    """Swap in scheduler `name` (see SCHEDULER_CLASSES), configured like the pipeline's own."""
    pipeline.scheduler = SCHEDULER_CLASSES[name].from_config(pipeline.scheduler.config)


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
