"""Make the README's pictures from the offline demo, in a fresh SQLite store in a temporary folder.

    .venv/bin/python scripts/readme_images.py     # regenerates docs/images/*.png in about 2 minutes

- stlpips-vs-percent.png: the study's main figure (`figures/mean_std.png`) of
  `rip analyze --experiment demo --metrics stlpips-alex --filmstrips 0 --no-log --dpi 150` over
  `rip run --images sample:4 --model telea --size 256 --mask M --metrics stlpips-alex,ssim
  --experiment demo` for M = 32, 64, 128 (ST-LPIPS: LPIPS proper needs downloaded weights);
- ui-image-slider.png, ui-configuration-grid.png: the MLflow UI (`mlflow server` on loopback,
  headless Chromium driven by Playwright): the enlarged `generation` chart of the mask-64
  configuration's first image run (by image id) and its `generation_grid`, slider at 400 %, the
  grid clicked open at its own size;
- ui-runs.png: the experiment's runs view, the mask-64 configuration run unfolded.

Needs Playwright and Chromium (tests/conftest.py's CHROMIUM).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO))

from rip.tracking.ui import run_url, runs_url
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, free_port
from tests.mlflow_ui import enlarge, hide_run_parameters, image_card, is_logged_image, wait_shown

EXPERIMENT = "demo"
DEMO = ["--images", "sample:4", "--model", "telea", "--size", "256", "--metrics", "stlpips-alex,ssim",
        "--experiment", EXPERIMENT]
MASKS = (32, 64, 128)
SHOWN_MASK = 64  # the quick start's run, shown in the UI
ANALYSIS = ["--experiment", EXPERIMENT, "--metrics", "stlpips-alex", "--filmstrips", "0", "--no-log", "--dpi", "150",
            "--features", "none"]
TIMEOUT_MS = 180_000  # the UI's bundles are large; a busy machine takes a while


def rip(store: Path, *args: str) -> None:
    """`rip ARGS` on the store in folder `store`; exit with its error output when it fails."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}", "MLFLOW_DISABLE_TELEMETRY": "true",
           "RIP_SPOOL": str(store / "spool")}
    result = subprocess.run([str(BIN / "rip"), *args], env=env, cwd=store, capture_output=True, text=True, check=False)
    if result.returncode:
        sys.exit(result.stderr[-3000:])


def serve(store: Path, port: int) -> subprocess.Popen:
    """`mlflow server` on the store, as `mlflow ui --backend-store-uri ...` would serve it."""
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    deadline = time.time() + 300
    while time.time() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return server
        except OSError:
            time.sleep(1)
    os.killpg(server.pid, 9)
    sys.exit("mlflow server did not start")


def save_small(source: Path, target: Path) -> None:
    """`source` as a 256-colour PNG."""
    Image.open(source).convert("RGB").quantize(256).save(target, optimize=True)


def new_page(browser, width: int, height: int):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(TIMEOUT_MS)
    return page


def photograph_chart(browser, address: str, run_name: str, key: str, output: Path, full_size: bool) -> None:
    """The run's chart of image `key` enlarged, its slider at the last step; with `full_size`, the image clicked open.

    The enlarged chart draws an image at most about 300 px wide: a configuration's grid needs the click.
    """
    page = new_page(browser, 1200, 760 if full_size else 600)
    page.goto(address.replace("?", "/model-metrics?"), wait_until="commit")
    page.get_by_text(run_name).first.wait_for()
    page.get_by_placeholder("Search metric charts").fill(key)
    card = image_card(page, key)
    hide_run_parameters(page, card)
    dialog = enlarge(page, card)
    slider = dialog.get_by_role("slider").first
    slider.wait_for()
    last = slider.get_attribute("aria-valuemax")
    with page.expect_response(lambda response: is_logged_image(response, key, last)):
        for _ in range(100):  # one checkpoint a press (End is not handled)
            if slider.get_attribute("aria-valuenow") == last:
                break
            slider.press("ArrowRight")
    wait_shown(page, dialog)
    if full_size:
        dialog.locator("img").first.click()
        preview = page.locator(".rc-image-preview-img").first
        preview.wait_for()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=preview.element_handle())
    page.mouse.move(0, 0)  # no hover highlight
    page.wait_for_timeout(1_000)
    page.screenshot(path=str(output))
    page.close()


def photograph_runs(browser, address: str, parent_name: str, child_names: list[str], output: Path) -> None:
    """The experiment's runs view, the configuration run `parent_name` unfolded."""
    page = new_page(browser, 1400, 600)
    page.goto(address, wait_until="commit")
    page.get_by_text(parent_name, exact=True).first.wait_for()
    row = page.get_by_role("row").filter(has_text=parent_name).first
    row.locator("button[data-component-id*='runnamecellrenderer']").first.click()
    for name in child_names:
        page.get_by_text(name).first.wait_for()
    widen(page, "Run Name", 330)  # whole run names, not "telea · sample:4 · m…"
    close = page.locator("button[data-component-id='mlflow.assistant.chat_panel.close']")
    if close.count():  # the UI's chat panel takes a third of the page
        close.first.click()
    page.wait_for_timeout(1_000)
    page.screenshot(path=str(output))
    page.close()


def widen(page, column: str, pixels: int) -> None:
    """Drag the right edge of the runs table's `column` header `pixels` to the right."""
    handle = page.locator(".ag-header-cell").filter(has_text=column).first.locator(".ag-header-cell-resize")
    handle.hover()  # the grid arms its resizer on hover
    box = handle.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.down()
    page.mouse.move(x + pixels, y, steps=30)
    page.mouse.up()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "images")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        store, shots = Path(folder), Path(folder) / "shots"
        shots.mkdir()
        for mask in MASKS:
            rip(store, "run", *DEMO, "--mask", str(mask))
        rip(store, "analyze", *ANALYSIS, "--output", str(store / "analysis"))
        shutil.copyfile(store / "analysis" / "figures" / "mean_std.png", args.output / "stlpips-vs-percent.png")

        port = free_port()
        server = serve(store, port)
        try:
            from mlflow import MlflowClient
            from playwright.sync_api import sync_playwright

            uri = f"http://127.0.0.1:{port}"
            client = MlflowClient(uri)
            experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
            [parent] = client.search_runs(
                [experiment], f"tags.`rip.kind` = 'configuration' and params.mask = '{SHOWN_MASK}'")
            children = sorted(client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"),
                              key=lambda run: run.data.tags["rip.image_id"])
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                for run, key, name, full_size in ((children[0], "generation", "ui-image-slider", False),
                                                  (parent, "generation_grid", "ui-configuration-grid", True)):
                    photograph_chart(browser, run_url(uri, experiment, run.info.run_id), run.info.run_name, key,
                                     shots / f"{name}.png", full_size)
                photograph_runs(browser, runs_url(uri, experiment), parent.info.run_name,
                                [run.info.run_name for run in children], shots / "ui-runs.png")
                browser.close()
        finally:
            os.killpg(server.pid, 15)
            server.wait()
        for shot in sorted(shots.iterdir()):
            save_small(shot, args.output / shot.name)
    print(f"wrote {', '.join(sorted(path.name for path in args.output.glob('*.png')))} in {args.output}")


if __name__ == "__main__":
    main()
