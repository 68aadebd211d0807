"""The MLflow UI in a real headless browser, on a small recorded experiment.

Screenshots go to $RIP_UI_SCREENSHOTS when set (to look at them), else to the test's tmp_path.
"""

import os
import re
from pathlib import Path

import pytest
from mlflow import MlflowClient

from rip.tracking.ui import run_url
from tests.conftest import ui_addresses
from tests.mlflow_ui import enlarge, hide_run_parameters, image_card, is_logged_image, wait_shown

pytestmark = pytest.mark.slow
TIMEOUT_MS = 180_000  # the UI's bundles are large; a busy 2-core machine takes a while


def printed(output: str, prefix: str) -> str:
    """The address after `prefix ... at: ` in the output of `rip run`."""
    match = re.search(rf"^{re.escape(prefix)}.* at: (\S+)$", output, re.MULTILINE)
    assert match, output
    return match.group(1)


def screenshot(page, tmp_path: Path, name: str) -> None:
    folder = Path(os.environ.get("RIP_UI_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"))


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1600, "height": 1000})  # room beside the assistant panel
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    yield page
    context.close()


@pytest.fixture(scope="module")
def runs(mlflow_server, ui_experiment):
    """The recorded parent run and its image runs."""
    client = MlflowClient(mlflow_server.uri)
    experiment = client.get_experiment_by_name("ui-browser").experiment_id
    [parent] = client.search_runs([experiment], "tags.`rip.kind` = 'configuration'")
    children = client.search_runs([experiment], "tags.`rip.kind` = 'image'")
    return parent, children


def test_every_printed_address_opens_the_runs_list_or_the_run_page(page, ui_experiment, runs, tmp_path):
    parent, children = runs
    addresses = ui_addresses(ui_experiment.stdout + ui_experiment.stderr)
    assert addresses == [printed(ui_experiment.stderr, "View run"), printed(ui_experiment.stderr, "View experiment")]
    run_page, runs_list = addresses
    assert parent.info.run_id in run_page and runs_list.endswith("/runs?workflowType=machine_learning")

    page.goto(run_page, wait_until="commit")
    page.get_by_text(parent.info.run_name).first.wait_for()
    page.get_by_text("Run ID").first.wait_for()  # the run's overview, not the GenAI view
    screenshot(page, tmp_path, "run-page")

    page.goto(runs_list, wait_until="commit")
    page.get_by_text(parent.info.run_name).first.wait_for()
    assert page.get_by_text("Run Name", exact=True).first.is_visible()
    # the image runs sit under their configuration: expand it
    page.locator("button[data-component-id*='runnamecellrenderer']").first.click()
    for child in children:
        page.get_by_text(child.info.run_name).first.wait_for()
    screenshot(page, tmp_path, "runs-list")


def test_image_run_has_a_step_slider(page, mlflow_server, runs, tmp_path):
    parent, children = runs
    child = children[0]
    delivered = []
    page.on("response", lambda response: delivered.append(response))
    address = run_url(mlflow_server.uri, child.info.experiment_id, child.info.run_id).replace("?", "/model-metrics?")
    page.goto(address, wait_until="commit")
    page.get_by_text(child.info.run_name).first.wait_for()
    page.get_by_placeholder("Search metric charts").fill("generation")
    card = image_card(page, "generation")
    hide_run_parameters(page, card)
    wait_shown(page, card)
    assert any(is_logged_image(response, "generation", 0) for response in delivered)

    slider = card.get_by_role("slider")
    assert (slider.get_attribute("aria-valuenow"), slider.get_attribute("aria-valuemax")) == ("0", "100")
    with page.expect_response(lambda response: is_logged_image(response, "generation", 50)):
        slider.press("ArrowRight")  # one checkpoint a press
    wait_shown(page, card)
    screenshot(page, tmp_path, "image-run")


def test_parent_metric_charts_render(page, mlflow_server, ui_experiment, runs, tmp_path):
    parent, _ = runs
    address = printed(ui_experiment.stderr, "View run").replace("?", "/model-metrics?")
    assert parent.info.run_id in address
    delivered = []
    page.on("response", lambda response: delivered.append(response))
    page.goto(address, wait_until="commit")
    page.get_by_text(parent.info.run_name).first.wait_for()
    # beside coverage, depth and complexity, the distance's charts may lie below the fold: find them as a user does
    page.get_by_placeholder("Search metric charts").fill("ssim")
    for title in ("ssim_mean", "ssim_std"):
        page.get_by_text(title, exact=True).first.wait_for()
    page.locator(".js-plotly-plot .main-svg").nth(1).wait_for()  # two charts drawn
    assert page.locator(".js-plotly-plot .scatterlayer .trace").count() >= 2
    screenshot(page, tmp_path, "configuration-run")

    page.get_by_placeholder("Search metric charts").fill("generation_grid")
    card = image_card(page, "generation_grid")
    hide_run_parameters(page, card)
    wait_shown(page, enlarge(page, card))
    assert any(is_logged_image(response, "generation_grid", 0) for response in delivered)
    screenshot(page, tmp_path, "configuration-run-grid")


def test_configuration_run_shows_its_system_metrics(page, mlflow_server, runs, tmp_path):
    parent, _ = runs
    assert "system/cpu_utilization_percentage" in parent.data.metrics
    address = run_url(mlflow_server.uri, parent.info.experiment_id, parent.info.run_id).replace("?", "/system-metrics?")
    page.goto(address, wait_until="commit")
    page.get_by_text(parent.info.run_name).first.wait_for()
    for title in ("cpu_utilization_percentage", "system_memory_usage_megabytes", "network_receive_megabytes"):
        page.get_by_text(title, exact=True).first.wait_for()  # the tab's charts are titled without system/
    page.locator(".js-plotly-plot .scatterlayer .trace").first.wait_for()
    screenshot(page, tmp_path, "system-metrics")


def test_image_run_plays_its_animation_in_the_artifact_view(page, mlflow_server, runs, tmp_path):
    """The artifact view previews no WebP: animation.html, the same file in a page, plays there."""
    _, children = runs
    child = children[0]
    address = run_url(mlflow_server.uri, child.info.experiment_id, child.info.run_id).replace("?", "/artifacts?")
    page.goto(address, wait_until="commit")
    page.get_by_text("animation.html", exact=True).first.click()
    image = page.frame_locator("iframe").first.locator("img[src^='data:image/webp;base64,']")
    image.wait_for()
    assert image.evaluate("img => img.complete && img.naturalWidth") == 128  # decoded: the 128 px frames
    screenshot(page, tmp_path, "image-run-animation")
