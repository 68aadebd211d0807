"""Make the README's screenshots of the MLflow UI from the offline demo.

    .venv/bin/python scripts/readme_images.py            # writes docs/images/ui-*.png

Runs the quick start's demo (Telea, four sample photographs, 256 px; SSIM only) into a fresh SQLite store,
serves it with `mlflow server`, and photographs an image run's step slider and the configuration
run's image grid in headless Chromium (Playwright, launched on the system's Chromium).
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO))

from tests.conftest import CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: E402

DEMO = ["--images", "sample:4", "--model", "telea", "--size", "256", "--mask", "64",
        "--metrics", "ssim", "--experiment", "demo"]


def record_demo(store: Path) -> str:
    """Run the demo into `store`; return what `rip run` printed."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}", "MLFLOW_DISABLE_TELEMETRY": "true",
           "RIP_SPOOL": str(store / "spool")}
    result = subprocess.run([str(BIN / "rip"), "run", *DEMO], env=env, cwd=store, capture_output=True, text=True)
    if result.returncode:
        sys.exit(result.stderr)
    return result.stdout


def serve(store: Path, port: int) -> subprocess.Popen:
    """`mlflow server` on the demo's store, as `mlflow ui --backend-store-uri ...` would serve it."""
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return server
        except OSError:
            time.sleep(1)
    server.kill()
    sys.exit("mlflow server did not start")


def photograph(run_page: str, run_name: str, key: str, output: Path) -> None:
    """The run's chart of image `key` at its last step, enlarged, as a PNG."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 760})
        page.set_default_timeout(180_000)
        page.goto(run_page.replace("?", "/model-metrics?"), wait_until="commit")
        page.get_by_text(run_name).first.wait_for()
        try:  # the assistant panel, for room
            page.get_by_label("Close", exact=True).first.click(timeout=20_000)
        except PlaywrightError:
            pass
        expand = ("//*[normalize-space(text())='{0}']/ancestor::*[.//button[@data-component-id='{1}']][1]"
                  "//button[@data-component-id='{1}']").format(key, "fullscreen_button_chartcard")
        page.locator(expand).first.click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_role("slider").first.wait_for()
        step = dialog.get_by_role("spinbutton").first  # the number beside the slider
        step.fill("400")  # the last checkpoint
        step.press("Enter")
        try:
            dialog.locator("img[src*='%2Bstep%2B400%2B']").first.wait_for(state="attached", timeout=60_000)
        except PlaywrightError:
            print(f"{key}: the slider stayed at its first step", file=sys.stderr)
        page.wait_for_timeout(5_000)
        dialog.screenshot(path=str(output))
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "images")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder)
        printed = record_demo(store)
        port = free_port()
        server = serve(store, port)
        try:
            name, address = re.search(r"^View run (.*) at: (\S+)$", printed, re.MULTILINE).groups()
            address = address.replace("127.0.0.1:5000", f"127.0.0.1:{port}")
            photograph(address, name, "generation_grid", args.output / "ui-configuration-grid.png")
            from mlflow import MlflowClient

            client = MlflowClient(f"http://127.0.0.1:{port}")
            child = client.search_runs([address.split("/experiments/")[1].split("/")[0]],
                                       "tags.`rip.kind` = 'image' and tags.`rip.image_id` = 'astronaut'")[0]
            photograph(address.replace(child.data.tags["mlflow.parentRunId"], child.info.run_id),
                       child.info.run_name, "generation", args.output / "ui-image-slider.png")
        finally:
            os.killpg(server.pid, 15)
            server.wait()
    print(f"wrote {args.output}/ui-image-slider.png and ui-configuration-grid.png")


if __name__ == "__main__":
    main()
