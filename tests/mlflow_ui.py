"""A logged image's chart in the MLflow UI, looked at as a user does (tests and the README's pictures).

MLflow 3.18 fetches a chart's image itself and shows it from a `blob:` address, so which step is
on screen is read from the artifact request, whose address holds the image file's name
(`images/<key>+step+<step>+...`), not from the `<img>` element.
"""


def image_card(page, key: str):
    """The chart card titled `key` on a run's *Model metrics* tab."""
    return page.locator("[data-testid='experiment-view-compare-runs-card']",
                        has=page.get_by_role("heading", name=key, exact=True)).first


def is_logged_image(response, key: str, step: int | str | None = None) -> bool:
    """Whether `response` delivered image `key` (at `step`, when given) logged with `log_image`."""
    name = f"{key}%2Bstep%2B" + ("" if step is None else f"{step}%2B")
    return name in response.url and response.ok


def hide_run_parameters(page, card) -> None:
    """Switch off the run parameters listed above the card's image, where the UI has that setting.

    MLflow 3.12 and later list every parameter of the run above its image, which for a run of
    this project (about 40 parameters) fills the card and pushes the image out of sight; the
    chart's *Configure* dialog has the switch.
    """
    card.locator("[data-testid='experiment-view-compare-runs-card-menu']").click()
    page.get_by_role("menuitem", name="Configure").click()
    switch = page.get_by_role("switch", name="Show run parameters")
    if switch.count() and switch.is_checked():
        switch.click()
        page.get_by_role("button", name="Save changes").click()
    else:
        page.get_by_role("button", name="Cancel").click()
    page.get_by_role("dialog").wait_for(state="detached")


def enlarge(page, card):
    """The card's chart enlarged (its full-screen button), as a dialog.

    A card keeps its image at least 400 px wide, so a configuration's grid overflows the card
    sideways; enlarged, it fits.
    """
    card.locator("button[data-component-id='fullscreen_button_chartcard']").click()
    return page.get_by_role("dialog")


def wait_shown(page, container) -> None:
    """Wait until the container's image has loaded and lies wholly inside the container."""
    image = container.locator("img").first
    image.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    box, frame = image.bounding_box(), container.bounding_box()
    inside = all(frame[x] <= box[x] and box[x] + box[size] <= frame[x] + frame[size]
                 for x, size in (("x", "width"), ("y", "height")))
    assert box["width"] > 0 and inside, f"the image ({box}) lies outside its chart ({frame})"
