"""The engine's on-device loop against today's path: PIL in, numpy out, one pipeline call per iteration."""

import numpy as np
import pytest
import torch
from PIL import Image

from rip.config import RunConfig
from rip.inpainters.diffusion import DiffusionInpainter
from rip.inpainters.tiny import build_tiny_pipeline
from rip.metrics.pixel_metrics import Psnr, Ssim
from rip.protocol.engine import Checkpoint, ImageTask, RecursiveInpainting
from rip.protocol.masks import square_for
from rip.protocol.seeding import derive_seed
from tests.conftest import random_image

# 4 squares of 32 px in a 64 px image: one iteration is 25 %, a checkpoint after every iteration
CONFIG = RunConfig(model="tiny", size=64, mask=32, step=25, percent=800, steps=2, metrics=("psnr",), batch_size=2)
ITERATIONS = 32
IMAGES = ["a", "b"]


def reference_inpaint(pipeline, images, masks, seeds, *, steps, guidance, paste_back):
    """`DiffusionInpainter.inpaint` as it was before the loop moved to the device, kept as the reference."""
    height, width = images[0].shape[:2]
    pil_images = [Image.fromarray(image) for image in images]
    pil_masks = [Image.fromarray(mask.astype(np.uint8) * 255) for mask in masks]
    generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
    output = pipeline(
        prompt=[""] * len(images), image=pil_images, mask_image=pil_masks, height=height, width=width,
        num_inference_steps=steps, guidance_scale=guidance, generator=generators, output_type="np",
    )
    overlay = pipeline.image_processor.apply_overlay
    results = []
    for array, mask, image in zip(output.images, pil_masks, pil_images):
        result = np.clip(np.rint(array * 255), 0, 255).astype(np.uint8)
        results.append(np.asarray(overlay(mask, image, Image.fromarray(result))) if paste_back else result)
    return results


def reference_loop(config, pipeline, originals, guidance):
    """The naive loop: every image's generation after each iteration, all images in one call."""
    current, history = list(originals), []
    for iteration in range(ITERATIONS):
        masks = [square_for(config, image_id, iteration).to_array(config.size) for image_id in IMAGES]
        seeds = [derive_seed(config.seed, image_id, iteration, "noise", config.draw_key) for image_id in IMAGES]
        current = reference_inpaint(pipeline, current, masks, seeds, steps=config.steps, guidance=guidance,
                                    paste_back=config.paste_back)
        history.append(current)
    return history


@pytest.mark.parametrize("changes", [{}, {"paste_back": True, "skip_guidance": False}], ids=["study", "paste-guided"])
def test_device_loop_equals_the_reference_every_iteration(changes):
    config = RunConfig(**{**CONFIG.__dict__, **changes})
    pipeline = build_tiny_pipeline()
    inpainter = DiffusionInpainter(pipeline, name="tiny", num_inference_steps=config.steps, paste_back=config.paste_back,
                                   skip_unconditional_guidance=config.skip_guidance)
    guidance = 1.0 if inpainter.guidance_skipped else inpainter.guidance_scale
    originals = [random_image(64, seed) for seed in range(len(IMAGES))]
    expected = reference_loop(config, pipeline, originals, guidance)
    engine = RecursiveInpainting(config, inpainter, [], progress=False)
    found = {
        (event.image_id, event.iteration): event.image
        for event in engine.run([ImageTask(image_id, original) for image_id, original in zip(IMAGES, originals)])
        if isinstance(event, Checkpoint)
    }
    differences = [
        max(int(np.abs(found[image_id, iteration + 1].astype(int) - expected[iteration][index]).max())
            for index, image_id in enumerate(IMAGES))
        for iteration in range(ITERATIONS)
    ]
    print("max uint8 difference per iteration:", differences)
    assert max(differences) <= 1


def test_shared_diffusion_engine_equals_each_configuration_alone():
    configurations = {
        "a": RunConfig(model="tiny", size=64, mask=32, step=25, percent=50, steps=2, metrics=("psnr",)),
        "b": RunConfig(model="tiny", size=64, mask=16, step=25, percent=25, steps=2, metrics=("ssim",), seed=1),
    }
    inpainter = DiffusionInpainter(build_tiny_pipeline(), name="tiny", num_inference_steps=2)
    originals = [random_image(64, seed) for seed in range(2)]
    metrics = {"psnr": Psnr(), "ssim": Ssim()}

    def tasks(key=None):
        return [ImageTask(f"img{i}", original, key=key) for i, original in enumerate(originals)]

    shared = RecursiveInpainting.shared(
        {key: (config, [metrics[config.metrics[0]]]) for key, config in configurations.items()}, inpainter,
        batch_size=3, progress=False,
    )
    together = [event for event in shared.run(tasks("a") + tasks("b")) if isinstance(event, Checkpoint)]
    for key, config in configurations.items():
        engine = RecursiveInpainting(config, inpainter, [metrics[config.metrics[0]]], progress=False)
        alone = {(e.image_id, e.percent): e.image for e in engine.run(tasks()) if isinstance(e, Checkpoint)}
        mine = {(e.image_id, e.percent): e.image for e in together if e.key == key}
        assert mine.keys() == alone.keys()
        assert max(int(np.abs(mine[name].astype(int) - alone[name]).max()) for name in alone) <= 1
