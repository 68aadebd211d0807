import re

import pytest

from rip.config import RunConfig, parse_metrics


@pytest.mark.parametrize(
    "mask, iterations_per_step, total",
    [(64, 32, 256), (128, 8, 64), (256, 2, 16)],
)
def test_study_accounting(mask, iterations_per_step, total):
    config = RunConfig(mask=mask).validate()
    assert config.iterations_per_step == iterations_per_step
    assert config.total_iterations == total
    assert config.checkpoints == [0, 50, 100, 150, 200, 250, 300, 350, 400]
    # one iteration inpaints mask²/size² of the pixels
    assert config.percent_after(total) == pytest.approx(400)
    assert config.percent_after(iterations_per_step) == pytest.approx(50)


def test_study_replication_is_33600_inpaintings():
    per_image = sum(RunConfig(mask=mask).total_iterations for mask in (64, 128, 256))
    assert per_image * 100 == 33_600


def test_params_hold_every_field():
    params = RunConfig(metrics=("ssim", "psnr"), steps=3).as_params()
    assert params["metrics"] == "ssim,psnr"
    assert params["steps"] == "3"
    assert params["guidance"] == ""
    assert set(params) >= {"mask", "images", "seed", "percent", "step", "size", "model", "prompt",
                           "paste_back", "batch_size", "device", "experiment", "mask_order", "scheduler"}


@pytest.mark.parametrize(
    "changes, fragment",
    [
        (dict(mask=60), "mask 60 does not divide size 512"),
        (dict(mask=0), "mask must be a positive integer, got 0"),
        (dict(size=-512), "size must be a positive integer, got -512"),
        (dict(step=0), "step must be a positive integer, got 0"),
        (dict(percent=-1), "percent must be a positive integer, got -1"),
        (dict(batch_size=0), "batch_size must be a positive integer, got 0"),
        (dict(mask=256, step=10), "step 10% is not a whole number of iterations with mask 256"),
        (dict(percent=420), "percent 420 is not a multiple of step 50"),
        (dict(metrics=("lpips-vgg", "lpips-resnet")), "unknown metric 'lpips-resnet'"),
        (dict(metrics=()), "at least one metric"),
        (dict(metrics=("ssim", "ssim")), "twice"),
        (dict(model="not a model"), "unknown model 'not a model'"),
        (dict(mask_order="spiral"), "unknown mask_order 'spiral'"),
        (dict(scheduler="fast"), "unknown scheduler 'fast'"),
        (dict(device="tpu"), "unknown device 'tpu'"),
        (dict(steps=0), "steps must be a positive integer, got 0"),
        (dict(strength=1.5), "strength must be in (0, 1], got 1.5"),
        (dict(guidance=-1.0), "guidance must be non-negative, got -1.0"),
        (dict(steps=2, strength=0.3), "steps 2 at strength 0.3 leave no denoising step"),
    ],
)
def test_bad_values_are_named(changes, fragment):
    with pytest.raises(ValueError) as error:
        RunConfig(**changes).validate()
    assert fragment in str(error.value)


def test_models_accepted(tmp_path):
    for model in ("tiny", "telea", "ns", "biharmonic", "stabilityai/stable-diffusion-2-inpainting", str(tmp_path)):
        RunConfig(model=model).validate()


def test_parse_metrics():
    assert parse_metrics(" lpips-vgg, ssim ,") == ("lpips-vgg", "ssim")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(random_numbers="paired"), "unknown random_numbers 'paired'"),
        (dict(resample="cubic"), "unknown resample 'cubic'"),
        (dict(dtype="fp8"), "unknown dtype 'fp8'"),
        (dict(pad_color="blank"), "unknown pad_color 'blank'"),
        (dict(model="telea", safety_checker=True), "safety_checker needs a diffusers model"),
    ],
)
def test_new_conditions_are_validated(changes, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        RunConfig(**changes).validate()


def test_metric_names_accept_mlflow_keys():
    assert parse_metrics("lpips_vgg, lpips-alex,ssim") == ("lpips-vgg", "lpips-alex", "ssim")
