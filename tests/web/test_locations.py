"""Locations: add a schema with new identifiers and one reusing an existing identifier,
add locations with typed coordinates, see a table per schema; a sensor's location history."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.web.conftest import nav_to


def fill_identifier(form, index: int, name: str, units: str, datatype: str) -> None:
    row = form.locator(".measure-row").nth(index)
    row.get_by_label("Name").fill(name)
    row.get_by_label("Units").fill(units)
    row.get_by_label("Datatype").select_option(datatype)


def test_schemas_locations_and_sensor_history(
    signed_in: Page, live_host, admin, shoot, console
) -> None:
    console.allow("409 (Conflict)")
    page = signed_in
    nav_to(page, "Locations")
    form = page.locator("#add-schema-form")
    form.get_by_label("Schema name").fill("field")
    form.get_by_label("Description").fill("Positions in the field")
    fill_identifier(form, 0, "x", "m", "float")
    form.get_by_role("button", name="Add another identifier").click()
    fill_identifier(form, 1, "row", "", "integer")
    form.get_by_role("button", name="Add another identifier").click()
    fill_identifier(form, 2, "indoors", "", "boolean")
    form.get_by_role("button", name="Add schema").click()
    expect(form.locator(".form-status")).to_have_text("Schema “field” added.")
    expect(page.locator("#schema-list table")).to_contain_text(
        "x (m): float, row: integer, indoors: boolean"
    )

    # A second schema reusing the existing identifier x (m) and a new string one.
    form.get_by_label("Schema name").fill("shelves")
    form.locator(".measure-row").first.get_by_label("Identifier 1", exact=True).select_option(
        label="x (m) · float"
    )
    expect(form.locator(".measure-row").first.get_by_label("Name")).to_be_hidden()
    form.get_by_role("button", name="Add another identifier").click()
    fill_identifier(form, 1, "shelf", "", "string")
    form.get_by_role("button", name="Add schema").click()
    expect(form.locator(".form-status")).to_have_text("Schema “shelves” added.")
    schemas = admin.get("/location/list-location-schemas").json()
    shelves = next(s for s in schemas if s["name"] == "shelves")
    assert shelves["identifiers"] == [
        {"name": "shelf", "units": None, "datatype": "string"},
        {"name": "x", "units": "m", "datatype": "float"},
    ] or sorted(i["name"] for i in shelves["identifiers"]) == ["shelf", "x"]

    # Locations with typed coordinates.
    loc_form = page.locator("#add-location-form")
    loc_form.get_by_label("Location schema").select_option("field")
    loc_form.get_by_label("x (m)").fill("1.5")
    loc_form.get_by_label("row").fill("3")
    loc_form.get_by_label("indoors").check()
    loc_form.get_by_role("button", name="Add location").click()
    expect(loc_form.locator(".form-status")).to_have_text("Location added to “field”.")
    loc_form.get_by_label("x (m)").fill("2")
    loc_form.get_by_label("row").fill("4")
    loc_form.get_by_role("button", name="Add location").click()
    expect(loc_form.locator(".form-status")).to_have_text("Location added to “field”.")
    # The same coordinates again: the API's detail appears beside the form.
    loc_form.get_by_label("x (m)").fill("2")
    loc_form.get_by_label("row").fill("4")
    loc_form.get_by_role("button", name="Add location").click()
    expect(loc_form.locator(".form-status.error")).to_contain_text("exists already")

    field_table = page.locator("section[data-schema=field] table")
    rows = field_table.locator("tbody tr")
    expect(rows).to_have_count(2)
    assert [c.strip() for c in rows.nth(0).locator("td").all_inner_texts()][:4] == [
        "1",
        "1.5",
        "3",
        "true",
    ]
    assert [c.strip() for c in rows.nth(1).locator("td").all_inner_texts()][:4] == [
        "2",
        "2.0",
        "4",
        "false",
    ]
    expect(page.locator("section[data-schema=shelves] tbody")).to_contain_text(
        "No locations in this schema yet."
    )
    shoot("locations")

    # A sensor's location history, newest first.
    admin.ok("/sensor/insert-sensor-type", {"name": "T", "measures": []}, status=201)
    admin.ok("/sensor/insert-sensor", {"type_name": "T", "unique_identifier": "s-1"}, status=201)
    admin.ok(
        "/sensor/insert-sensor-location",
        {
            "unique_identifier": "s-1",
            "schema_name": "field",
            "coordinates": {"x": 1.5, "row": 3, "indoors": True},
            "installation_datetime": "2026-01-01T00:00:00Z",
        },
        status=201,
    )
    nav_to(page, "Sensors")
    page.get_by_role("button", name="Location history of s-1").click()
    history = page.locator("#history table")
    expect(history.locator("tbody tr")).to_have_count(1)
    hist_form = page.locator("#sensor-location-form")
    hist_form.get_by_label("Location schema").select_option("field")
    hist_form.get_by_label("Installed at").fill("2026-06-01T12:00")
    hist_form.get_by_label("x (m)").fill("2")
    hist_form.get_by_label("row").fill("4")
    hist_form.get_by_role("button", name="Record location").click()
    expect(hist_form.locator(".form-status")).to_have_text("Location recorded.")
    expect(history.locator("tbody tr")).to_have_count(2)
    history = page.locator("#history table")
    first = [c.strip() for c in history.locator("tbody tr").nth(0).locator("td").all_inner_texts()]
    assert first[0] == "2026-06-01 12:00:00" and first[1] == "2"
