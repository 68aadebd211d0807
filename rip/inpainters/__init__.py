"""Inpainting backends behind one interface."""

from rip.inpainters.schedules import SCHEDULERS, check_denoising_steps
from rip.tracking.tags import TINY_TAG

__all__ = ["BUILTIN_INPAINTERS", "LOADED_FROM", "SCHEDULERS", "call_options", "check_denoising_steps", "inpainter_key",
           "load_inpainter", "peak_memory", "reset_peak_memory", "resolve_device"]

BUILTIN_INPAINTERS = ("tiny", "telea", "ns", "biharmonic")
LOADED_FROM = (
    "model", "model_revision", "steps", "guidance", "strength", "prompt", "paste_back", "scheduler", "device", "dtype",
    "skip_guidance", "safety_checker", "compile", "channels_last", "fuse_qkv",
)
"""The configuration fields `load_inpainter` builds an inpainter from (and `batch_size` when compiled)."""


def inpainter_key(config) -> tuple:
    """Configurations with equal keys can share one loaded inpainter."""
    return tuple(getattr(config, name) for name in LOADED_FROM) + ((config.batch_size,) if config.compile else ())


def resolve_device(device: str) -> str:
    """'auto' -> cuda, then mps, then cpu."""
    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def reset_peak_memory(device: str) -> None:
    """Start measuring the most memory torch allocates on `device` (CUDA; nothing elsewhere)."""
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: str) -> int | None:
    """Bytes: the most torch allocated on `device` since `reset_peak_memory`, weights included; None off CUDA."""
    if not str(device).startswith("cuda"):
        return None
    import torch

    return torch.cuda.max_memory_allocated(device)


def call_options(config) -> dict:
    """`DiffusionInpainter`'s run-time settings from a configuration."""
    return dict(
        num_inference_steps=config.steps,
        guidance_scale=config.guidance,
        strength=config.strength,
        prompt=config.prompt,
        paste_back=config.paste_back,
        skip_unconditional_guidance=config.skip_guidance,
        static_batch=config.batch_size if config.compile else None,
    )


def load_inpainter(config, device: str):
    """The backend `config.model` names, ready to run on `device`."""
    if config.model in ("telea", "ns"):
        from rip.inpainters.classical import OpenCVInpainter

        return OpenCVInpainter(config.model)
    if config.model == "biharmonic":
        from rip.inpainters.classical import BiharmonicInpainter

        return BiharmonicInpainter()

    from rip.inpainters.diffusion import DiffusionInpainter, replace_scheduler, resolve_dtype, speed_up

    options = call_options(config)
    if config.model == "tiny":
        import torch

        from rip.inpainters.hub import ModelFiles
        from rip.inpainters.tiny import build_tiny_pipeline

        pipeline = build_tiny_pipeline()
        if config.scheduler is not None:
            replace_scheduler(pipeline, config.scheduler)
        tags = {TINY_TAG: "true: a randomly initialised tiny pipeline, for tests and smoke runs"}
        dtype = resolve_dtype(config.dtype, device, type(pipeline).__name__)
        # built in fp32: casting only when another dtype is asked avoids diffusers' cast warning
        pipeline = pipeline.to(device) if dtype == torch.float32 else pipeline.to(device, dtype)
        files = ModelFiles("tiny", "tiny-seed0")
        inpainter = DiffusionInpainter(pipeline, name="tiny", files=files, tags=tags, **options)
    else:
        inpainter = DiffusionInpainter.from_pretrained(
            config.model, device=device, dtype=config.dtype, revision=config.revision, scheduler=config.scheduler,
            safety_checker=config.safety_checker, **options,
        )
    speed_up(inpainter.pipeline, compile=config.compile, channels_last=config.channels_last, fuse_qkv=config.fuse_qkv)
    return inpainter
