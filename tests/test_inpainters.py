import hashlib
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from rip.config import RunConfig
from rip.inpainters import load_inpainter
from rip.inpainters.base import ModelUnavailableError, to_arrays, to_batch
from rip.inpainters.diffusion import DiffusionInpainter
from rip.inpainters.tiny import build_tiny_pipeline
from tests.conftest import random_image

SIZE = 64


def square_mask(top: int, left: int, side: int = 16) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    mask[top:top + side, left:left + side] = True
    return mask


@pytest.fixture(scope="module")
def tiny():
    return DiffusionInpainter(build_tiny_pipeline(), name="tiny", num_inference_steps=2)


@pytest.fixture(scope="module")
def batch():
    images = [random_image(SIZE, seed) for seed in range(3)]
    masks = [square_mask(0, 0), square_mask(16, 32), square_mask(48, 48)]
    return images, masks, [11, 12, 13]


def test_tiny_output_shape_and_masked_change(tiny, batch):
    images, masks, seeds = batch
    outputs = tiny.inpaint(images, masks, seeds)
    assert [output.shape for output in outputs] == [(SIZE, SIZE, 3)] * 3
    assert all(output.dtype == np.uint8 for output in outputs)
    for image, mask, output in zip(images, masks, outputs):
        assert np.abs(output[mask].astype(int) - image[mask]).mean() > 10


def test_same_seed_same_output_other_seed_differs(tiny, batch):
    images, masks, _ = batch
    first = tiny.inpaint(images[:1], masks[:1], [5])[0]
    assert np.array_equal(first, tiny.inpaint(images[:1], masks[:1], [5])[0])
    assert not np.array_equal(first, tiny.inpaint(images[:1], masks[:1], [6])[0])


def test_batched_equals_one_at_a_time(tiny, batch):
    images, masks, seeds = batch
    together = tiny.inpaint(images, masks, seeds)
    for index in range(3):
        alone = tiny.inpaint([images[index]], [masks[index]], [seeds[index]])[0]
        difference = np.abs(alone.astype(int) - together[index])
        assert difference.max() <= 1  # float tolerance, seen through uint8 rounding
        assert difference.mean() < 0.01


def test_skipping_guidance_matches_full_guidance(batch):
    images, masks, seeds = batch
    pipeline = build_tiny_pipeline()
    skipped = DiffusionInpainter(pipeline, name="tiny", num_inference_steps=2)
    full = DiffusionInpainter(pipeline, name="tiny", num_inference_steps=2, skip_unconditional_guidance=False)
    assert skipped.guidance_skipped and not full.guidance_skipped
    assert skipped.guidance_scale == full.guidance_scale == 7.5
    for a, b in zip(skipped.inpaint(images, masks, seeds), full.inpaint(images, masks, seeds)):
        assert np.abs(a.astype(int) - b).max() <= 1


def test_guidance_is_kept_with_a_prompt():
    inpainter = DiffusionInpainter(build_tiny_pipeline(), name="tiny", prompt="a painting")
    assert not inpainter.guidance_skipped


def test_paste_back_restores_unmasked_pixels_exactly(batch):
    images, masks, seeds = batch
    pipeline = build_tiny_pipeline()
    plain = DiffusionInpainter(pipeline, name="tiny", num_inference_steps=2).inpaint(images, masks, seeds)
    pasted = DiffusionInpainter(pipeline, name="tiny", num_inference_steps=2, paste_back=True).inpaint(images, masks, seeds)
    for image, mask, a, b in zip(images, masks, plain, pasted):
        assert np.array_equal(b[~mask], image[~mask])
        assert not np.array_equal(a[~mask], image[~mask])  # the VAE re-decodes everything
        assert np.array_equal(a[mask], b[mask])


def test_saved_pipeline_loads_through_from_pretrained(tmp_path, tiny, batch):
    images, masks, seeds = batch
    build_tiny_pipeline().save_pretrained(tmp_path)
    loaded = DiffusionInpainter.from_pretrained(str(tmp_path), device="cpu", num_inference_steps=2)
    params = loaded.params()
    assert params["pipeline_class"] == "StableDiffusionInpaintPipeline"
    assert params["resolved_dtype"] == "torch.float32"
    assert params["resolved_revision"] == f"local:{tmp_path.resolve()}"
    assert params["resolved_variant"] == "none"
    for a, b in zip(loaded.inpaint(images, masks, seeds), tiny.inpaint(images, masks, seeds)):
        assert np.abs(a.astype(int) - b).max() <= 1


def test_the_weight_files_loaded_are_identified_by_their_sha256(tmp_path):
    build_tiny_pipeline().save_pretrained(tmp_path)
    loaded = DiffusionInpainter.from_pretrained(str(tmp_path), device="cpu")
    files = loaded.model_files()
    assert [file["path"] for file in files["files"]] == [
        "text_encoder/model.safetensors", "unet/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.safetensors"]
    for file in files["files"]:
        assert file["sha256"] == hashlib.sha256((tmp_path / file["path"]).read_bytes()).hexdigest()
        assert file["size"] == (tmp_path / file["path"]).stat().st_size
    assert files["variant"] is None and files["revision"] == f"local:{tmp_path.resolve()}"
    tags = loaded.tags()
    assert tags["rip.model_sha256"] == files["digest"] and len(files["digest"]) == 12
    assert tags["rip.model_published_sha256"] == "not compared: no published hashes for this model"


def test_fp16_loads_the_fp16_variant_where_the_model_has_one(tmp_path):
    with_variant, without = tmp_path / "with-fp16", tmp_path / "without"
    pipeline = build_tiny_pipeline()
    pipeline.save_pretrained(without)
    pipeline.save_pretrained(with_variant)
    pipeline.to(dtype=torch.float16).save_pretrained(with_variant, variant="fp16")
    half = DiffusionInpainter.from_pretrained(str(with_variant), device="cpu", dtype="fp16")
    assert half.params()["resolved_variant"] == "fp16"
    assert {file["path"].split("/")[1] for file in half.model_files()["files"]} == {
        "model.fp16.safetensors", "diffusion_pytorch_model.fp16.safetensors"}
    assert half.pipeline.unet.dtype == torch.float16
    plain = DiffusionInpainter.from_pretrained(str(without), device="cpu", dtype="fp16")  # no variant: fp32 files, cast
    assert plain.params()["resolved_variant"] == "none" and plain.pipeline.unet.dtype == torch.float16
    full = DiffusionInpainter.from_pretrained(str(with_variant), device="cpu", dtype="fp32")
    assert full.params()["resolved_variant"] == "none"
    assert full.model_files()["digest"] == plain.model_files()["digest"] != half.model_files()["digest"]


@pytest.mark.parametrize("variant, hashes, verdict", [
    ("", "published", "match: unet, text_encoder, vae"),
    ("", "other", "no match: unet (loaded 000000000000, published 9bcbb17f54b0)"),
    ("fp16", "published", "not compared: the fp16 variant was loaded, the published hashes are of the fp32 files"),
])
def test_the_published_hashes_are_compared_never_enforced(variant, hashes, verdict):
    from rip import artefacts
    from rip.inpainters.hub import ModelFiles, WeightFile

    mirror = artefacts.STUDY_MODEL
    published = dict(mirror.published_sha256, **({"unet": "0" * 64} if hashes == "other" else {}))
    suffix = f".{variant}" if variant else ""
    files = tuple(WeightFile(f"{component}/model{suffix}.safetensors", sha256, 1)
                  for component, sha256 in published.items())
    identity = ModelFiles(mirror.id, mirror.revision, variant, files)
    assert identity.published() == verdict
    assert identity.as_json()["published"] == verdict


def test_scheduler_is_replaced(tmp_path):
    build_tiny_pipeline().save_pretrained(tmp_path)
    config = RunConfig(model=str(tmp_path), scheduler="euler", steps=2)
    inpainter = load_inpainter(config, "cpu")
    assert inpainter.params()["scheduler_class"] == "EulerDiscreteScheduler"
    output = inpainter.inpaint([random_image(SIZE)], [square_mask(0, 0)], [1])[0]
    assert output.shape == (SIZE, SIZE, 3)


@pytest.mark.parametrize(
    "scheduler, steps, strength, fragment",
    [
        ("pndm", 3, None, "steps 3: PNDMScheduler without skip_prk_steps needs at least 4 steps"),
        ("ddim", 3, 0.3, "steps 3 at strength 0.3 leave no denoising step"),
        ("ddim", None, 0.01, "steps 50 at strength 0.01 leave no denoising step"),  # the pipeline's default steps
    ],
)
def test_schedules_a_pipeline_cannot_run_are_refused_when_loading(scheduler, steps, strength, fragment):
    config = RunConfig(model="tiny", size=SIZE, mask=16, scheduler=scheduler, steps=steps, strength=strength)
    with pytest.raises(ValueError) as error:
        load_inpainter(config, "cpu")
    assert fragment in str(error.value)


@pytest.mark.parametrize("scheduler", ["ddim", "pndm", "euler", "euler-ancestral", "dpm-solver", "lms"])
def test_the_fewest_steps_a_scheduler_accepts_run(scheduler):
    steps = 4 if scheduler == "pndm" else 1
    inpainter = load_inpainter(RunConfig(model="tiny", size=SIZE, mask=16, scheduler=scheduler, steps=steps), "cpu")
    image, mask = random_image(SIZE), square_mask(16, 16)
    output = inpainter.inpaint([image], [mask], [1])[0]
    assert output.shape == (SIZE, SIZE, 3) and output.dtype == np.uint8
    assert np.array_equal(output, inpainter.inpaint([image], [mask], [1])[0])


def test_unavailable_model_is_named():
    with pytest.raises(ModelUnavailableError, match="no-such-org/no-such-model"):
        DiffusionInpainter.from_pretrained("no-such-org/no-such-model", device="cpu")


def test_tiny_backend_is_tagged():
    inpainter = load_inpainter(RunConfig(model="tiny"), "cpu")
    assert "rip.meaningless_images" in inpainter.tags()


@pytest.mark.parametrize("model", ["telea", "ns", "biharmonic"])
def test_classical_backends_only_touch_the_mask(model):
    inpainter = load_inpainter(RunConfig(model=model), "cpu")
    image = random_image(SIZE, 4)
    mask = square_mask(16, 16)
    output = inpainter.inpaint([image], [mask], [0])[0]
    assert np.array_equal(output[~mask], image[~mask])
    assert not np.array_equal(output[mask], image[mask])
    flat = np.full((SIZE, SIZE, 3), (40, 120, 200), dtype=np.uint8)
    filled = inpainter.inpaint([flat], [mask], [0])[0]
    assert np.abs(filled.astype(int) - flat).max() <= 4


def test_paste_back_on_the_device_equals_pipeline_overlay():
    """`where(mask, output, image)` gives exactly what diffusers' `apply_overlay` gave on PIL images."""
    overlay = build_tiny_pipeline().image_processor.apply_overlay
    rng = np.random.default_rng(0)
    for seed in range(4):
        image, output = random_image(SIZE, seed), random_image(SIZE, seed + 10)
        mask = rng.random((SIZE, SIZE)) < 0.3 if seed % 2 else square_mask(8 * seed, 16)
        expected = np.asarray(overlay(Image.fromarray(mask.astype(np.uint8) * 255), Image.fromarray(image),
                                      Image.fromarray(output)))
        pasted = torch.where(torch.from_numpy(mask)[None], to_batch([output], "cpu")[0], to_batch([image], "cpu")[0])
        assert np.array_equal(to_arrays(pasted[None])[0], expected)


def test_static_batches_pad_the_tail_and_keep_results(tiny, batch):
    images, masks, seeds = batch
    images, masks, seeds = images + images[:2], masks + masks[::-1][:2], seeds + [21, 22]
    padded = DiffusionInpainter(tiny.pipeline, name="tiny", num_inference_steps=2, static_batch=3)
    calls = []
    hook = padded.pipeline.unet.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    try:
        outputs = padded.inpaint(images, masks, seeds)
    finally:
        hook.remove()
    assert calls == [3, 3, 3, 3]  # 5 images: one full call and one padded call, 2 steps each
    for output, reference in zip(outputs, tiny.inpaint(images, masks, seeds)):
        assert np.abs(output.astype(int) - reference).max() <= 1


@pytest.mark.parametrize("speedup", ["channels_last", "fuse_qkv"])
def test_speedups_keep_outputs(speedup, tiny, batch):
    images, masks, seeds = batch
    inpainter = load_inpainter(RunConfig(model="tiny", steps=2, **{speedup: True}), "cpu")
    for output, reference in zip(inpainter.inpaint(images, masks, seeds), tiny.inpaint(images, masks, seeds)):
        assert np.abs(output.astype(int) - reference).max() <= 1


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on a CPU needs a C++ compiler")
def test_compile_keeps_outputs_with_a_padded_tail(tiny, batch):
    images, masks, seeds = batch  # 3 images at a static batch of 2: one full call, one padded
    compiled = load_inpainter(RunConfig(model="tiny", steps=2, compile=True, batch_size=2), "cpu")
    assert compiled.static_batch == 2
    for output, reference in zip(compiled.inpaint(images, masks, seeds), tiny.inpaint(images, masks, seeds)):
        assert np.abs(output.astype(int) - reference).max() <= 1


def test_speedups_are_free_to_change():
    from rip.config import FREE_FIELDS

    plain = RunConfig(model="tiny")
    fast = RunConfig(model="tiny", compile=True, channels_last=True, fuse_qkv=True)
    assert fast.draw_key == plain.draw_key
    assert {"compile", "channels_last", "fuse_qkv"} <= set(FREE_FIELDS)
    with pytest.raises(ValueError, match="compile speeds up diffusion models"):
        RunConfig(model="telea", compile=True).validate()
