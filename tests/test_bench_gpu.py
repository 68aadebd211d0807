"""benchmarks/bench_gpu.py on a CPU: a reduced SD2-inpainting architecture at 64 px, 2 steps (not timed)."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from diffusers import UNet2DConditionModel
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parent.parent
ITERATIONS = 2
SCALE = 20
SIZE = 64


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", REPO / "benchmarks" / "bench_gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def report(bench, tmp_path_factory):
    """The GPU check's CPU dry run, fp32 only: the naive loop and the engine at batch 2 and 1 (capped to one
    iteration at 2), guidance skipped and full, compile skipped with a reason; one CPU thread."""
    output = tmp_path_factory.mktemp("bench-gpu")
    threads = torch.get_num_threads()
    try:
        bench.main(["--cpu-dry-run", "--dtypes", "fp32", "--iterations", str(ITERATIONS), "--max-inpaintings", "2",
                    "--output", str(output)])
    finally:
        torch.set_num_threads(threads)
    return json.loads((output / "bench_gpu.json").read_text()) | {"markdown": (output / "bench_gpu.md").read_text()}


VARIANTS = ["naive, fp32", "engine, fp32, batch 2", "engine, fp32, batch 1", "engine, fp32, batch 2, full guidance",
            "engine, fp32, batch 1, full guidance"]


def test_every_variant_is_reported_most_telling_first_and_compile_is_skipped_with_a_reason(report):
    assert [result["variant"] for result in report["variants"]] == VARIANTS
    compiled = [name for name in report["skipped"] if name.endswith("compile")]
    assert len(compiled) == 4 and all(report["skipped"][name] == "compile is measured on CUDA only" for name in compiled)
    for name in (*VARIANTS, *compiled):
        assert f"| {name} |" in report["markdown"]


def test_inpaintings_unet_calls_and_time_split(report):
    naive, batch2, batch1, full2, full1 = report["variants"]
    assert [r["inpaintings"] for r in report["variants"]] == [ITERATIONS, 2, ITERATIONS, 2, ITERATIONS]  # batch 2: one iteration
    # PNDM at 2 steps calls the UNet 3 times; guidance doubles the samples
    assert naive["unet_calls"] == batch1["unet_calls"] == full1["unet_calls"] == 3 * ITERATIONS
    assert naive["samples"]["unet"] == 2 * batch1["samples"]["unet"] == full1["samples"]["unet"] == 6 * ITERATIONS
    assert batch2["unet_calls"] == full2["unet_calls"] == 3 and batch2["samples"]["unet"] == 6
    assert full2["samples"]["unet"] == 12
    for result in report["variants"]:
        assert result["samples"]["vae_decode"] == result["inpaintings"]
        assert sum(result["split_seconds"].values()) == pytest.approx(result["seconds"])
        assert min(result["split_seconds"][part] for part in ("unet", "vae_decode", "metrics", "logging")) > 0
        assert result["seconds_per_inpainting"] == pytest.approx(1 / result["inpaintings_per_s"])
        assert result["speedup_vs_naive"] == pytest.approx(result["inpaintings_per_s"] / naive["inpaintings_per_s"])


def test_flops_agree_with_an_independent_count(bench, report):
    flops = report["flops_per_sample"]
    assert min(flops.values()) > 0
    unet = UNet2DConditionModel.from_config(bench.scaled_configs(SCALE)["unet"])
    latent = SIZE // 8
    context = torch.zeros(1, 77, unet.config.cross_attention_dim)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        unet(torch.randn(1, 9, latent, latent), torch.tensor([1]), encoder_hidden_states=context)
    assert flops["unet"] == counter.get_total_flops()
    for result in report["variants"]:
        counted = sum(result["samples"][module] * flops[module] for module in bench.MODULES)
        assert result["tflop"] * 1e12 == pytest.approx(counted)
        assert result["tflops"] == pytest.approx(result["tflop"] / result["seconds"])
        assert result["mfu"] == pytest.approx(result["tflops"] / report["settings"]["peak_tflops"])


def test_uint8_differences_per_iteration_and_projected_hours(report):
    for result, iterations in zip(report["variants"], (ITERATIONS, 1, ITERATIONS, 1, ITERATIONS)):
        differences = result["max_difference_per_iteration"]
        assert len(differences) == iterations and all(isinstance(value, int) and value >= 0 for value in differences)
        assert result["max_difference"] == max(differences)
        for study, inpaintings in report["studies"].items():
            assert result["projected_hours"][study] == pytest.approx(inpaintings / result["inpaintings_per_s"] / 3600)
    assert report["variants"][0]["max_difference_per_iteration"] == [0] * ITERATIONS
    assert max(result["max_difference"] for result in report["variants"]) <= 1  # the same squares and noise
    assert report["studies"] == {"replication": 33_600, "variability": 33_600}


def test_full_scale_architecture_is_sd2_inpainting(bench):
    """Scale 1 is the published model: 866M UNet parameters; a scale keeps blocks, layers and vocabulary."""
    full, reduced = bench.scaled_configs(1), bench.scaled_configs(SCALE)
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(full["unet"])
    assert sum(p.numel() for p in unet.parameters()) == pytest.approx(865.9e6, rel=1e-3)
    for name in ("down_block_types", "up_block_types", "layers_per_block", "in_channels"):
        assert reduced["unet"][name] == full["unet"][name]
    assert reduced["text_encoder"]["num_hidden_layers"] == 23
    for width, heads in zip(reduced["unet"]["block_out_channels"], reduced["unet"]["attention_head_dim"]):
        assert width % 32 == 0 and width % heads == 0
    assert full["unet"]["attention_head_dim"] == [5, 10, 20, 20]


def test_byte_tokenizer_has_clip_vocabulary_and_special_tokens(bench):
    tokenizer = bench.byte_tokenizer(49408)
    assert len(tokenizer) == 49408
    ids = tokenizer("", padding="max_length", max_length=77).input_ids
    assert len(ids) == 77 and ids[:2] == [49406, 49407]


def test_the_plan_puts_the_reference_and_the_studys_setting_first(bench):
    specs = bench.plan(["fp16", "bf16"], [1, 4, 8, 16, 32], ["skipped", "full"], [16, 32])
    names = [spec.name for spec in specs]
    assert names[:8] == ["naive, fp16", "engine, fp16, batch 4", "engine, fp16, batch 32", "engine, fp16, batch 16",
                         "engine, fp16, batch 8", "engine, fp16, batch 1", "naive, bf16", "engine, bf16, batch 4"]
    assert names[8:13] == ["engine, bf16, batch 32", "engine, fp16, batch 4, full guidance",
                           "engine, fp16, batch 32, full guidance", "engine, fp16, batch 32, compile",
                           "engine, fp16, batch 16, compile"]
    assert len(names) == len(set(names)) == 2 + 2 * 2 * 5 + 2 * 2 * 2  # every combination asked for, once


def test_the_budget_skips_what_would_not_fit_from_what_was_measured(bench):
    Spec = bench.Spec
    budget = bench.Budget(100)
    assert budget.why_not(Spec("naive", "fp16"), 1, 8, 1) == ""  # nothing measured yet: no guess
    budget.measured[Spec("engine", "fp16", 4)] = 1.0
    assert budget.per_inpainting(Spec("engine", "fp16", 16)) == 1.0  # the nearest batch below
    assert budget.per_inpainting(Spec("engine", "bf16", 4, "full")) == 2.0  # guidance doubles the UNet's work
    assert budget.guess(Spec("engine", "fp16", 16), 16, 2, 1) == 16 * 3
    assert budget.why_not(Spec("engine", "fp16", 32), 32, 4, 1).startswith("time budget: needs about 160 s")
    assert budget.guess(Spec("engine", "fp16", 4, compiled=True), 4, 8, 1) == 36 + bench.Budget.COMPILE_GUESS
