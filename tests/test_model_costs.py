"""The cost table's counts (benchmarks/model_costs.py) on the meta device agree with the GPU benchmark's
counts on the SD 2 architecture built from its configuration files (benchmarks/bench_gpu.py)."""

import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from bench_gpu import build_random_sd2, module_flops, parameter_counts  # noqa: E402
from model_costs import measure, preset_inpaintings  # noqa: E402

pytestmark = pytest.mark.slow


def test_sd2_costs_on_the_meta_device_equal_the_gpu_benchmarks_counts():
    cost = measure("sd2", 512)
    pipeline = build_random_sd2(device="meta")
    parts = module_flops(pipeline, 512)
    assert cost.parameters == sum(parameter_counts(pipeline).values())
    assert cost.denoiser_calls.startswith("51 × 1")  # PNDM: 50 steps, 51 UNet calls; guidance skipped
    assert cost.rip_tflop * 1e12 == pytest.approx(51 * parts["unet"] + parts["vae_encode"] + parts["vae_decode"])
    assert cost.pipeline_tflop * 1e12 == pytest.approx(
        2 * 51 * parts["unet"] + parts["vae_encode"] + parts["vae_decode"] + 2 * parts["text_encoder"])


def test_the_models_preset_inpaints_33600_times_per_model():
    counts = preset_inpaintings()
    assert len(counts) == 7 and set(counts.values()) == {100 * (64 + 16 + 4) * 4}
