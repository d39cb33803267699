"""/asset over HTTP: types, the tree, moves and their history, sensors attached to assets
(docs/api.md, Assets and annotations)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tests import support
from tests.support import Api, LocalHost

TABLES = ["asset_type", "asset", "asset_move", "asset_sensor"]


def rows(database: support.TestDatabase) -> dict[str, int]:
    with database.engine.connect() as conn:
        return {t: conn.scalar(sa.text(f"select count(*) from {t}")) for t in TABLES}


def refused(api: Api, path: str, body: Any, status: int) -> Any:
    reply = api.post(path, body)
    assert reply.status_code == status, (path, body, reply.status_code, reply.text)
    return reply.json()["detail"]


def build(api: Api) -> None:
    """campus > (b1 > r1), b2; sensors s1, s2 of type thermo."""
    api.ok("/asset/insert-asset-type", {"name": "Site"}, 201)
    api.ok("/asset/insert-asset-type", {"name": "Building", "brick_class": "brick:Building"}, 201)
    api.ok("/asset/insert-asset-type", {"name": "Room", "brick_class": "brick:Room"}, 201)
    for name, type_name, parent in [
        ("campus", "Site", None),
        ("b1", "Building", "campus"),
        ("b2", "Building", "campus"),
        ("r1", "Room", "b1"),
    ]:
        body = {"name": name, "type_name": type_name, "parent": parent}
        assert api.ok("/asset/insert-asset", body, 201) == {"detail": "Asset inserted"}
    api.ok("/sensor/insert-sensor-type", {"name": "thermo", "measures": []}, 201)
    for uid in ("s1", "s2"):
        api.ok("/sensor/insert-sensor", {"type_name": "thermo", "unique_identifier": uid}, 201)


def shape(nodes: list[dict[str, Any]]) -> list[Any]:
    return [[n["name"], shape(n["children"])] if n["children"] else n["name"] for n in nodes]


def test_every_route_needs_a_token(anon: Api) -> None:
    for path in ("insert-asset", "asset-tree", "move-asset", "attach-sensor"):
        reply = anon.post(f"/asset/{path}")
        assert (reply.status_code, reply.json()) == (401, {"detail": "Not authenticated"}), path
    assert anon.get("/asset/list-asset-types").status_code == 401


def test_types_and_tree(admin: Api) -> None:
    build(admin)
    assert admin.get("/asset/list-asset-types").json() == [
        {"name": "Site", "brick_class": None},
        {"name": "Building", "brick_class": "brick:Building"},
        {"name": "Room", "brick_class": "brick:Room"},
    ]
    tree = admin.ok("/asset/asset-tree", {}, 200)
    assert shape(tree) == [["campus", [["b1", ["r1"]], "b2"]]]
    assert tree[0]["children"][0] == {
        "name": "b1",
        "type_name": "Building",
        "brick_class": "brick:Building",
        "parent": "campus",
        "description": None,
        "children": [
            {
                "name": "r1",
                "type_name": "Room",
                "brick_class": "brick:Room",
                "parent": "b1",
                "description": None,
                "children": [],
            }
        ],
    }
    # No body at all is the whole tree too.
    assert shape(admin.ok("/asset/asset-tree")) == [["campus", [["b1", ["r1"]], "b2"]]]
    assert shape(admin.ok("/asset/asset-tree", {"root": "b1"})) == [["b1", ["r1"]]]
    listed = admin.ok("/asset/list-assets", {"parent": "campus"})
    assert [a["name"] for a in listed] == ["b1", "b2"]
    assert [a["name"] for a in admin.ok("/asset/list-assets")] == ["campus", "b1", "b2", "r1"]
    assert [a["name"] for a in admin.ok("/asset/list-assets", {"type_name": "Room"})] == ["r1"]


def test_bad_writes_are_4xx_and_write_nothing(admin: Api, database: support.TestDatabase) -> None:
    build(admin)
    before = rows(database)
    assert refused(admin, "/asset/insert-asset-type", {"name": "Room"}, 409) == (
        "Asset type 'Room' exists already"
    )
    body = {"name": "x", "type_name": "Lab"}
    assert refused(admin, "/asset/insert-asset", body, 400) == "Asset type 'Lab' does not exist"
    body = {"name": "x", "type_name": "Room", "parent": "nowhere"}
    assert refused(admin, "/asset/insert-asset", body, 400) == (
        "Parent asset 'nowhere' does not exist"
    )
    body = {"name": "b1", "type_name": "Room", "parent": "campus"}
    assert refused(admin, "/asset/insert-asset", body, 409) == "Asset 'b1' exists already"
    blank = admin.post("/asset/insert-asset", {"name": " ", "type_name": "Room"})
    assert blank.status_code == 422 and blank.json()["detail"][0]["loc"] == ["body", "name"]
    assert refused(admin, "/asset/delete-asset-type", {"name": "Room"}, 409) == (
        "Asset type 'Room' is used by the assets 'r1'"
    )
    assert refused(admin, "/asset/list-assets", {"parent": "nowhere"}, 400) == (
        "Parent asset 'nowhere' does not exist"
    )
    assert refused(admin, "/asset/asset-tree", {"root": "nowhere"}, 400) == (
        "Asset 'nowhere' does not exist"
    )
    assert rows(database) == before


def test_a_cycle_is_409_and_moves_keep_history(admin: Api, database: support.TestDatabase) -> None:
    build(admin)
    before = rows(database)
    assert refused(admin, "/asset/move-asset", {"name": "b1", "parent": "b1"}, 409) == (
        "Asset 'b1' cannot move under itself: that makes a cycle"
    )
    assert refused(admin, "/asset/move-asset", {"name": "campus", "parent": "r1"}, 409) == (
        "Asset 'campus' cannot move under 'r1', which is below it: that makes a cycle"
    )
    assert rows(database) == before
    admin.ok("/asset/move-asset", {"name": "r1", "parent": "b2"})
    admin.ok("/asset/move-asset", {"name": "r1", "parent": None})
    assert shape(admin.ok("/asset/asset-tree")) == [["campus", ["b1", "b2"]], "r1"]
    history = admin.ok("/asset/list-asset-moves", {"name": "r1"})
    assert [h["parent"] for h in history] == [None, "b2", "b1"]
    assert all(h["moved_at"].endswith("Z") for h in history)
    assert history[0]["moved_at"] >= history[1]["moved_at"] >= history[2]["moved_at"]
    # The move without a parent key is a 422: making a root must be said.
    assert admin.post("/asset/move-asset", {"name": "r1"}).status_code == 422


def test_attachments_history_and_recursive_listing(admin: Api) -> None:
    build(admin)

    def attach(asset: str, uid: str, when: str) -> None:
        body = {"asset": asset, "unique_identifier": uid, "installation_datetime": when}
        admin.ok("/asset/attach-sensor", body, 201)

    attach("r1", "s1", "2026-01-01T00:00:00Z")
    attach("b2", "s2", "2026-01-01T00:00:00Z")
    assert admin.ok("/asset/list-asset-sensors", {"asset": "b1"}) == []
    deep = admin.ok("/asset/list-asset-sensors", {"asset": "b1", "recursive": True})
    assert deep == [
        {
            "unique_identifier": "s1",
            "name": None,
            "type_name": "thermo",
            "asset": "r1",
            "installation_datetime": "2026-01-01T00:00:00Z",
        }
    ]
    everything = admin.ok("/asset/list-asset-sensors", {"asset": "campus", "recursive": True})
    assert [s["unique_identifier"] for s in everything] == ["s1", "s2"]
    # Reattached: the latest attachment is the current one; history keeps both.
    attach("b1", "s1", "2026-02-01T00:00:00Z")
    assert admin.ok("/asset/list-asset-sensors", {"asset": "r1"}) == []
    assert admin.ok("/asset/list-sensor-attachments", {"unique_identifier": "s1"}) == [
        {"asset": "b1", "installation_datetime": "2026-02-01T00:00:00Z"},
        {"asset": "r1", "installation_datetime": "2026-01-01T00:00:00Z"},
    ]
    body = {"asset": "r1", "unique_identifier": "s1", "installation_datetime": "2026-02-01T00:00Z"}
    assert refused(admin, "/asset/attach-sensor", body, 409) == (
        "Sensor 's1' already has an attachment at that installation_datetime"
    )
    body = {"asset": "r1", "unique_identifier": "nope"}
    assert refused(admin, "/asset/attach-sensor", body, 400) == "Sensor 'nope' does not exist"
    # Deleting is refused while children or sensors hang on the asset.
    assert refused(admin, "/asset/delete-asset", {"name": "campus"}, 409) == (
        "Asset 'campus' has children ('b1', 'b2'): move or delete them first"
    )
    admin.ok("/asset/delete-asset", {"name": "r1"})
    assert refused(admin, "/asset/delete-asset", {"name": "b2"}, 409) == (
        "Asset 'b2' has sensors attached ('s2'): attach them elsewhere or detach them first"
    )
    admin.ok("/asset/detach-sensor", {"unique_identifier": "s2"}, 201)
    admin.ok("/asset/delete-asset", {"name": "b2"})
    assert shape(admin.ok("/asset/asset-tree")) == [["campus", ["b1"]]]
    # The deleted room's attachment went with it; the detachment stays in s2's history.
    assert [
        a["asset"] for a in admin.ok("/asset/list-sensor-attachments", {"unique_identifier": "s1"})
    ] == ["b1"]
    assert [
        a["asset"] for a in admin.ok("/asset/list-sensor-attachments", {"unique_identifier": "s2"})
    ] == [None]


def test_a_viewer_reads_the_tree_but_changes_nothing(admin: Api, live_host: LocalHost) -> None:
    build(admin)
    admin.ok("/user/create-user", {"email": "v@x.org", "password": "p", "role": "viewer"}, 201)
    viewer = Api(live_host.api, "v@x.org", "p")
    try:
        assert shape(viewer.ok("/asset/asset-tree")) == [["campus", [["b1", ["r1"]], "b2"]]]
        assert viewer.get("/asset/list-asset-types").status_code == 200
        for path, body in [
            ("/asset/insert-asset", {"name": "x", "type_name": "Room"}),
            ("/asset/move-asset", {"name": "r1", "parent": None}),
            ("/asset/attach-sensor", {"asset": "r1", "unique_identifier": "s1"}),
            ("/asset/delete-asset", {"name": "r1"}),
        ]:
            assert viewer.post(path, body).status_code == 403, path
    finally:
        viewer.close()
