"""/annotation over HTTP: notes on an asset or a sensor over a time range, listed by the
window they overlap (docs/api.md, Assets and annotations)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tests import support
from tests.support import Api, LocalHost


def setup(api: Api) -> None:
    """Asset ahu (attached: s1) and a spare sensor s2."""
    api.ok("/asset/insert-asset-type", {"name": "AHU"}, 201)
    api.ok("/asset/insert-asset", {"name": "ahu", "type_name": "AHU"}, 201)
    api.ok("/sensor/insert-sensor-type", {"name": "thermo", "measures": []}, 201)
    for uid in ("s1", "s2"):
        api.ok("/sensor/insert-sensor", {"type_name": "thermo", "unique_identifier": uid}, 201)
    api.ok("/asset/attach-sensor", {"asset": "ahu", "unique_identifier": "s1"}, 201)


def note(api: Api, **body: Any) -> int:
    reply = api.ok("/annotation/insert-annotation", body, 201)
    assert reply["detail"] == "Annotation inserted"
    return int(reply["id"])


def listed(api: Api, **body: Any) -> list[int]:
    return [a["id"] for a in api.ok("/annotation/list-annotations", body, 200)]


def count(database: support.TestDatabase) -> int:
    with database.engine.connect() as conn:
        return int(conn.scalar(sa.text("select count(*) from annotation")) or 0)


def test_insert_list_and_delete(admin: Api) -> None:
    setup(admin)
    filter_change = note(
        admin,
        asset="ahu",
        dt_from="2026-01-01T10:00:00Z",
        dt_to="2026-01-01T12:00:00Z",
        text="filter changed",
        tags=["maintenance"],
    )
    spike = note(admin, unique_identifier="s1", dt_from="2026-01-01T15:00:00+01:00", text="spike")
    other = note(admin, unique_identifier="s2", dt_from="2026-01-01T11:00:00", text="s2 moved")
    everything = admin.ok(
        "/annotation/list-annotations",
        {"dt_from": "2026-01-01T00:00:00Z", "dt_to": "2026-01-02T00:00:00Z"},
    )
    assert [a["id"] for a in everything] == [filter_change, other, spike]  # by dt_from
    first = everything[0]
    assert first["asset"] == "ahu" and first["unique_identifier"] is None
    assert (first["dt_from"], first["dt_to"]) == ("2026-01-01T10:00:00Z", "2026-01-01T12:00:00Z")
    assert (first["text"], first["tags"]) == ("filter changed", ["maintenance"])
    assert first["author"] == "default_user@localhost"
    assert first["time_created"].endswith("Z")
    assert everything[2]["dt_from"] == "2026-01-01T14:00:00Z"  # converted to UTC
    assert everything[2]["dt_to"] is None

    day = {"dt_from": "2026-01-01T00:00:00Z", "dt_to": "2026-01-02T00:00:00Z"}
    # An asset's listing holds its attached sensors' notes; a sensor's, its asset's.
    assert listed(admin, asset="ahu", **day) == [filter_change, spike]
    assert listed(admin, asset="ahu", include_related=False, **day) == [filter_change]
    assert listed(admin, unique_identifier="s1", **day) == [filter_change, spike]
    assert listed(admin, unique_identifier="s2", **day) == [other]
    # Windows: a range overlapping either end counts, the ends included; an instant counts
    # inside the window only.
    assert listed(admin, dt_from="2026-01-01T11:30:00Z", dt_to="2026-01-01T11:40:00Z") == [
        filter_change
    ]
    assert listed(admin, dt_from="2026-01-01T12:00:00Z", dt_to="2026-01-01T13:00:00Z") == [
        filter_change
    ]
    assert listed(admin, dt_from="2026-01-01T09:00:00Z", dt_to="2026-01-01T10:00:00Z") == [
        filter_change
    ]
    assert listed(admin, dt_from="2026-01-01T12:00:01Z", dt_to="2026-01-01T13:59:59Z") == []
    assert listed(admin, dt_from="2026-01-01T14:00:00Z", dt_to="2026-01-01T14:00:00Z") == [spike]

    assert admin.ok("/annotation/delete-annotation", {"id": spike}) == {
        "detail": "Annotation deleted"
    }
    assert listed(admin, asset="ahu", **day) == [filter_change]
    gone = admin.post("/annotation/delete-annotation", {"id": spike})
    assert (gone.status_code, gone.json()) == (
        400,
        {"detail": f"Annotation {spike} does not exist"},
    )


def test_bad_input_is_4xx_and_writes_nothing(admin: Api, database: support.TestDatabase) -> None:
    setup(admin)
    at = {"dt_from": "2026-01-01T10:00:00Z", "text": "x"}
    for body, field in [
        ({**at}, "body"),  # neither an asset nor a sensor
        ({**at, "asset": "ahu", "unique_identifier": "s1"}, "body"),
        ({**at, "asset": "ahu", "dt_to": "2026-01-01T09:00:00Z"}, "body"),
        ({**at, "asset": "ahu", "text": ""}, "text"),
        ({**at, "asset": "ahu", "dt_from": "2026-01-01"}, "dt_from"),
        ({**at, "asset": "ahu", "tags": "maintenance"}, "tags"),
    ]:
        reply = admin.post("/annotation/insert-annotation", body)
        assert reply.status_code == 422, (body, reply.text)
        assert (
            reply.json()["detail"][0]["loc"][:2] == ["body", field][: 2 if field != "body" else 1]
        )
    for body, detail in [
        ({**at, "asset": "nope"}, "Asset 'nope' does not exist"),
        ({**at, "unique_identifier": "nope"}, "Sensor 'nope' does not exist"),
    ]:
        reply = admin.post("/annotation/insert-annotation", body)
        assert (reply.status_code, reply.json()) == (400, {"detail": detail})
    window = {"dt_from": "2026-01-01T00:00:00Z", "dt_to": "2026-01-02T00:00:00Z"}
    both = admin.post(
        "/annotation/list-annotations", {**window, "asset": "a", "unique_identifier": "b"}
    )
    assert both.status_code == 422
    assert admin.post("/annotation/list-annotations", {"asset": "ahu"}).status_code == 422
    missing = admin.post("/annotation/list-annotations", {**window, "asset": "nope"})
    assert (missing.status_code, missing.json()) == (400, {"detail": "Asset 'nope' does not exist"})
    assert count(database) == 0


def test_deleting_the_target_deletes_its_notes(admin: Api, database: support.TestDatabase) -> None:
    setup(admin)
    note(admin, asset="ahu", dt_from="2026-01-01T10:00:00Z", text="on the asset")
    note(admin, unique_identifier="s2", dt_from="2026-01-01T10:00:00Z", text="on s2")
    admin.ok("/sensor/delete-sensor", {"unique_identifier": "s2"})
    admin.ok("/asset/detach-sensor", {"unique_identifier": "s1"}, 201)
    admin.ok("/asset/delete-asset", {"name": "ahu"})
    assert count(database) == 0


def test_a_viewer_reads_notes_but_writes_none(admin: Api, live_host: LocalHost) -> None:
    setup(admin)
    noted = note(admin, asset="ahu", dt_from="2026-01-01T10:00:00Z", text="x")
    admin.ok("/user/create-user", {"email": "v@x.org", "password": "p", "role": "viewer"}, 201)
    viewer = Api(live_host.api, "v@x.org", "p")
    try:
        window = {"dt_from": "2026-01-01T00:00:00Z", "dt_to": "2026-01-02T00:00:00Z"}
        assert listed(viewer, asset="ahu", **window) == [noted]
        body = {"asset": "ahu", "dt_from": "2026-01-01T10:00:00Z", "text": "y"}
        assert viewer.post("/annotation/insert-annotation", body).status_code == 403
        assert viewer.post("/annotation/delete-annotation", {"id": noted}).status_code == 403
    finally:
        viewer.close()


def test_recursive_listing_takes_the_subtree(admin: Api) -> None:
    setup(admin)
    admin.ok("/asset/insert-asset", {"name": "fan", "type_name": "AHU", "parent": "ahu"}, 201)
    admin.ok("/asset/attach-sensor", {"asset": "fan", "unique_identifier": "s2"}, 201)
    on_fan = note(admin, asset="fan", dt_from="2026-01-01T10:00:00Z", text="belt")
    on_s2 = note(admin, unique_identifier="s2", dt_from="2026-01-01T11:00:00Z", text="noisy")
    day = {"dt_from": "2026-01-01T00:00:00Z", "dt_to": "2026-01-02T00:00:00Z"}
    assert listed(admin, asset="ahu", **day) == []
    assert listed(admin, asset="ahu", recursive=True, **day) == [on_fan, on_s2]
    assert listed(admin, asset="ahu", recursive=True, include_related=False, **day) == [on_fan]
