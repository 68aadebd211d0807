"""The schedulers a diffusion model can be given, and the schedules a pipeline can run."""

SCHEDULERS = ("ddim", "pndm", "euler", "euler-ancestral", "dpm-solver", "lms")


def check_denoising_steps(steps: int, strength: float) -> None:
    """ValueError when `steps` at `strength` leave no denoising step (a pipeline runs int(steps × strength))."""
    if int(steps * strength) < 1:
        raise ValueError(
            f"steps {steps} at strength {strength:g} leave no denoising step "
            "(an inpainting pipeline runs int(steps × strength) of them)"
        )
