"""Assets in the browser: build a tree (types, assets, a move, collapse and expand),
attach a sensor, open the asset page (latest values, a plot, annotations drawn and
listed, one added), and the annotations drawn on the plots page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from playwright.sync_api import Page, expect

from tests.web.conftest import canvas_ink

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
LINE = (179, 107, 0)  # an instant annotation: an opaque dashed line
SHADE = (233, 161, 59)  # a range: a translucent band


def minute(at: datetime) -> str:
    """A datetime-local value (the browser's zone is UTC in these tests)."""
    return at.strftime("%Y-%m-%dT%H:%M")


def seed(admin) -> None:
    admin.ok(
        "/sensor/insert-sensor-type",
        {
            "name": "Weather",
            "measures": [{"name": "temperature", "units": "C", "datatype": "float"}],
        },
        201,
    )
    for uid in ("t1", "t2"):
        admin.ok("/sensor/insert-sensor", {"type_name": "Weather", "unique_identifier": uid}, 201)
    times = [NOW - timedelta(minutes=30 * k) for k in range(12, 0, -1)]
    admin.ok(
        "/sensor/insert-sensor-readings",
        {
            "unique_identifier": "t1",
            "measure_name": "temperature",
            "readings": [18.0 + k / 4 for k in range(len(times) - 1)] + [21.5],
            "timestamps": [t.isoformat() for t in times],
        },
        201,
    )


def test_tree_asset_page_and_annotations(signed_in: Page, live_host, admin, shoot, console) -> None:
    console.allow("409 (Conflict)")
    seed(admin)
    page = signed_in
    page.get_by_role("link", name="Assets", exact=True).click()
    expect(page.locator("#asset-tree")).to_contain_text("No assets yet")

    types = page.locator("#add-type-form")
    for name, brick in (("Site", ""), ("Building", "brick:Building")):
        types.get_by_label("Name").fill(name)
        types.get_by_label("Brick class (optional)").fill(brick)
        types.get_by_role("button", name="Add type").click()
        expect(types.locator(".form-status")).to_have_text(f"Asset type “{name}” added.")
    expect(page.locator("#type-list table")).to_contain_text("brick:Building")

    add = page.locator("#add-asset-form")
    for name, type_name, parent in (
        ("campus", "Site", "(none: a root)"),
        ("b1", "Building", "campus"),
        ("b2", "Building", "campus"),
    ):
        add.get_by_label("Name").fill(name)
        add.get_by_label("Asset type").select_option(type_name)
        add.get_by_label("Parent").select_option(parent)
        add.get_by_role("button", name="Add asset").click()
        expect(add.locator(".form-status")).to_have_text(f"Asset “{name}” added.")

    # Move b2 under b1; moving b1 under b2 now would be a cycle: the API's 409 shows.
    move = page.locator("#move-form")
    move.get_by_label("Asset", exact=True).select_option("b2")
    move.get_by_label("New parent").select_option("b1")
    move.get_by_role("button", name="Move").click()
    expect(move.locator(".form-status")).to_have_text("“b2” moved under “b1”.")
    move.get_by_label("Asset", exact=True).select_option("b1")
    move.get_by_label("New parent").select_option("b2")
    move.get_by_role("button", name="Move").click()
    expect(move.locator(".form-status.error")).to_contain_text("makes a cycle")
    tree = page.locator("#asset-tree")
    nested = tree.locator('li[data-asset="campus"] li[data-asset="b1"] li[data-asset="b2"]')
    expect(nested).to_have_count(1)
    tree.get_by_role("button", name="Collapse b1").click()
    expect(tree.locator('li[data-asset="b2"]')).to_have_count(0)
    tree.get_by_role("button", name="Expand b1").click()
    expect(nested).to_have_count(1)

    attach = page.locator("#attach-form")
    attach.get_by_label("Sensor").select_option("t1")
    attach.get_by_label("Asset", exact=True).select_option("b2")
    attach.get_by_role("button", name="Attach").click()
    expect(attach.locator(".form-status")).to_have_text("Sensor “t1” attached to “b2”.")
    shoot("assets")

    # An annotation on the sensor, at an instant, written through the API.
    admin.ok(
        "/annotation/insert-annotation",
        {
            "unique_identifier": "t1",
            "dt_from": (NOW - timedelta(hours=5)).isoformat(),
            "text": "probe cleaned",
        },
        201,
    )

    # The asset page of b1: t1 is below it (recursive), with its latest value.
    tree.get_by_role("link", name="b1").click()
    page.wait_for_url("**/asset.html?name=b1")
    expect(page.locator("#asset-heading")).to_have_text("b1")
    expect(page.locator("#asset-summary")).to_contain_text("campus / b1")
    expect(page.locator("#asset-sensors")).to_contain_text("No sensors are attached")
    page.get_by_label("Include the sensors of the assets below this one").check()
    sensors = page.locator("#asset-sensors table")
    expect(sensors).to_contain_text("t1")
    expect(sensors).to_contain_text("temperature: 21.5 C")

    chart = page.locator('figure.chart-card[data-chart="temperature (C)"]')
    expect(chart.locator(".chart-note")).to_have_text("12 readings.")
    expect(chart).to_have_attribute("data-annotations", "1")
    expect(chart.locator(".chart-annotations")).to_contain_text("t1: probe cleaned")

    # Add a range annotation on the asset itself through the page.
    form = page.locator("#annotation-form")
    form.get_by_label("On").select_option("(this asset)")
    form.get_by_label("From").fill(minute(NOW - timedelta(hours=3)))
    form.get_by_label("To (empty: an instant)").fill(minute(NOW - timedelta(hours=2)))
    form.get_by_label("Text").fill("filter changed")
    form.get_by_label("Tags (comma-separated)").fill("maintenance, ahu")
    form.get_by_role("button", name="Add annotation").click()
    expect(form.locator(".form-status")).to_have_text("Annotation added.")
    listing = page.locator("#annotation-list table")
    expect(listing).to_contain_text("filter changed")
    expect(listing).to_contain_text("maintenance, ahu")
    expect(listing).to_contain_text("default_user@localhost")
    expect(chart).to_have_attribute("data-annotations", "2")
    page.wait_for_timeout(300)  # the canvas is painted on the next animation frame
    assert canvas_ink(page, "temperature (C)", LINE) > 50
    assert canvas_ink(page, "temperature (C)", SHADE, tolerance=50, alpha=(20, 120)) > 500
    # The plot sits inside its card (uPlot's stylesheet is loaded).
    card, canvas = chart.bounding_box(), chart.locator("canvas").bounding_box()
    assert card and canvas and card["y"] < canvas["y"]
    assert canvas["y"] + canvas["height"] < card["y"] + card["height"]
    expect(page.locator("#asset-moves table")).to_contain_text("campus")
    shoot("asset-page")

    # The plots page draws the sensor's annotations and those of the asset it is attached
    # to (b2): b1's note is not among them.
    page.goto(f"{live_host.url}/plots.html?type=Weather&sensor=t1&measure=temperature")
    page.locator("#plot-form").get_by_role("button", name="Plot", exact=True).click()
    plotted = page.locator('figure.chart-card[data-chart="temperature (C)"]')
    expect(plotted).to_have_attribute("data-annotations", "1")
    expect(plotted.locator(".chart-annotations")).to_contain_text("t1: probe cleaned")
    page.wait_for_timeout(300)
    assert canvas_ink(page, "temperature (C)", LINE) > 50

    # The sensor's details list its asset and annotations.
    page.goto(f"{live_host.url}/sensors.html?sensor=t1")
    expect(page.locator("#sensor-asset")).to_contain_text("Attached to b2")
    expect(page.locator("#sensor-annotations")).to_contain_text("probe cleaned")
