"""Checks that need CUDA (`pytest -m gpu`); skipped on machines without it."""

import numpy as np
import pytest
import torch

from rip.config import RunConfig
from rip.inpainters import load_inpainter
from rip.inpainters.base import InpaintingFailure
from rip.protocol.engine import Checkpoint, ImageTask, RecursiveInpainting
from tests.conftest import random_image
from tests.test_device_loop import CONFIG, IMAGES, ITERATIONS, reference_loop

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def engine_generations(config, inpainter, originals):
    engine = RecursiveInpainting(config, inpainter, [], progress=False)
    tasks = [ImageTask(image_id, original) for image_id, original in zip(IMAGES, originals)]
    return {(e.image_id, e.iteration): e.image for e in engine.run(tasks) if isinstance(e, Checkpoint)}


def test_device_loop_on_cuda_equals_the_reference_every_iteration():
    config = RunConfig(**{**CONFIG.__dict__, "device": "cuda", "dtype": "fp32"})
    inpainter = load_inpainter(config, "cuda")
    originals = [random_image(64, seed) for seed in range(len(IMAGES))]
    expected = reference_loop(config, inpainter.pipeline, originals, guidance=1.0)
    found = engine_generations(config, inpainter, originals)
    differences = [
        max(int(np.abs(found[image_id, i + 1].astype(int) - expected[i][k]).max()) for k, image_id in enumerate(IMAGES))
        for i in range(ITERATIONS)
    ]
    print("max uint8 difference per iteration on CUDA:", differences)
    assert max(differences) <= 1


@pytest.mark.parametrize("dtype", ["auto", "bf16"])
def test_half_precision_on_cuda_gives_finite_images(dtype):
    config = RunConfig(**{**CONFIG.__dict__, "device": "cuda", "dtype": dtype, "percent": 100})
    inpainter = load_inpainter(config, "cuda")
    assert inpainter.params()["resolved_dtype"] == ("torch.float16" if dtype == "auto" else "torch.bfloat16")
    outputs = inpainter.inpaint([random_image(64, 0)], [np.ones((64, 64), dtype=bool)], [1])
    assert not isinstance(outputs[0], InpaintingFailure) and outputs[0].shape == (64, 64, 3)


def test_compiled_pipeline_on_cuda_keeps_outputs_with_a_padded_tail():
    config = RunConfig(**{**CONFIG.__dict__, "device": "cuda", "dtype": "fp32", "batch_size": 2})
    eager = load_inpainter(config, "cuda")
    compiled = load_inpainter(RunConfig(**{**config.__dict__, "compile": True}), "cuda")
    originals = [random_image(64, seed) for seed in range(3)]  # a full batch of 2, then 1 padded to 2
    masks = [np.zeros((64, 64), dtype=bool) for _ in originals]
    for mask, corner in zip(masks, (0, 16, 32)):
        mask[corner:corner + 16, corner:corner + 16] = True
    for output, reference in zip(compiled.inpaint(originals, masks, [1, 2, 3]), eager.inpaint(originals, masks, [1, 2, 3])):
        assert np.abs(output.astype(int) - reference).max() <= 1


def test_a_cuda_run_logs_gpu_series_and_peak_memory(image_folder, tmp_path):
    from mlflow import MlflowClient

    from rip.runner import run_experiment
    from rip.tracking.tags import BATCH_SIZE_USED, INPAINTINGS_PER_S, PEAK_GPU_MEMORY

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = RunConfig(**{**CONFIG.__dict__, "device": "cuda", "percent": 200, "images": str(image_folder),
                          "experiment": "gpu-telemetry"})
    run_id = run_experiment(config, store, spool_root=tmp_path / "spool", progress=False)
    client = MlflowClient(store)
    metrics = client.get_run(run_id).data.metrics
    gpu = {key: value for key, value in metrics.items() if key.startswith("system/gpu_")}
    print("GPU series:", gpu)
    index = next(key.split("_")[1] for key in gpu)  # NVML's index of the (first) visible GPU
    assert 0 < gpu[f"system/gpu_{index}_memory_usage_megabytes"]
    assert 0 <= gpu.get(f"system/gpu_{index}_utilization_percentage", 0) <= 100
    assert len(client.get_metric_history(run_id, f"system/gpu_{index}_memory_usage_megabytes")) >= 2
    assert metrics[PEAK_GPU_MEMORY] > 0 and metrics[INPAINTINGS_PER_S] > 0 and metrics[BATCH_SIZE_USED] == 2
