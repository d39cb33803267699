"""/sta/v1.1: the SensorThings API read by Fraunhofer's frost-sta-client over HTTP, and
its errors read raw (docs/api.md, SensorThings API)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import frost_sta_client as fsc
import httpx
import pytest
from frost_sta_client.service.auth_handler import AuthHandler

from tests.support import Api

T0 = datetime(2024, 3, 1, tzinfo=UTC)
MINUTES = 250  # more than two default pages of 100
WEATHER = {
    "name": "weather",
    "description": "weather station",
    "measures": [
        {"name": "temperature", "units": "degC", "datatype": "float"},
        {"name": "count", "units": None, "datatype": "integer"},
        {"name": "icon", "units": "", "datatype": "string"},
    ],
}


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


class HeaderAuth(AuthHandler):
    """frost-sta-client sends `requests` auth from its handler: here a header of ours
    (a bearer token or an API key) instead of HTTP basic."""

    def __init__(self, name: str, value: str) -> None:
        super().__init__()
        self.header = (name, value)

    def add_auth_header(self) -> Callable[[Any], Any]:
        def sign(request: Any) -> Any:
            request.headers[self.header[0]] = self.header[1]
            return request

        return sign


def readings(api: Api, uid: str, measure: str, values: list[Any], start: datetime = T0) -> None:
    stamps = [iso(start + timedelta(minutes=i)) for i in range(len(values))]
    api.ok(
        "/sensor/insert-sensor-readings",
        {
            "measure_name": measure,
            "unique_identifier": uid,
            "readings": values,
            "timestamps": stamps,
        },
        201,
    )


@pytest.fixture
def twin(admin: Api) -> Api:
    """Two weather stations, one installed at a place with latitude and longitude, the
    other attached to an asset."""
    admin.ok("/sensor/insert-sensor-type", WEATHER, 201)
    for uid, name in (("ws-1", "Station 1"), ("ws-2", "Annex")):
        admin.ok(
            "/sensor/insert-sensor",
            {"type_name": "weather", "unique_identifier": uid, "name": name, "notes": "roof"},
            201,
        )
    readings(admin, "ws-1", "temperature", [round(i * 0.1, 1) for i in range(MINUTES)])
    readings(admin, "ws-1", "icon", ["sun", "rain", "cloud"])
    readings(admin, "ws-2", "temperature", [20.0 + i for i in range(10)])
    readings(admin, "ws-2", "count", [1, 2, 3])
    place = [
        {"name": "latitude", "units": "deg", "datatype": "float"},
        {"name": "longitude", "units": "deg", "datatype": "float"},
    ]
    schema = admin.ok(
        "/location/insert-location", {"identifiers": place, "values": [51.5, -0.1]}, 201
    )["schema_name"]
    admin.ok(
        "/sensor/insert-sensor-location",
        {
            "unique_identifier": "ws-1",
            "schema_name": schema,
            "coordinates": {"latitude": 51.5, "longitude": -0.1},
            "installation_datetime": iso(T0 - timedelta(days=1)),
        },
        201,
    )
    admin.ok("/asset/insert-asset-type", {"name": "building", "brick_class": "brick:Building"}, 201)
    admin.ok("/asset/insert-asset", {"name": "Lab", "type_name": "building"}, 201)
    admin.ok("/asset/attach-sensor", {"asset": "Lab", "unique_identifier": "ws-2"}, 201)
    return admin


@pytest.fixture
def sta(live_host: Any, twin: Api) -> fsc.SensorThingsService:
    assert twin.token is not None
    return fsc.SensorThingsService(
        f"{live_host.api}/sta/v1.1",
        auth_handler=HeaderAuth("Authorization", f"Bearer {twin.token}"),
    )


def get(api: Api, path: str, **params: Any) -> Any:
    reply = api.get(f"/sta/v1.1/{path}", params=params)
    assert reply.status_code == 200, (path, reply.status_code, reply.text)
    return reply.json()


def stream_id(api: Api, uid: str, measure: str) -> str:
    found = get(
        api,
        "Datastreams",
        **{
            "$filter": f"Sensor/metadata eq 'weather' and substringof('{uid}', description) "
            f"and ObservedProperty/name eq '{measure}'"
        },
    )["value"]
    assert len(found) == 1, found
    return str(found[0]["@iot.id"])


def test_service_root_lists_the_entity_sets(live_host: Any, twin: Api) -> None:
    root = get(twin, "")
    names = [entry["name"] for entry in root["value"]]
    assert names == [
        "Things",
        "Locations",
        "HistoricalLocations",
        "Sensors",
        "ObservedProperties",
        "Datastreams",
        "Observations",
        "FeaturesOfInterest",
    ]
    assert root["value"][0]["url"] == f"{live_host.api}/sta/v1.1/Things"
    conformance = root["serverSettings"]["conformance"]
    assert "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data" in conformance


def test_things_and_datastreams_with_units(live_host: Any, sta: fsc.SensorThingsService) -> None:
    things = list(sta.things().query().orderby("name", "asc").list())
    assert [thing.name for thing in things] == ["Lab", "Station 1"]
    station = things[1]
    assert isinstance(station.id, str) and station.id.startswith("sensor-")
    assert station.properties == {"unique_identifier": "ws-1", "sensor_type": "weather"}
    assert station.self_link == f"{live_host.api}/sta/v1.1/Things('{station.id}')"
    # A string id goes quoted into the URL, as the client writes it.
    assert sta.things().find(station.id).name == "Station 1"
    streams = list(station.get_datastreams().query().list())
    assert sorted(s.name for s in streams) == [
        "Station 1 count",
        "Station 1 icon",
        "Station 1 temperature",
    ]
    temperature = next(s for s in streams if s.name.endswith("temperature"))
    assert temperature.unit_of_measurement.symbol == "degC"
    assert temperature.observation_type.endswith("OM_Measurement")


def test_observations_in_a_time_window(sta: fsc.SensorThingsService, twin: Api) -> None:
    stream = sta.datastreams().find(stream_id(twin, "ws-1", "temperature"))
    window = (
        f"phenomenonTime ge {iso(T0 + timedelta(minutes=10))} "
        f"and phenomenonTime lt {iso(T0 + timedelta(minutes=20))}"
    )
    found = list(
        stream.get_observations().query().filter(window).orderby("phenomenonTime", "desc").list()
    )
    assert [o.result for o in found] == [round(i * 0.1, 1) for i in range(19, 9, -1)]
    assert found[0].phenomenon_time == iso(T0 + timedelta(minutes=19))
    assert found[0].result_time == iso(T0 + timedelta(minutes=19))
    # Arithmetic and functions in the filter; strings compare as strings.
    hot = (
        stream.get_observations()
        .query()
        .filter("result mul 10 ge 245 and year(phenomenonTime) eq 2024")
    )
    assert [o.result for o in hot.list()] == [24.5, 24.6, 24.7, 24.8, 24.9]
    icons = sta.datastreams().find(stream_id(twin, "ws-1", "icon")).get_observations()
    assert [o.result for o in icons.query().filter("result eq 'rain'").list()] == ["rain"]
    past = stream.get_observations().query().filter("phenomenonTime gt now()").list()
    assert list(past) == []


def test_paging_follows_the_next_link(
    live_host: Any, sta: fsc.SensorThingsService, twin: Api
) -> None:
    ident = stream_id(twin, "ws-1", "temperature")
    first = get(twin, f"Datastreams('{ident}')/Observations")
    assert len(first["value"]) == 100
    link = first["@iot.nextLink"]
    assert link.startswith(f"{live_host.api}/sta/v1.1/Datastreams('{ident}')/Observations?")
    assert "$skip=100" in link and "$top=100" in link
    # The client walks every page through the links.
    every = list(sta.datastreams().find(ident).get_observations().query().list())
    assert len(every) == MINUTES
    assert len({o.id for o in every}) == MINUTES
    capped = twin.get(f"/sta/v1.1/Datastreams('{ident}')/Observations", params={"$top": 1001})
    assert capped.status_code == 400 and "$top" in capped.json()["detail"]
    last = get(twin, f"Datastreams('{ident}')/Observations", **{"$top": 50, "$skip": 200})
    assert len(last["value"]) == 50 and "@iot.nextLink" not in last


def test_expand_nested_with_options(sta: fsc.SensorThingsService, twin: Api) -> None:
    expand = (
        "Datastreams($filter=ObservedProperty/name eq 'temperature';"
        "$expand=Observations($top=2;$orderby=phenomenonTime desc),ObservedProperty)"
    )
    things = list(sta.things().query().filter("name eq 'Station 1'").expand(expand).list())
    assert len(things) == 1
    (stream,) = list(things[0].datastreams)
    assert stream.observed_property.name == "temperature"
    # The page the server expanded (iterating the list would follow its next link).
    assert [o.result for o in stream.observations.entities] == [24.9, 24.8]
    raw = get(twin, "Things", **{"$filter": "name eq 'Station 1'", "$expand": expand})
    expanded = raw["value"][0]["Datastreams"][0]
    assert "Observations@iot.nextLink" in expanded
    assert "Thing@iot.navigationLink" in expanded
    # `A/B` expands B inside A.
    path = get(twin, "Observations", **{"$top": 1, "$expand": "Datastream/Thing"})
    assert path["value"][0]["Datastream"]["Thing"]["name"] in ("Station 1", "Lab")


def test_select_orderby_count(twin: Api) -> None:
    page = get(twin, "Things", **{"$select": "id,name", "$orderby": "name desc"})
    assert [set(t) for t in page["value"]] == [{"@iot.id", "@iot.selfLink", "name"}] * 2
    assert [t["name"] for t in page["value"]] == ["Station 1", "Lab"]
    counted = get(twin, "Observations", **{"$count": "true", "$top": 1})
    assert counted["@iot.count"] == MINUTES + 3 + 10 + 3
    assert len(counted["value"]) == 1
    warm = get(
        twin,
        "Observations",
        **{
            "$count": "true",
            "$filter": "result ge 25 and result sub 20 lt 8",
            "$select": "result",
            "$orderby": "result desc",
        },
    )
    assert warm["@iot.count"] == 3
    assert warm["value"] == [{"result": 27.0}, {"result": 26.0}, {"result": 25.0}]
    assert (
        get(twin, "Sensors", **{"$filter": "substringof('Stat', name)"})["value"][0]["name"]
        == "Station 1"
    )


def test_navigation_paths_ids_and_properties(live_host: Any, twin: Api) -> None:
    thing = get(twin, "Things", **{"$filter": "name eq 'Station 1'"})["value"][0]
    key = thing["@iot.id"]
    assert thing["Datastreams@iot.navigationLink"] == f"{thing['@iot.selfLink']}/Datastreams"
    located = get(twin, f"Things('{key}')/Locations")["value"]
    assert [loc["location"] for loc in located] == [{"type": "Point", "coordinates": [-0.1, 51.5]}]
    history = get(twin, f"Things('{key}')/HistoricalLocations", **{"$expand": "Locations"})
    assert history["value"][0]["time"] == iso(T0 - timedelta(days=1))
    assert history["value"][0]["Locations"][0]["@iot.id"] == located[0]["@iot.id"]
    ident = stream_id(twin, "ws-1", "temperature")
    assert get(twin, f"Datastreams('{ident}')/Thing")["@iot.id"] == key
    assert (
        get(twin, f"Datastreams('{ident}')/unitOfMeasurement")["unitOfMeasurement"]["symbol"]
        == "degC"
    )
    name = twin.get(f"/sta/v1.1/Datastreams('{ident}')/Sensor/name/$value")
    assert name.status_code == 200 and name.text == "Station 1"
    assert name.headers["content-type"].startswith("text/plain")
    first = get(twin, f"Datastreams('{ident}')/Observations", **{"$top": 1})["value"][0]
    again = get(twin, f"Observations('{first['@iot.id']}')")
    assert again["result"] == first["result"] == 0.0
    assert again["@iot.selfLink"] == f"{live_host.api}/sta/v1.1/Observations('{first['@iot.id']}')"
    feature = get(twin, f"Observations('{first['@iot.id']}')/FeatureOfInterest")
    assert feature["feature"]["type"] == "Point"
    measure = get(twin, f"Datastreams('{ident}')/ObservedProperty")
    assert (
        get(twin, f"ObservedProperties({measure['@iot.id']})/Datastreams", **{"$count": "true"})[
            "@iot.count"
        ]
        == 2
    )


@pytest.mark.parametrize(
    ("path", "params", "status", "says"),
    [
        ("Observations", {"$filter": "result gt"}, 400, "result gt"),
        ("Observations", {"$filter": "colour eq 'red'"}, 400, "colour"),
        ("Observations", {"$filter": "nosuch(result)"}, 400, "nosuch"),
        ("Things", {"$filter": "name gt 5"}, 400, "cannot be evaluated"),
        ("Things", {"$orderby": "weight desc"}, 400, "weight"),
        ("Things", {"$expand": "Wheels"}, 400, "Wheels"),
        ("Things", {"$select": "colour"}, 400, "colour"),
        ("Things", {"$skip": "-1"}, 400, "$skip"),
        ("Things", {"$format": "xml"}, 400, "$format"),
        ("Gadgets", {}, 404, "Gadgets"),
        ("Things('sensor-999')", {}, 404, "Thing"),
        ("Things('nonsense')", {}, 404, "nonsense"),
        ("Things('sensor-1')/colour", {}, 404, "colour"),
        ("Datastreams(1)", {}, 404, "1"),
    ],
)
def test_bad_requests_are_named(
    twin: Api, path: str, params: dict[str, str], status: int, says: str
) -> None:
    reply = twin.get(f"/sta/v1.1/{path}", params=params)
    assert reply.status_code == status, reply.text
    assert says in reply.json()["detail"]


def test_the_same_credentials_authorise_it(live_host: Any, twin: Api) -> None:
    url = f"{live_host.api}/sta/v1.1/Things"
    assert httpx.get(url).status_code == 401
    reader = twin.ok("/apikey/create-api-key", {"name": "reader", "scopes": ["read"]}, 201)["key"]
    writer = twin.ok(
        "/apikey/create-api-key", {"name": "writer", "scopes": ["readings:write"]}, 201
    )["key"]
    assert httpx.get(url, headers={"X-API-Key": reader}).status_code == 200
    refused = httpx.get(url, headers={"Authorization": f"ApiKey {writer}"})
    assert refused.status_code == 403, refused.text
    # The entity sets are not cut down to a key's sensors: such a key may not read them.
    limited = twin.ok(
        "/apikey/create-api-key", {"name": "ws-1", "scopes": ["read"], "sensors": ["ws-1"]}, 201
    )["key"]
    refused = httpx.get(url, headers={"X-API-Key": limited})
    assert refused.status_code == 403 and "limited to some sensors" in refused.json()["detail"]
    keyed = fsc.SensorThingsService(
        f"{live_host.api}/sta/v1.1", auth_handler=HeaderAuth("X-API-Key", reader)
    )
    assert len(list(keyed.sensors().query().list())) == 2


def test_things_are_assets_and_unattached_sensors(sta: fsc.SensorThingsService, twin: Api) -> None:
    (lab,) = sta.things().query().filter("name eq 'Lab'").list()
    assert lab.id.startswith("asset-")
    assert lab.properties == {
        "asset_type": "building",
        "brick_class": "brick:Building",
        "parent": None,
    }
    # The asset's Datastreams are those of the sensors attached to it now.
    streams = sorted(s.name for s in lab.get_datastreams().query().list())
    assert streams == ["Annex count", "Annex icon", "Annex temperature"]
    things = {t.name for t in sta.things().query().list()}
    assert things == {"Lab", "Station 1"}
    # While attached, the sensor is no Thing of its own.
    (sensor,) = sta.sensors().query().filter("name eq 'Annex'").list()
    assert twin.get(f"/sta/v1.1/Things('sensor-{sensor.id}')").status_code == 404
    twin.ok("/asset/detach-sensor", {"unique_identifier": "ws-2"}, 201)
    # Detached, the sensor is a Thing of its own again, with its Datastreams.
    (annex,) = sta.things().query().filter("name eq 'Annex'").list()
    assert annex.id == f"sensor-{sensor.id}"
    assert len(list(annex.get_datastreams().query().list())) == 3
    assert list(lab.get_datastreams().query().list()) == []
    assert twin.get("/sta/v1.1/Things('asset-99999')").status_code == 404
