"""Throughput of the recursive-inpainting engine against a naive loop, on the tiny pipeline.

    python benchmarks/bench_engine.py                  # 512 px, CPU: about 3 minutes on 2 cores
    python benchmarks/bench_engine.py --steps 20       # more UNet work per inpainting: about 4 minutes

Everything runs `rip.inpainters.tiny.build_tiny_pipeline` (random weights, meaningless images,
the real diffusers code path: scale-8 VAE, 9-channel UNet, CLIP text encoder) and prints:

1. naive: one pipeline call per image per iteration with the pipeline's own guidance (7.5 with
   an empty prompt, so classifier-free guidance runs the UNet at batch 2), PIL images in and out;
2. engine: `RecursiveInpainting` + `DiffusionInpainter`, guidance skipped, once with one image
   per call and once with `--batch-size` images per call, to separate the two gains.
   Every variant inpaints the same images with the same masks, seeds, iterations and steps, and
   measures the same metrics at the same checkpoints (the naive loop one image at a time);
3. a full `run_experiment` into a temporary MLflow store (and spool), split into time inside the
   inpainter, inside the metrics, and everything else (MLflow logging, PNG encoding, setup).

Warm-up calls are excluded from every timing; torch keeps its default thread count. Variants
alternate and the fastest of `--repeats` rounds counts, so that other work on the machine skews
them alike; the load average is printed with the figures.
"""

import argparse
import dataclasses
import os
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from mlflow import MlflowClient
from PIL import Image

from rip.config import RunConfig
from rip.images import load_images, resolve_image_set
from rip.inpainters.base import Inpainter
from rip.inpainters.diffusion import DiffusionInpainter
from rip.inpainters.hub import ModelFiles
from rip.inpainters.tiny import build_tiny_pipeline
from rip.metrics import Metric, load_metrics
from rip.protocol.engine import Checkpoint, ImageTask, RecursiveInpainting, to_tensor
from rip.protocol.masks import square_for
from rip.protocol.seeding import derive_seed
from rip.runner import run_experiment
from rip.tracking.tags import TINY_TAG


class Timed:
    """Accumulates the wall time spent in calls."""

    def __init__(self):
        self.seconds = 0.0
        self.calls = 0

    def measure(self, function, *args):
        start = time.perf_counter()
        try:
            return function(*args)
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1


class TimedInpainter(Inpainter, Timed):
    """An inpainter that records the time spent in `inpaint`."""

    def __init__(self, inner: Inpainter):
        Timed.__init__(self)
        self.inner = inner
        self.name = inner.name

    def inpaint(self, images, masks, seeds):
        return self.measure(self.inner.inpaint, images, masks, seeds)

    def params(self):
        return self.inner.params()

    def tags(self):
        return self.inner.tags()


class TimedMetric(Metric, Timed):
    """A metric that records the time spent computing it."""

    def __init__(self, inner: Metric):
        Timed.__init__(self)
        self.inner = inner
        self.name = inner.name
        self.higher_is_better = inner.higher_is_better

    def __call__(self, originals, images):
        return self.measure(self.inner, originals, images)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=512, help="image side in pixels")
    parser.add_argument("--images", type=int, default=4, help="sample images in the loops")
    parser.add_argument("--iterations", type=int, default=2, help="inpaintings per image in the loops (even)")
    parser.add_argument("--steps", type=int, default=4, help="num_inference_steps")
    parser.add_argument("--batch-size", type=int, default=4, help="images per engine call")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--metrics", default="ssim,stlpips-alex", help="measured at every checkpoint")
    parser.add_argument("--run-images", type=int, default=2, help="sample images in the full run")
    parser.add_argument("--run-iterations", type=int, default=4, help="inpaintings per image in the full run (even)")
    parser.add_argument("--repeats", type=int, default=2, help="timed rounds; the fastest counts")
    return parser.parse_args()


def make_config(args: argparse.Namespace, iterations: int, **overrides) -> RunConfig:
    """A 2×2 grid (one iteration = 25 %) with a checkpoint every 2 iterations, 0 % included."""
    if iterations <= 0 or iterations % 2:
        raise ValueError(f"iterations must be a positive even number (a checkpoint every 2), got {iterations}")
    fields = dict(
        model="tiny", size=args.size, mask=args.size // 2, step=50, percent=25 * iterations,
        steps=args.steps, batch_size=args.batch_size, device=args.device,
        metrics=tuple(name.strip() for name in args.metrics.split(",") if name.strip()),
    )
    return RunConfig(**{**fields, **overrides}).validate()


def tiny_inpainter(pipeline, steps: int) -> DiffusionInpainter:
    return DiffusionInpainter(pipeline, name="tiny", num_inference_steps=steps, files=ModelFiles("tiny", "tiny-seed0"),
                              tags={TINY_TAG: "true"})


def pil_mask(config: RunConfig, image_id: str, iteration: int) -> Image.Image:
    return Image.fromarray(square_for(config, image_id, iteration).to_array(config.size).astype(np.uint8) * 255)


def measure_pair(metrics: Sequence[Metric], original: np.ndarray, generation: np.ndarray) -> None:
    originals, generations = to_tensor([original]), to_tensor([generation])
    for metric in metrics:
        metric(originals, generations)


def naive_loop(pipeline, config: RunConfig, ids, originals, metrics) -> list[np.ndarray]:
    """One pipeline call per image per iteration, the pipeline's guidance, PIL in and out."""
    finals = []
    for image_id, original in zip(ids, originals):
        current = Image.fromarray(original)
        measure_pair(metrics, original, original)
        for iteration in range(config.total_iterations):
            seed = derive_seed(config.seed, image_id, iteration, "noise", config.draw_key)  # the engine's draw
            generator = torch.Generator("cpu").manual_seed(seed)
            current = pipeline(
                prompt="", image=current, mask_image=pil_mask(config, image_id, iteration),
                height=config.size, width=config.size, num_inference_steps=config.steps, generator=generator,
            ).images[0]
            if (iteration + 1) % config.iterations_per_step == 0:
                measure_pair(metrics, original, np.asarray(current))
        finals.append(np.asarray(current))
    return finals


def engine_loop(inpainter, config: RunConfig, ids, originals, metrics) -> list[np.ndarray]:
    """The engine over every image; returns the last generation of each."""
    engine = RecursiveInpainting(config, inpainter, metrics, progress=False)
    finals = {}
    for event in engine.run([ImageTask(image_id, original) for image_id, original in zip(ids, originals)]):
        if isinstance(event, Checkpoint):
            finals[event.image_id] = event.image
    return [finals[image_id] for image_id in ids]


def timed_loop(loop, model, config, ids, originals, metrics) -> dict:
    """Wall and CPU seconds of one loop over every image, and the wall seconds inside metrics."""
    timed_metrics = [TimedMetric(metric) for metric in metrics]
    wall, cpu = time.perf_counter(), time.process_time()
    finals = loop(model, config, ids, originals, timed_metrics)
    return dict(
        wall=time.perf_counter() - wall, cpu=time.process_time() - cpu,
        metrics=sum(metric.seconds for metric in timed_metrics), finals=finals,
    )


def full_run(args, pipeline, metrics, folder: Path) -> dict:
    """Time real run_experiment calls; split the fastest into inpainter, metrics and the rest."""
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    name = "bench-engine"
    client.create_experiment(name, artifact_location=(folder / "artifacts").as_uri())
    spool = folder / "spool"
    inpainter = TimedInpainter(tiny_inpainter(pipeline, args.steps))
    timed_metrics = [TimedMetric(metric) for metric in metrics]

    def run(config: RunConfig) -> None:
        run_experiment(config, client.tracking_uri, inpainter=inpainter, metrics=timed_metrics,
                       spool_root=spool, progress=False)

    # 1. Warm-up: a small run through every code path
    run(make_config(args, 2, size=64, mask=32, images="sample:1", experiment=name))
    # 2. The measured runs
    config = make_config(args, args.run_iterations, images=f"sample:{args.run_images}", experiment=name)
    best = None
    for _ in range(args.repeats):
        for timed in (inpainter, *timed_metrics):
            timed.seconds, timed.calls = 0.0, 0
        start = time.perf_counter()
        run(config)
        total = time.perf_counter() - start
        metric_seconds = sum(metric.seconds for metric in timed_metrics)
        result = dict(
            total=total, inpainter=inpainter.seconds, calls=inpainter.calls, metrics=metric_seconds,
            rest=total - inpainter.seconds - metric_seconds, checkpoints=len(config.checkpoints),
            iterations=config.total_iterations,
        )
        if best is None or result["total"] < best["total"]:
            best = result
    return best


def main() -> None:
    args = parse_args()
    config = make_config(args, args.iterations)
    sources = resolve_image_set("sample", config.seed)[: args.images]
    ids = [source.id for source in sources]
    originals = load_images(sources, config.size)
    count = len(ids) * config.total_iterations
    pipeline = build_tiny_pipeline().to(args.device)
    pipeline.set_progress_bar_config(disable=True)
    inpainter = tiny_inpainter(pipeline, args.steps)
    metrics = load_metrics(config.metrics, args.device)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {args.device}, load average {os.getloadavg()[0]:.1f}")
    print(f"tiny pipeline, {config.size} px, {len(ids)} images x {config.total_iterations} iterations "
          f"= {count} inpaintings, {config.steps} steps, metrics {','.join(config.metrics)} at "
          f"{len(config.checkpoints)} checkpoints; pipeline default guidance {inpainter.guidance_scale}, "
          f"engine skips it: {inpainter.guidance_skipped}; best of {args.repeats}")

    # 1. Warm-up (untimed): every call shape, every metric
    mask = pil_mask(config, ids[0], 0)
    pipeline(prompt="", image=Image.fromarray(originals[0]), mask_image=mask,
             height=config.size, width=config.size, num_inference_steps=config.steps)
    for size in sorted({1, min(config.batch_size, len(ids))}):
        inpainter.inpaint(originals[:size], [np.asarray(mask) > 0] * size, list(range(size)))
    measure_pair(metrics, originals[0], originals[0])

    # 2. Naive loop and engine, alternating
    variants = {
        "naive": (naive_loop, pipeline, config),
        "engine, batch 1": (engine_loop, inpainter, dataclasses.replace(config, batch_size=1)),
    }
    if config.batch_size > 1:
        variants[f"engine, batch {config.batch_size}"] = (engine_loop, inpainter, config)
    best = {}
    for repeat in range(args.repeats):
        for label in (list(variants) if repeat % 2 == 0 else list(reversed(variants))):
            loop, model, variant_config = variants[label]
            result = timed_loop(loop, model, variant_config, ids, originals, metrics)
            if label not in best or result["wall"] < best[label]["wall"]:
                best[label] = result
    best = {label: best[label] for label in variants}
    for label, result in best.items():
        inpainting = result["wall"] - result["metrics"]
        print(f"{label:16s} {count / result['wall']:6.3f} inpaintings/s  ({result['wall']:5.1f} s wall, "
              f"{result['cpu']:5.1f} s CPU; metrics {result['metrics']:4.1f} s; "
              f"without metrics {count / inpainting:6.3f} inpaintings/s)")
    naive, engine = best["naive"], best[list(variants)[-1]]
    difference = max(int(np.abs(a.astype(int) - b).max())
                     for result in best.values() for a, b in zip(naive["finals"], result["finals"]))
    print(f"speedup engine / naive: {naive['wall'] / engine['wall']:.2f}x "
          f"(without metrics {(naive['wall'] - naive['metrics']) / (engine['wall'] - engine['metrics']):.2f}x); "
          f"last generations differ by at most {difference}/255")

    # 3. A full run into a temporary MLflow store
    with tempfile.TemporaryDirectory() as folder:
        run = full_run(args, pipeline, metrics, Path(folder))
    print(f"full run_experiment ({args.run_images} images x {run['iterations']} iterations, "
          f"{run['checkpoints']} checkpoints, {run['calls']} inpainter calls, batch {config.batch_size}, "
          f"local sqlite store): {run['total']:.1f} s")
    labels = {"inpainter": "inside the inpainter", "metrics": "metrics", "rest": "logging, PNGs, setup"}
    for part, label in labels.items():
        print(f"  {label:22s} {run[part]:5.1f} s  {100 * run[part] / run['total']:5.1f} %")
    outside = run["total"] - run["inpainter"]
    print(f"  outside the inpainter  {outside:5.1f} s  {100 * outside / run['total']:5.1f} %")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
