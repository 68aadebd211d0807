"""`rip demo` in a real headless browser: upload a picture, start, watch the generations and the plot.

The screenshot goes to $RIP_UI_SCREENSHOTS when set, else to the test's tmp_path;
`RIP_UI_SCREENSHOTS=docs/images pytest tests/test_demo_browser.py` makes the README's docs/images/demo.png.
"""

import os
import re
from pathlib import Path

import pytest
from mlflow import MlflowClient
from PIL import Image

from analysis.artifacts import run_animation

pytestmark = pytest.mark.slow
TIMEOUT_MS = 180_000  # a busy 2-core machine loads Gradio's bundles slowly
SHOWN_COLOURS = 128  # the screenshot's palette: a small PNG for the README


def set_field(page, elem_id: str, value: str) -> None:
    """Type `value` into a Gradio dropdown or number field, as a user does."""
    field = page.locator(f"#{elem_id} input").first
    field.fill(value)
    field.press("Enter")
    field.blur()


def test_upload_start_and_watch(browser, demo_server, mlflow_server, tmp_path):
    from skimage import data

    picture = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).resize((128, 128)).save(picture)
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(demo_server.url)
    page.locator("#start").wait_for()

    page.locator("#upload input[type=file]").set_input_files(str(picture))
    page.locator("#upload").get_by_text("astronaut.png").first.wait_for()
    page.locator("#source input[value='upload']").wait_for(state="attached")
    page.wait_for_function("() => document.querySelector(\"#source input[value='upload']\").checked")
    set_field(page, "model", "telea")
    set_field(page, "size", "256")
    set_field(page, "mask", "32")
    percent = page.locator("#percent input[type=number]")
    percent.fill("200")
    percent.press("Enter")
    page.locator("#start").click()

    status = page.locator("#status")
    status.get_by_text(re.compile("^Finished")).wait_for()
    strip = page.locator("#filmstrip img")
    assert strip.count() == 5  # 0, 50, 100, 150, 200 %
    page.wait_for_function("n => [...document.querySelectorAll('#filmstrip img')]"
                           ".filter(img => img.complete && img.naturalWidth > 0).length >= n", arg=3)
    chart = page.locator("#plot canvas, #plot svg.marks").first
    chart.wait_for()
    box = chart.bounding_box()
    assert box["width"] > 200 and box["height"] > 150  # the plot is drawn (Vega draws on a canvas)
    link = page.locator("#run-link a").first
    run_id = re.search(r"/runs/([0-9a-f]{32})", link.get_attribute("href")).group(1)
    page.locator("#generation img").first.wait_for()
    download = page.locator("#animation a[download]").first  # the run's animation, to download
    download.wait_for()
    assert re.fullmatch(r"astronaut-[0-9a-f]+-animation\.webp", download.get_attribute("download"))
    offered = page.request.get(download.get_attribute("href")).body()

    folder = Path(os.environ.get("RIP_UI_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "demo.png"
    page.screenshot(path=str(path), full_page=True)
    Image.open(path).convert("RGB").quantize(SHOWN_COLOURS).save(path, optimize=True)

    outside = [url for url in requested if not url.startswith(("http://127.0.0.1:", "data:", "blob:"))]
    assert outside == []  # the page calls nothing outside the machine
    mlflow_client = MlflowClient(mlflow_server.uri)
    run = mlflow_client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.params["model"] == "telea"
    [child] = mlflow_client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'")
    assert offered == run_animation(mlflow_client, child.info.run_id)
    assert run.data.params["size"] == "256" and run.data.params["percent"] == "200"
    assert run.data.params["images"].rsplit("/", 1)[-1].startswith("astronaut-")
