"""/service over HTTP: DTBase's contract (docs/api.md, Services) with
the changes of "Where this API differs from DTBase" (Service runs in particular).

The services called are a small real HTTP server on 127.0.0.1 in this process that
records what it received and answers JSON objects, lists, scalars, non-JSON, slowly, or
a trickle; an unreachable service is a bound port that does not listen.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from tests.support import Api, LocalHost, TestDatabase

ROUTES = [
    "insert-service",
    "delete-service",
    "insert-parameter-set",
    "delete-parameter-set",
    "list-parameter-sets",
    "edit-parameter-set",
    "run-service",
    "list-runs",
]
RUN_KEYS = {
    "service_name",
    "parameter_set_name",
    "parameters",
    "response_json",
    "response_status_code",
    "timestamp",
}
CALLED = {"detail": "Service called successfully."}
OBJECT_REPLY = {"ok": True, "n": 1}


def called(status_code: int = 200, response_json: Any = None) -> dict[str, Any]:
    """run-service's 200: DTBase's detail, plus the service's status code and JSON reply
    (docs/api.md, Service runs; DTBase answered the detail alone)."""
    return {**CALLED, "status_code": status_code, "response_json": response_json}


LIST_REPLY = [1, 2.5, "three", None, True, {"four": 4}]
ODD_TEXT = {"nul": "a\u0000b", "unicode": "ünïcødé 😀", "sql": "'); drop table service; --"}


# ------------------------------------------------------------------ the service side


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes
    content_type: str | None
    content_length: str | None
    chunked: bool


class _Handler(BaseHTTPRequestHandler):
    server: _RecordingServer

    def _handle(self) -> None:
        length = self.headers.get("Content-Length")
        chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "")
        body = self.rfile.read(int(length)) if length else b""
        url = urlsplit(self.path)
        self.server.calls.append(
            Received(
                self.command,
                url.path,
                parse_qs(url.query, keep_blank_values=True),
                body,
                self.headers.get("Content-Type"),
                length,
                chunked,
            )
        )
        answer = self.server.answers.get(url.path)
        if answer is None:
            self._send(404, b'{"detail": "no such path"}')
        else:
            answer(self)

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, value: Any, status: int = 200) -> None:
        self._send(status, json.dumps(value).encode())

    def log_message(self, *args: Any) -> None:
        pass


class _RecordingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.calls: list[Received] = []
        self.answers: dict[str, Callable[[_Handler], None]] = {}
        self.release = threading.Event()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


def _slow(handler: _Handler) -> None:
    handler.server.release.wait(10)
    handler.send_json({"late": True})


def _trickle(handler: _Handler) -> None:
    """Headers at once, then one byte every 0.25 s: no single read waits a second."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", "24")
    handler.end_headers()
    for _ in range(24):
        if handler.server.release.wait(0.25):
            return
        handler.wfile.write(b" ")
        handler.wfile.flush()


@pytest.fixture
def service_host() -> Iterator[_RecordingServer]:
    server = _RecordingServer()
    server.answers.update(
        {
            "/object": lambda h: h.send_json({"ok": True, "n": 1}),
            "/list": lambda h: h.send_json(LIST_REPLY),
            "/scalar": lambda h: h.send_json(42),
            "/string": lambda h: h.send_json("just a string"),
            "/null": lambda h: h.send_json(None),
            "/text": lambda h: h._send(200, b"plain text, not JSON", "text/plain"),
            "/teapot": lambda h: h.send_json({"error": "short and stout"}, 418),
            "/empty": lambda h: h._send(204, b""),
            "/odd": lambda h: h.send_json(ODD_TEXT),
            "/slow": _slow,
            "/trickle": _trickle,
        }
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A port that is bound (so nobody else takes it) but not listening: connection refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/nothing-here"


# ------------------------------------------------------------------ helpers


def add_service(api: Api, name: str, url: str, method: str = "POST") -> None:
    assert api.ok(
        "/service/insert-service", {"name": name, "url": url, "http_method": method}, 201
    ) == {"detail": "Service created successfully."}


def add_set(api: Api, service: str, name: str, parameters: dict[str, Any]) -> None:
    body = {"service_name": service, "name": name, "parameters": parameters}
    assert api.ok("/service/insert-parameter-set", body, 201) == {
        "detail": "Parameter set created successfully."
    }


def runs(api: Api, body: Any = None) -> list[dict[str, Any]]:
    rows = api.ok("/service/list-runs", body, 200)
    for row in rows:
        assert set(row) == RUN_KEYS
    return rows


def sets(api: Api, body: Any = None) -> list[dict[str, Any]]:
    return api.ok("/service/list-parameter-sets", body, 200)


def post_raw(api: Api, path: str, raw: bytes) -> Any:
    return api.post(path, content=raw, headers={"Content-Type": "application/json"})


def assert_422(reply: Any, field: str) -> None:
    """422 in pydantic's list shape, naming `field` (or the whole body when it is "")."""
    assert reply.status_code == 422, reply.text
    loc = reply.json()["detail"][0]["loc"]
    assert loc[:2] == (["body", field] if field else ["body"]), reply.text


# ------------------------------------------------------------------ services


def test_insert_list_delete_service(admin: Api) -> None:
    add_service(admin, "first", "http://example.com/run", "POST")
    add_service(admin, "second", "HTTPS://Example.com:8443/a?b=c", "GET")
    add_service(admin, "third", "http://[::1]:8080/", "PUT")
    add_service(admin, "fourth", "http://127.0.0.1/x", "DELETE")
    expected = [
        {"name": "first", "url": "http://example.com/run", "http_method": "POST"},
        {"name": "second", "url": "HTTPS://Example.com:8443/a?b=c", "http_method": "GET"},
        {"name": "third", "url": "http://[::1]:8080/", "http_method": "PUT"},
        {"name": "fourth", "url": "http://127.0.0.1/x", "http_method": "DELETE"},
    ]
    assert admin.get("/service/list-services").json() == expected

    reply = admin.post(
        "/service/insert-service",
        {"name": "first", "url": "http://other.example/", "http_method": "GET"},
    )
    assert (reply.status_code, reply.json()) == (409, {"detail": "Service already exists."})
    assert admin.get("/service/list-services").json() == expected

    assert admin.ok("/service/delete-service", {"name": "second"}) == {
        "detail": "Service deleted successfully."
    }
    reply = admin.post("/service/delete-service", {"name": "second"})
    assert (reply.status_code, reply.json()) == (400, {"detail": "Service does not exist."})
    assert [s["name"] for s in admin.get("/service/list-services").json()] == [
        "first",
        "third",
        "fourth",
    ]


@pytest.mark.parametrize("method", ["PATCH", "HEAD", "", " GET", "gets", 1, None, True])
def test_http_method_must_be_one_of_four(admin: Api, method: Any) -> None:
    reply = admin.post(
        "/service/insert-service",
        {"name": "s", "url": "http://example.com/", "http_method": method},
    )
    assert_422(reply, "http_method")
    assert admin.get("/service/list-services").json() == []


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/file",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "localhost:8000/run",
        "example.com/run",
        "/relative/path",
        "//example.com/no-scheme",
        "http://",
        "http:///path-only",
        "http:no-slashes",
        "http://exa mple.com/",
        " http://example.com/",
        "http://example.com/\nx",
        "http://example.com:abc/",
        "http://example.com:99999/",
        "",
        "http://" + "a" * 2100 + ".com/",
        42,
        None,
    ],
)
def test_only_http_urls_with_a_host(admin: Api, url: Any) -> None:
    reply = admin.post("/service/insert-service", {"name": "s", "url": url, "http_method": "GET"})
    assert_422(reply, "url")
    assert admin.get("/service/list-services").json() == []


def test_service_names(admin: Api) -> None:
    for name in ("", "x" * 101, None, 5):
        reply = admin.post(
            "/service/insert-service",
            {"name": name, "url": "http://example.com/", "http_method": "GET"},
        )
        assert_422(reply, "name")
    for missing in ("name", "url", "http_method"):
        body = {"name": "s", "url": "http://example.com/", "http_method": "GET"}
        del body[missing]
        assert_422(admin.post("/service/insert-service", body), missing)
    assert_422(post_raw(admin, "/service/insert-service", b"[]"), "")
    reply = admin.post("/service/insert-service")
    assert reply.status_code == 422
    assert admin.get("/service/list-services").json() == []

    odd = ["ünïcødé 😀", "'); drop table service; --", "x" * 100]
    for name in odd:
        add_service(admin, name, "http://example.com/", "GET")
    assert [s["name"] for s in admin.get("/service/list-services").json()] == odd
    # Extra keys are ignored, as DTBase's bodies do.
    admin.ok(
        "/service/insert-service",
        {"name": "extra", "url": "http://example.com/", "http_method": "GET", "is_existing": 1},
        201,
    )


# ------------------------------------------------------------------ parameter sets


def test_parameter_sets(admin: Api) -> None:
    add_service(admin, "alpha", "http://example.com/a")
    add_service(admin, "beta", "http://example.com/b")
    p1 = {"n": 1, "x": 1.0, "flag": True, "nested": {"list": [1, "two", None]}, "none": None}
    add_set(admin, "alpha", "P1", p1)
    add_set(admin, "alpha", "P2", {})
    add_set(admin, "beta", "P1", {"other": "service"})  # set names are per service

    expected = [
        {"service_name": "alpha", "name": "P1", "parameters": p1},
        {"service_name": "alpha", "name": "P2", "parameters": {}},
        {"service_name": "beta", "name": "P1", "parameters": {"other": "service"}},
    ]
    assert sets(admin) == expected  # no body at all
    assert post_raw(admin, "/service/list-parameter-sets", b"null").json() == expected
    assert sets(admin, {}) == expected
    assert sets(admin, {"service_name": "alpha"}) == expected[:2]
    assert sets(admin, {"service_name": "nobody"}) == []
    # Types are kept: 1 stays an int, 1.0 a float, true a bool.
    first = post_raw(admin, "/service/list-parameter-sets", b'{"service_name": "alpha"}')
    assert b'"n":1,' in first.content and b'"x":1.0' in first.content

    reply = admin.post(
        "/service/insert-parameter-set", {"service_name": "alpha", "name": "P1", "parameters": {}}
    )
    assert (reply.status_code, reply.json()) == (409, {"detail": "Parameter set already exists."})
    reply = admin.post(
        "/service/insert-parameter-set", {"service_name": "nobody", "name": "P", "parameters": {}}
    )
    assert (reply.status_code, reply.json()) == (400, {"detail": "Service does not exist."})
    assert sets(admin) == expected


@pytest.mark.parametrize("parameters", [None, [], [1, 2], "text", 3, True])
def test_parameter_set_must_be_an_object(admin: Api, parameters: Any) -> None:
    add_service(admin, "alpha", "http://example.com/a")
    add_set(admin, "alpha", "P", {"keep": 1})
    for path in ("/service/insert-parameter-set", "/service/edit-parameter-set"):
        body = {"service_name": "alpha", "name": "P" if "edit" in path else "Q"}
        assert_422(admin.post(path, {**body, "parameters": parameters}), "parameters")
        assert_422(admin.post(path, body), "parameters")
    assert sets(admin) == [{"service_name": "alpha", "name": "P", "parameters": {"keep": 1}}]


def test_parameter_set_names_and_filters(admin: Api) -> None:
    add_service(admin, "alpha", "http://example.com/a")
    for name in ("", "x" * 101, None):
        reply = admin.post(
            "/service/insert-parameter-set",
            {"service_name": "alpha", "name": name, "parameters": {}},
        )
        assert_422(reply, "name")
    assert_422(admin.post("/service/list-parameter-sets", {"service_name": 5}), "service_name")
    assert_422(post_raw(admin, "/service/list-parameter-sets", b"[]"), "")
    assert sets(admin) == []


def test_edit_and_delete_parameter_set(admin: Api) -> None:
    add_service(admin, "alpha", "http://example.com/a")
    add_service(admin, "beta", "http://example.com/b")
    add_set(admin, "alpha", "P", {"a": 1, "b": 2})
    add_set(admin, "beta", "P", {"beta": True})

    # The whole object is replaced, not merged.
    assert admin.ok(
        "/service/edit-parameter-set",
        {"service_name": "alpha", "name": "P", "parameters": {"c": [3]}},
    ) == {"detail": "Parameter set edited successfully."}
    assert sets(admin, {"service_name": "alpha"}) == [
        {"service_name": "alpha", "name": "P", "parameters": {"c": [3]}}
    ]
    for service, name in (("alpha", "missing"), ("nobody", "P")):
        reply = admin.post(
            "/service/edit-parameter-set",
            {"service_name": service, "name": name, "parameters": {}},
        )
        assert (reply.status_code, reply.json()) == (
            400,
            {"detail": "Parameter set does not exist."},
        )
        reply = admin.post("/service/delete-parameter-set", {"service_name": service, "name": name})
        assert (reply.status_code, reply.json()) == (
            400,
            {"detail": "Parameter set does not exist."},
        )

    assert admin.ok("/service/delete-parameter-set", {"service_name": "alpha", "name": "P"}) == {
        "detail": "Parameter set deleted successfully."
    }
    # Only alpha's P went; beta's set of the same name stays.
    assert sets(admin) == [{"service_name": "beta", "name": "P", "parameters": {"beta": True}}]
    reply = admin.post("/service/delete-parameter-set", {"service_name": "alpha", "name": "P"})
    assert reply.status_code == 400


# ------------------------------------------------------------------ running services


def test_run_post_service_with_sets_and_parameters(
    admin: Api, service_host: _RecordingServer
) -> None:
    add_service(admin, "svc", service_host.url("/object"), "POST")
    stored = {"from": "set", "n": 1, "x": 2.5, "deep": {"l": [1, None]}}
    add_set(admin, "svc", "P", stored)
    before = datetime.now(UTC)

    assert admin.ok("/service/run-service", {"service_name": "svc", "parameter_set_name": "P"}) == (
        called(200, OBJECT_REPLY)
    )
    # Explicit parameters win over the set's; the set is still logged.
    explicit = {"from": "call"}
    assert admin.ok(
        "/service/run-service",
        {"service_name": "svc", "parameter_set_name": "P", "parameters": explicit},
    ) == called(200, OBJECT_REPLY)
    # A list is accepted as parameters; it goes as the JSON body as it is.
    assert admin.ok("/service/run-service", {"service_name": "svc", "parameters": [1, "a"]}) == (
        called(200, OBJECT_REPLY)
    )
    # No parameters at all: no body.
    assert admin.ok("/service/run-service", {"service_name": "svc"}) == called(200, OBJECT_REPLY)
    # `{}` is given parameters, not "none": it wins over the set's.
    assert admin.ok(
        "/service/run-service",
        {"service_name": "svc", "parameter_set_name": "P", "parameters": {}},
    ) == called(200, OBJECT_REPLY)
    after = datetime.now(UTC)

    calls = service_host.calls
    assert [c.method for c in calls] == ["POST"] * 5
    assert [json.loads(c.body) if c.body else None for c in calls] == [
        stored,
        explicit,
        [1, "a"],
        None,
        {},
    ]
    assert calls[0].content_type == "application/json"
    assert calls[3].body == b"" and calls[3].content_length in (None, "0")

    log = runs(admin)
    reply = {"ok": True, "n": 1}
    assert [(r["parameter_set_name"], r["parameters"], r["response_json"]) for r in log] == [
        ("P", stored, reply),
        ("P", explicit, reply),
        (None, [1, "a"], reply),
        (None, None, reply),
        ("P", {}, reply),
    ]
    assert {r["response_status_code"] for r in log} == {200}
    assert {r["service_name"] for r in log} == {"svc"}
    stamps = [datetime.fromisoformat(r["timestamp"]) for r in log]
    assert all(r["timestamp"].endswith("Z") for r in log)
    assert stamps == sorted(stamps)
    assert before <= stamps[0] and stamps[-1] <= after


def test_http_method_is_taken_in_any_case_and_stored_upper_case(admin: Api) -> None:
    for name, method in (("a", "get"), ("b", "Post"), ("c", "dElEtE")):
        add_service(admin, name, "http://127.0.0.1:9/run", method)
    listed = admin.get("/service/list-services").json()
    assert [s["http_method"] for s in listed] == ["GET", "POST", "DELETE"]


def test_parameters_go_as_json_and_flat_ones_also_as_query(
    admin: Api, service_host: _RecordingServer
) -> None:
    """As DTBase: GET and DELETE functions read `req.get_json()`, so they get the body too."""
    add_service(admin, "getter", service_host.url("/object?fixed=yes"), "GET")
    add_service(admin, "deleter", service_host.url("/object"), "DELETE")
    add_service(admin, "putter", service_host.url("/object"), "PUT")
    flat = {"a": 1, "b": 2.5, "c": True, "d": "text é", "e": None}
    nested = {"a": {"b": 1}}
    for service in ("getter", "deleter", "putter"):
        for parameters in (flat, nested, [1, 2]):
            admin.ok("/service/run-service", {"service_name": service, "parameters": parameters})

    calls = service_host.calls
    assert [c.method for c in calls] == ["GET"] * 3 + ["DELETE"] * 3 + ["PUT"] * 3
    # Every method sends the JSON body, whatever its shape.
    assert [json.loads(c.body) for c in calls] == [flat, nested, [1, 2]] * 3
    assert all(c.content_type == "application/json" for c in calls)
    # For GET and DELETE a flat object also goes as the query string (merged with the URL's).
    assert calls[0].query == {
        "fixed": ["yes"],
        "a": ["1"],
        "b": ["2.5"],
        "c": ["true"],
        "d": ["text é"],
        "e": [""],
    }
    assert calls[1].query == {"fixed": ["yes"]} and calls[2].query == {"fixed": ["yes"]}
    assert calls[3].query == {"a": ["1"], "b": ["2.5"], "c": ["true"], "d": ["text é"], "e": [""]}
    assert calls[4].query == {} and calls[5].query == {}
    assert all(c.query == {} for c in calls[6:])
    # The log records the parameters of each run as given.
    assert [r["parameters"] for r in runs(admin)] == [flat, nested, [1, 2]] * 3


def test_replies_of_every_kind_are_logged(
    admin: Api, service_host: _RecordingServer, clean_db: TestDatabase
) -> None:
    paths = [
        "/object",
        "/list",
        "/scalar",
        "/string",
        "/null",
        "/text",
        "/teapot",
        "/empty",
        "/odd",
    ]
    replies = []
    for path in paths:
        add_service(admin, path, service_host.url(path), "POST")
        # Whatever the service answered, run-service answers 200 (as DTBase), with the
        # service's own status code and reply beside DTBase's detail.
        reply = admin.ok("/service/run-service", {"service_name": path})
        assert reply["detail"] == CALLED["detail"], path
        replies.append((reply["status_code"], reply["response_json"]))
    log = runs(admin)
    assert replies == [(r["response_status_code"], r["response_json"]) for r in log]
    assert [(r["service_name"], r["response_status_code"], r["response_json"]) for r in log] == [
        ("/object", 200, {"ok": True, "n": 1}),
        ("/list", 200, LIST_REPLY),
        ("/scalar", 200, 42),
        ("/string", 200, "just a string"),
        ("/null", 200, None),
        ("/text", 200, None),
        ("/teapot", 418, {"error": "short and stout"}),
        ("/empty", 204, None),
        ("/odd", 200, ODD_TEXT),
    ]
    # No parameters are stored as JSON null (the column is NOT NULL); a reply that is not
    # JSON is SQL NULL.
    with clean_db.engine.connect() as conn:
        stored = conn.execute(
            sa.text(
                "select parameters::text, response_json is null from service_run_log order by id"
            )
        ).all()
    assert [p for p, _ in stored] == ["null"] * len(paths)
    assert [is_null for _, is_null in stored] == [
        False,
        False,
        False,
        False,
        True,
        True,
        False,
        True,
        False,
    ]
    # Reading them again works: a list or a scalar in the log never breaks list-runs (docs/api.md,
    # Service runs).
    assert runs(admin, {"service_name": "/list"})[0]["response_json"] == LIST_REPLY


def test_run_service_refusals(admin: Api, service_host: _RecordingServer) -> None:
    add_service(admin, "svc", service_host.url("/object"))
    add_service(admin, "other", service_host.url("/object"))
    add_set(admin, "other", "P", {})
    missing = {"detail": "Service or parameter set does not exist."}
    for body in (
        {"service_name": "nobody"},
        {"service_name": "nobody", "parameter_set_name": "P"},
        {"service_name": "svc", "parameter_set_name": "P"},  # P belongs to another service
        {"service_name": "svc", "parameter_set_name": "nope", "parameters": {"a": 1}},
    ):
        reply = admin.post("/service/run-service", body)
        assert (reply.status_code, reply.json()) == (400, missing), body
    for value in ("text", 3, True):
        assert_422(
            admin.post("/service/run-service", {"service_name": "svc", "parameters": value}),
            "parameters",
        )
    assert_422(admin.post("/service/run-service", {"parameters": {}}), "service_name")
    assert_422(
        admin.post("/service/run-service", {"service_name": "svc", "parameter_set_name": 1}),
        "parameter_set_name",
    )
    assert admin.post("/service/run-service").status_code == 422
    # Nothing was called and nothing was logged.
    assert service_host.calls == []
    assert runs(admin) == []


def test_list_runs_filters(admin: Api, service_host: _RecordingServer) -> None:
    add_service(admin, "a", service_host.url("/object"))
    add_service(admin, "b", service_host.url("/scalar"))
    add_set(admin, "a", "P", {"p": 1})
    add_set(admin, "a", "Q", {"q": 1})
    add_set(admin, "b", "P", {"bp": 1})
    for body in (
        {"service_name": "a", "parameter_set_name": "P"},
        {"service_name": "b", "parameter_set_name": "P"},
        {"service_name": "a", "parameter_set_name": "Q"},
        {"service_name": "a"},
        {"service_name": "b"},
    ):
        admin.ok("/service/run-service", body)

    every = runs(admin)
    assert [(r["service_name"], r["parameter_set_name"]) for r in every] == [
        ("a", "P"),
        ("b", "P"),
        ("a", "Q"),
        ("a", None),
        ("b", None),
    ]
    assert post_raw(admin, "/service/list-runs", b"null").json() == every
    assert runs(admin, {}) == every
    assert runs(admin, {"service_name": "a"}) == [every[0], every[2], every[3]]
    assert runs(admin, {"service_name": "a", "parameter_set_name": "P"}) == [every[0]]
    assert runs(admin, {"service_name": "b", "parameter_set_name": "P"}) == [every[1]]
    assert runs(admin, {"service_name": "nobody"}) == []
    assert runs(admin, {"service_name": "a", "parameter_set_name": "nope"}) == []

    reply = admin.post("/service/list-runs", {"parameter_set_name": "P"})
    assert_422(reply, "parameter_set_name")
    assert "service_name" in reply.json()["detail"][0]["msg"]
    reply = admin.post("/service/list-runs", {"service_name": None, "parameter_set_name": "P"})
    assert_422(reply, "parameter_set_name")
    assert_422(admin.post("/service/list-runs", {"service_name": ["a"]}), "service_name")


def test_deleting_a_set_keeps_its_runs_and_deleting_a_service_drops_them(
    admin: Api, service_host: _RecordingServer
) -> None:
    add_service(admin, "a", service_host.url("/object"))
    add_service(admin, "b", service_host.url("/list"))
    add_set(admin, "a", "P", {"p": 1})
    add_set(admin, "b", "P", {"bp": 1})
    admin.ok("/service/run-service", {"service_name": "a", "parameter_set_name": "P"})
    admin.ok("/service/run-service", {"service_name": "b", "parameter_set_name": "P"})

    admin.ok("/service/delete-parameter-set", {"service_name": "a", "name": "P"})
    log = runs(admin)
    assert [(r["service_name"], r["parameter_set_name"], r["parameters"]) for r in log] == [
        ("a", None, {"p": 1}),
        ("b", "P", {"bp": 1}),
    ]
    # A new set of the same name does not adopt the old runs.
    add_set(admin, "a", "P", {"new": True})
    assert runs(admin, {"service_name": "a", "parameter_set_name": "P"}) == []
    assert runs(admin, {"service_name": "a"})[0]["parameter_set_name"] is None

    # Deleting a service takes its sets and run log with it.
    admin.ok("/service/delete-service", {"name": "a"})
    assert [r["service_name"] for r in runs(admin)] == ["b"]
    assert sets(admin) == [{"service_name": "b", "name": "P", "parameters": {"bp": 1}}]


def _post_in_thread(
    host: LocalHost, token: str | None, path: str, body: dict[str, Any], replies: dict[str, Any]
) -> threading.Thread:
    client = Api(host.api)
    client.token = token

    def send() -> None:
        replies[path] = client.post(path, body)
        client.close()

    thread = threading.Thread(target=send)
    thread.start()
    return thread


def _wait_for_calls(server: _RecordingServer, count: int) -> None:
    deadline = time.monotonic() + 15
    while len(server.calls) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(server.calls) == count


def test_deletes_during_a_run_do_not_wait_and_the_run_keeps_its_log_row(
    admin: Api, service_host: _RecordingServer, live_host: LocalHost
) -> None:
    """Changed by the three-phase run-service: nothing is locked while the
    service runs, so deleting its parameter set during a run no longer waits for the run
    (DTBase's and the earlier behaviour held the set until the run was logged). The run's
    log row is still written, with the parameters it ran with and a null set reference, as
    if the set had been deleted just after the run."""
    add_service(admin, "slow", service_host.url("/slow"))
    add_set(admin, "slow", "P", {"p": 1})
    replies: dict[str, Any] = {}
    body = {"service_name": "slow", "parameter_set_name": "P"}
    runner = _post_in_thread(live_host, admin.token, "/service/run-service", body, replies)
    _wait_for_calls(service_host, 1)  # the call is in flight
    admin.ok(
        "/service/edit-parameter-set",
        {"service_name": "slow", "name": "P", "parameters": {"p": 2}},
    )
    started = time.monotonic()
    admin.ok("/service/delete-parameter-set", {"service_name": "slow", "name": "P"})
    assert time.monotonic() - started < 1, "the delete waited for the run"
    assert "/service/run-service" not in replies  # still running
    service_host.release.set()
    runner.join(15)
    assert (
        replies["/service/run-service"].status_code,
        replies["/service/run-service"].json(),
    ) == (
        200,
        called(200, {"late": True}),
    )
    log = runs(admin)
    assert [(r["parameter_set_name"], r["parameters"], r["response_json"]) for r in log] == [
        (None, {"p": 1}, {"late": True})
    ]
    assert sets(admin) == []


def test_deleting_the_service_during_a_run_drops_its_log_row(
    admin: Api, service_host: _RecordingServer, live_host: LocalHost
) -> None:
    """A service's run log goes with the service: a run that ends after its service was
    deleted answers as usual and writes no row (and no error)."""
    add_service(admin, "slow", service_host.url("/slow"))
    add_service(admin, "kept", service_host.url("/object"))
    replies: dict[str, Any] = {}
    runner = _post_in_thread(
        live_host, admin.token, "/service/run-service", {"service_name": "slow"}, replies
    )
    _wait_for_calls(service_host, 1)
    admin.ok("/service/delete-service", {"name": "slow"})
    service_host.release.set()
    runner.join(15)
    assert replies["/service/run-service"].json() == called(200, {"late": True})
    admin.ok("/service/run-service", {"service_name": "kept"})
    assert [r["service_name"] for r in runs(admin)] == ["kept"]


def test_unreachable_service_is_502_and_logged(admin: Api, refused_url: str) -> None:
    add_service(admin, "gone", refused_url, "POST")
    add_set(admin, "gone", "P", {"a": 1})
    reply = admin.post("/service/run-service", {"service_name": "gone", "parameter_set_name": "P"})
    assert reply.status_code == 502
    assert reply.json()["detail"].startswith("Service unreachable: ")
    log = runs(admin)
    assert [
        (r["parameter_set_name"], r["parameters"], r["response_status_code"], r["response_json"])
        for r in log
    ] == [("P", {"a": 1}, 502, None)]


def test_timeout_is_504_and_logged(
    admin: Api, service_host: _RecordingServer, host_factory: Callable[..., LocalHost]
) -> None:
    host = host_factory(env={"DT_SERVICE_TIMEOUT_SECONDS": "0.5"})
    quick = Api(host.api, host.admin_email, host.admin_password)
    add_service(quick, "slow", service_host.url("/slow"), "GET")
    add_service(quick, "trickle", service_host.url("/trickle"), "POST")
    add_service(quick, "fine", service_host.url("/object"), "GET")

    for name in ("slow", "trickle"):
        started = time.monotonic()
        reply = quick.post("/service/run-service", {"service_name": name, "parameters": {"x": 1}})
        elapsed = time.monotonic() - started
        assert (reply.status_code, reply.json()) == (
            504,
            {"detail": "Service timed out after 0.5 s"},
        ), name
        # A trickle of bytes cannot stretch the call: the timeout bounds the whole reply.
        assert elapsed < 4, (name, elapsed)
    quick.ok("/service/run-service", {"service_name": "fine"})

    # The rows are committed (seen from the other host), and list-runs works on both.
    log = runs(admin)
    assert [
        (r["service_name"], r["parameters"], r["response_status_code"], r["response_json"])
        for r in log
    ] == [
        ("slow", {"x": 1}, 504, None),
        ("trickle", {"x": 1}, 504, None),
        ("fine", None, 200, {"ok": True, "n": 1}),
    ]
    assert runs(quick) == log
    # The main host keeps the default timeout of 30 s: a service slower than the quick
    # host's bound answers in time.
    service_host.answers["/slow"] = lambda h: (time.sleep(0.8), h.send_json({"late": True}))
    assert admin.ok("/service/run-service", {"service_name": "slow"}) == called(200, {"late": True})
    assert runs(admin)[-1]["response_json"] == {"late": True}
    quick.close()


def test_every_route_needs_a_token(anon: Api) -> None:
    for route in ROUTES:
        reply = anon.post(f"/service/{route}")
        assert (reply.status_code, reply.json()) == (401, {"detail": "Not authenticated"}), route
    reply = anon.get("/service/list-services")
    assert (reply.status_code, reply.json()) == (401, {"detail": "Not authenticated"})


def test_routes_in_openapi(anon: Api) -> None:
    paths = anon.get("/openapi.json").json()["paths"]
    for route in ROUTES:
        assert "post" in paths[f"/service/{route}"], route
    assert "get" in paths["/service/list-services"]
    assert set(paths["/service/run-service"]["post"]["responses"]) >= {"200", "400", "502", "504"}
