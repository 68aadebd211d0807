"""The demo's page: pick or upload a picture, run the recursion on it, watch it, stop it.

Each start is one `DemoRunner` run (an ordinary configuration run); the page shows its events as
they come. Bad input raises `gr.Error` (a message in the page) before any run is created.
"""

import tempfile
from pathlib import Path

import gradio as gr

from rip.config import RunConfig
from rip.demo.choices import MASKS, SIZES, Choices
from rip.demo.live import DemoRunner, Failed, Finished, LiveRun, Stopped
from rip.demo.uploads import store_upload
from rip.demo.views import caption, distance_frame, distance_rows, outlined
from rip.images import load_letterboxed, resolve_image_set
from rip.protocol.engine import Checkpoint
from rip.runner import Started
from rip.tracking.ui import run_url, ui_command

SOURCES = ("upload", "sample photograph", "WikiArt painting")
RUN_QUEUE = "pipeline"  # every start waits in one queue: one pipeline in memory, one run at a time
INTRO = """# Recursive inpainting
A model fills a random square of the picture, its output is fed back in, again and again, and the
distance to the original is measured every 50 % of the pixels inpainted (the protocol of
*Assessing the Stability of Stable Diffusion in a Recursive Inpainting Scenario*). Each start is one
MLflow run, as `rip run` makes it."""


def build_app(runner: DemoRunner, choices: Choices) -> gr.Blocks:
    """The Gradio app; its `run` and `stop` events are also its API (`gradio_client`)."""
    live_runs: dict[str, LiveRun] = {}  # by browser session, for its Stop button

    with gr.Blocks(title="RIP Lab: recursive inpainting", analytics_enabled=False) as app:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                source = gr.Radio(list(SOURCES if choices.paintings else SOURCES[:2]), value=SOURCES[1], label="Picture",
                                  elem_id="source")
                upload = gr.File(label="Your picture", file_types=["image"], type="filepath", elem_id="upload")
                sample = gr.Dropdown(list(choices.samples), value=choices.samples[0], label="Sample photograph")
                painting = gr.Dropdown(list(choices.paintings), value=(choices.paintings or (None,))[0],
                                       label="WikiArt painting (the study's draw)", visible=bool(choices.paintings))
                # any model id or folder, mask and size may be typed in: the run checks them, as `rip run` does
                model = gr.Dropdown(list(choices.models), value=choices.model, label="Model", allow_custom_value=True,
                                    elem_id="model")
                with gr.Row():
                    mask = gr.Dropdown(list(MASKS), value=choices.mask, label="Mask (px)", allow_custom_value=True,
                                       elem_id="mask")
                    size = gr.Dropdown(list(SIZES), value=choices.size, label="Image side (px)",
                                       allow_custom_value=True, elem_id="size")
                percent = gr.Slider(50, 400, value=choices.percent, step=50, label="Percent of pixels to inpaint",
                                    elem_id="percent")
                seed = gr.Number(choices.seed, precision=0, label="Seed")
                metrics = gr.CheckboxGroup(list(choices.metrics), value=list(choices.default_metrics),
                                           label="Metrics", elem_id="metrics")
                with gr.Row():
                    start = gr.Button("Start", variant="primary", elem_id="start")
                    stop = gr.Button("Stop", variant="stop", elem_id="stop")
            with gr.Column(scale=2):
                status = gr.Markdown("Pick or upload a picture, then start.", label="status", elem_id="status")
                link = gr.Markdown(label="run", elem_id="run-link")
                with gr.Row():
                    current = gr.Image(label="Generation (the square inpainted last outlined)", format="png",
                                       interactive=False, height=400, elem_id="generation")
                    plot = gr.LinePlot(None, x="percent", y="value", color="metric",
                                       x_title="% of pixels inpainted", y_title="distance to the original",
                                       label="Distance versus percent", elem_id="plot")
                filmstrip = gr.Gallery(label="Checkpoints", columns=9, height=200, format="png", elem_id="filmstrip")
                animation = gr.File(label="The recursion as an animated WebP (the image run's animation.webp)",
                                    interactive=False, elem_id="animation")

        def run(source, upload, sample, painting, model, mask, size, percent, seed, metrics,
                request: gr.Request, progress=gr.Progress()):
            config = _checked_config(source, upload, sample, painting, model, mask, size, percent, seed, metrics,
                                     runner)
            live = live_runs[request.session_hash] = runner.start(config)
            rows, strip = [], []
            progress(0, desc=f"loading {config.model}")
            downloads = tempfile.TemporaryDirectory(prefix="rip-demo-")  # until the page has its copy
            try:
                for update in live.updates():
                    if isinstance(update, Started):
                        yield {status: f"Running **{update.run_name}**", link: _run_link(update, runner.tracking_uri),
                               current: None, plot: None, filmstrip: [], animation: None}  # the last run's go
                    elif isinstance(update, Checkpoint):
                        rows += distance_rows(update, config)
                        strip.append((update.image, caption(update, config)))
                        progress(update.percent / config.percent, desc=f"{update.percent} % of {config.percent} %")
                        yield {current: outlined(update, config), plot: distance_frame(rows), filmstrip: list(strip),
                               status: f"Running: {update.percent} % of {config.percent} % inpainted"}
                    elif isinstance(update, Finished):
                        yield {status: f"Finished: run `{update.run_id}`",
                               animation: _saved(update.animation, Path(downloads.name), config)}
                    elif isinstance(update, Stopped):
                        yield {status: f"Stopped: run `{update.run_id}` is marked KILLED; what it logged stays "
                                       f"(continue it with `rip run --resume {update.run_id}`)"}
                    elif isinstance(update, Failed):
                        if update.started:
                            yield {status: f"Failed: {update.message}"}
                        raise gr.Error(update.message, print_exception=False)
            finally:
                downloads.cleanup()
                live.stop()  # the page went away mid-run: it ends KILLED (nothing happens once it ended)
                if live_runs.get(request.session_hash) is live:
                    del live_runs[request.session_hash]

        def stop_run(request: gr.Request):
            if (live := live_runs.get(request.session_hash)) is not None:
                live.stop()

        upload.upload(lambda: SOURCES[0], outputs=source, api_name=False, queue=False)
        sample.input(lambda: SOURCES[1], outputs=source, api_name=False, queue=False)
        painting.input(lambda: SOURCES[2], outputs=source, api_name=False, queue=False)
        start.click(run, [source, upload, sample, painting, model, mask, size, percent, seed, metrics],
                    [status, link, current, plot, filmstrip, animation], api_name="run", concurrency_limit=1,
                    concurrency_id=RUN_QUEUE, show_progress_on=[status])
        stop.click(stop_run, api_name="stop", concurrency_limit=None, queue=False)
    return app


def _checked_config(source, upload, sample, painting, model, mask, size, percent, seed, metrics,
                    runner: DemoRunner) -> RunConfig:
    """The run's configuration, every value and the picture checked; gr.Error naming the first bad one."""
    try:
        images = _image_set(source, upload, sample, painting, runner.uploads)
        config = RunConfig(images=images, model=str(model), mask=_whole("mask", mask), size=_whole("size", size),
                           percent=_whole("percent", percent), seed=_whole("seed", seed),
                           metrics=tuple(metrics or ()), experiment=runner.experiment).validate()
        if config.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {config.seed}")
        load_letterboxed(resolve_image_set(config.images, config.seed), config.size, config.pad_color,
                         config.resample)
    except ValueError as error:
        raise gr.Error(str(error), print_exception=False) from None
    return config


def _image_set(source, upload, sample, painting, uploads) -> str:
    """The run's image set: the uploaded picture (kept in `uploads`), or the sample or painting picked."""
    if source == SOURCES[0]:
        if not upload:
            raise ValueError("upload a picture first (or pick a sample photograph)")
        return store_upload(upload, uploads)
    if source in SOURCES[1:]:
        picked = sample if source == SOURCES[1] else painting
        if not picked:
            raise ValueError(f"pick a {source} first")
        return picked
    raise ValueError(f"unknown picture source {source!r}: expected one of {', '.join(SOURCES)}")


def _saved(animation: bytes | None, folder: Path, config: RunConfig) -> str | None:
    """The animation as a file to download, named after the picture."""
    if animation is None:
        return None
    path = folder / f"{Path(config.images.rpartition('#')[2]).name}-animation.webp"
    path.write_bytes(animation)
    return str(path)


def _whole(name: str, value) -> int:
    """A whole number from a form field; ValueError naming the field otherwise."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number.is_integer():
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    return int(number)


def _run_link(started: Started, tracking_uri: str) -> str:
    """The run's MLflow address as a link, with the command that serves a local store."""
    url = run_url(tracking_uri, started.experiment_id, started.run_id)
    command = ui_command(tracking_uri)
    served = f" (a local store: serve it with `{command}`)" if command else ""
    return f"MLflow run: [{started.run_name}]({url}){served}"
