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
DTBASE_RUN_KEYS = {
    "service_name",
    "parameter_set_name",
    "parameters",
    "response_json",
    "response_status_code",
    "timestamp",
}
# Added, beside DTBase's: the run's id (for run-status), state, detail and end.
RUN_KEYS = DTBASE_RUN_KEYS | {"run_id", "status", "detail", "finished_at"}
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
    key: str | None  # the x-functions-key header


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
                self.headers.get("x-functions-key"),
            )
        )
        answer = self.server.answers.get(url.path)
        if answer is None:
            self._send(404, b'{"detail": "no such path"}')
        else:
            answer(self)

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    def _send(
        self,
        status: int,
        body: bytes,
        ctype: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_json(
        self, value: Any, status: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        self._send(status, json.dumps(value).encode(), headers=headers)

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
        # A run that got no reply is a failed one, with run-service's own status code.
        failed = row["status"] == "failed"
        assert not failed or (row["response_status_code"], row["response_json"]) in {
            (400, None),
            (502, None),
            (504, None),
        }, row
        assert (row["finished_at"] is None) == (row["status"] == "running"), row
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


def test_a_run_past_its_limit_is_a_failed_504_run(
    admin: Api, service_host: _RecordingServer, host_factory: Callable[..., LocalHost]
) -> None:
    """Changed by long runs: DT_SERVICE_RUN_MAX_SECONDS bounds a run (it was
    DT_SERVICE_TIMEOUT_SECONDS, which is now how long run-service waits before a 202). A
    run that ends within the wait still answers as before."""
    host = host_factory(env={"DT_SERVICE_RUN_MAX_SECONDS": "0.5"})
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
        # A trickle of bytes cannot stretch the call: the limit bounds the whole reply.
        assert elapsed < 4, (name, elapsed)
    quick.ok("/service/run-service", {"service_name": "fine"})

    # The rows are committed (seen from the other host), and list-runs works on both.
    log = runs(admin)
    assert [
        (
            r["service_name"],
            r["parameters"],
            r["status"],
            r["response_status_code"],
            r["response_json"],
            r["detail"],
        )
        for r in log
    ] == [
        ("slow", {"x": 1}, "failed", 504, None, "Service timed out after 0.5 s"),
        ("trickle", {"x": 1}, "failed", 504, None, "Service timed out after 0.5 s"),
        ("fine", None, "completed", 200, {"ok": True, "n": 1}, CALLED["detail"]),
    ]
    assert runs(quick) == log
    # The main host keeps the default limit of 600 s: a service slower than the quick
    # host's bound answers in time.
    service_host.answers["/slow"] = lambda h: (time.sleep(0.8), h.send_json({"late": True}))
    assert admin.ok("/service/run-service", {"service_name": "slow"}) == called(200, {"late": True})
    assert runs(admin)[-1]["response_json"] == {"late": True}
    quick.close()


# ------------------------------------------------------------------ long runs


def follow_run(api: Api, status_url: str, timeout: float = 30) -> dict[str, Any]:
    """Poll a run's status URL (a full URL: the token goes too) until the run has ended."""
    deadline = time.monotonic() + timeout
    while True:
        reply = api.get(status_url)
        body = reply.json()
        assert reply.status_code == (202 if body["status"] == "running" else 200), reply.text
        if body["status"] != "running":
            return body
        assert time.monotonic() < deadline, f"the run did not end in {timeout} s: {body}"
        time.sleep(0.1)


def test_a_run_still_going_after_the_wait_answers_202_and_completes_later(
    service_host: _RecordingServer, host_factory: Callable[..., LocalHost]
) -> None:
    """A run still going after DT_SERVICE_TIMEOUT_SECONDS answers 202 with its run id and
    run-status URL; the run goes on without the request and completes its log row."""
    host = host_factory(env={"DT_SERVICE_TIMEOUT_SECONDS": "1"}, own_database=True)
    api = Api(host.api, host.admin_email, host.admin_password)
    add_service(api, "slow", service_host.url("/slow"))
    add_set(api, "slow", "P", {"p": 1})
    reply = api.post("/service/run-service", {"service_name": "slow", "parameter_set_name": "P"})
    assert reply.status_code == 202, reply.text
    accepted = reply.json()
    status_url = f"{host.api}/service/run-status/{accepted['run_id']}"
    assert accepted == {
        "detail": "Service still running after 1 s: follow the run at status_url",
        "run_id": accepted["run_id"],
        "status_url": status_url,
    }
    assert (reply.headers["location"], reply.headers["retry-after"]) == (status_url, "2")
    assert [c.path for c in service_host.calls] == ["/slow"]  # called once, still answering

    running = api.get(status_url)
    assert running.status_code == 202 and running.headers["location"] == status_url
    body = running.json()
    assert {k: body[k] for k in ("status", "status_code", "response_json", "finished_at")} == {
        "status": "running",
        "status_code": None,
        "response_json": None,
        "finished_at": None,
    }
    assert body["detail"] == "Service still running."
    assert (body["service_name"], body["parameter_set_name"], body["parameters"]) == (
        "slow",
        "P",
        {"p": 1},
    )
    (row,) = runs(api)
    assert (row["run_id"], row["status"], row["response_status_code"]) == (
        accepted["run_id"],
        "running",
        202,
    )

    service_host.release.set()
    ended = follow_run(api, status_url)
    assert {k: ended[k] for k in ("status", "status_code", "response_json", "detail")} == {
        "status": "completed",
        "status_code": 200,
        "response_json": {"late": True},
        "detail": CALLED["detail"],
    }
    started, finished = (datetime.fromisoformat(ended[k]) for k in ("started_at", "finished_at"))
    assert started < finished
    (row,) = runs(api)
    assert (row["status"], row["response_status_code"], row["response_json"]) == (
        "completed",
        200,
        {"late": True},
    )
    assert row["timestamp"] == ended["started_at"] and row["finished_at"] == ended["finished_at"]
    assert [c.path for c in service_host.calls] == ["/slow"]  # and never called again
    api.close()


def test_a_run_goes_on_after_its_host_stops(
    service_host: _RecordingServer, host_factory: Callable[..., LocalHost]
) -> None:
    """A run is an orchestration kept in the database, not a task of the host that took
    the request: stopped in the middle of the call, the host leaves the run to the next
    one on the database, which calls the service again (at least once, as on Azure) and
    completes the run."""
    first = host_factory(env={"DT_SERVICE_TIMEOUT_SECONDS": "1"}, own_database=True)
    api = Api(first.api, first.admin_email, first.admin_password)
    add_service(api, "slow", service_host.url("/slow"))
    reply = api.post("/service/run-service", {"service_name": "slow"})
    assert reply.status_code == 202, reply.text
    run_id = reply.json()["run_id"]
    _wait_for_calls(service_host, 1)
    api.close()
    first.stop()

    second = host_factory(env={"DT_DATABASE_URL": first.env["DT_DATABASE_URL"]})
    _wait_for_calls(service_host, 2)
    service_host.release.set()
    api = Api(second.api, second.admin_email, second.admin_password)
    ended = follow_run(api, f"{second.api}/service/run-status/{run_id}")
    assert (ended["status"], ended["status_code"], ended["response_json"]) == (
        "completed",
        200,
        {"late": True},
    )
    assert [r["status"] for r in runs(api)] == ["completed"]
    api.close()


def _accepted(location: str, retry_after: str = "0") -> Callable[[_Handler], None]:
    def answer(handler: _Handler) -> None:
        handler.send_json(
            {"accepted": True}, 202, {"Location": location, "Retry-After": retry_after}
        )

    return answer


def test_a_202_with_a_location_is_polled_to_its_end(
    service_host: _RecordingServer, host_factory: Callable[..., LocalHost]
) -> None:
    """As Durable's call_http: a 202's Location is polled (after its Retry-After) until
    another status comes; the run completes with that reply. The service key goes to the
    service's own origin only, never to a Location elsewhere."""
    key = "run-service-key-" + "k" * 20
    host = host_factory(env={"DT_SERVICE_API_KEY": key}, own_database=True)
    api = Api(host.api, host.admin_email, host.admin_password)
    polls = {"n": 0}

    def job(handler: _Handler) -> None:
        polls["n"] += 1
        if polls["n"] < 3:
            handler.send_json(
                {"progress": polls["n"]}, 202, {"Location": "/job/a", "Retry-After": "1"}
            )
        else:
            handler.send_json({"done": "a"})

    port = service_host.server_address[1]
    service_host.answers.update(
        {
            "/accept": _accepted("/job/a"),  # relative: on the service's own origin
            "/job/a": job,
            # The same server under another name: another origin, so no key goes there.
            "/accept-elsewhere": _accepted(f"http://localhost:{port}/job/b"),
            "/job/b": lambda h: h.send_json({"done": "b"}, 201),
        }
    )
    for name in ("accept", "accept-elsewhere"):
        body = {"name": name, "url": service_host.url(f"/{name}"), "http_method": "POST"}
        api.ok("/service/insert-service", {**body, "use_service_key": True}, 201)

    assert api.ok("/service/run-service", {"service_name": "accept"}, 200) == called(
        200, {"done": "a"}
    )
    assert api.ok("/service/run-service", {"service_name": "accept-elsewhere"}, 200) == called(
        201, {"done": "b"}
    )
    calls = [(c.method, c.path, c.key) for c in service_host.calls]
    assert calls == [
        ("POST", "/accept", key),
        ("GET", "/job/a", key),
        ("GET", "/job/a", key),
        ("GET", "/job/a", key),
        ("POST", "/accept-elsewhere", key),
        ("GET", "/job/b", None),
    ]
    log = runs(api)
    assert [(r["status"], r["response_status_code"], r["response_json"]) for r in log] == [
        ("completed", 200, {"done": "a"}),
        ("completed", 201, {"done": "b"}),
    ]
    api.close()


def test_a_location_the_policy_refuses_fails_the_run_and_is_never_called(
    admin: Api, service_host: _RecordingServer, live_host: LocalHost
) -> None:
    """Every hop goes through the outbound policy, a Location too: the Durable management
    API (on an allowed host, here this very server) and the metadata address are refused,
    and the run fails with the refusal."""
    service_host.answers.update(
        {
            "/to-management": _accepted(
                service_host.url("/runtime/webhooks/durabletask/instances?showInput=true")
            ),
            "/runtime/webhooks/durabletask/instances": lambda h: h.send_json([]),
            "/to-metadata": _accepted("http://169.254.169.254/latest/meta-data/"),
        }
    )
    add_service(admin, "management", service_host.url("/to-management"))
    add_service(admin, "metadata", service_host.url("/to-metadata"))
    for name, named in (
        ("management", "/runtime/webhooks/durabletask"),
        ("metadata", "169.254.169.254"),
    ):
        reply = admin.post("/service/run-service", {"service_name": name})
        assert reply.status_code == 400, reply.text
        assert reply.json()["detail"].startswith("Refused to call") and named in reply.text
    assert [c.path for c in service_host.calls] == ["/to-management", "/to-metadata"]
    log = runs(admin)
    assert [(r["status"], r["response_status_code"], r["response_json"]) for r in log] == [
        ("failed", 400, None),
        ("failed", 400, None),
    ]
    assert "/runtime/webhooks/durabletask" in log[0]["detail"]


def test_polling_past_the_run_s_limit_is_a_failed_504_run(
    service_host: _RecordingServer, host_factory: Callable[..., LocalHost], admin: Api
) -> None:
    host = host_factory(env={"DT_SERVICE_RUN_MAX_SECONDS": "2"})
    api = Api(host.api, host.admin_email, host.admin_password)
    service_host.answers["/forever"] = _accepted("/forever", "1")
    add_service(api, "forever", service_host.url("/forever"))
    started = time.monotonic()
    reply = api.post("/service/run-service", {"service_name": "forever"})
    assert (reply.status_code, reply.json()) == (504, {"detail": "Service timed out after 2 s"})
    assert time.monotonic() - started < 10
    # The call, then a poll a second later; the next timer is cut at the limit, and then
    # nothing is left for a poll.
    assert [c.path for c in service_host.calls] == ["/forever", "/forever"]
    (row,) = runs(api)
    assert (row["status"], row["response_status_code"], row["response_json"]) == (
        "failed",
        504,
        None,
    )
    api.close()


def test_run_status_of_an_unknown_or_malformed_id_is_a_404(admin: Api, anon: Api) -> None:
    odd = ("0", "-1", "1e3", "x", "%C2%B3", "%D9%A3", "9999999999", "9" * 11, "01x", "1.0")
    for run_id in ("1", "2147483647", *odd):
        reply = admin.get(f"/service/run-status/{run_id}")
        assert (reply.status_code, reply.json()) == (404, {"detail": "No such run."}), run_id
    assert admin.get("/service/run-status/").status_code == 404
    reply = anon.get("/service/run-status/1")
    assert (reply.status_code, reply.json()) == (401, {"detail": "Not authenticated"})


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
    replies = paths["/service/run-service"]["post"]["responses"]
    assert set(replies) >= {"200", "202", "400", "502", "504"}
    assert replies["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RunAcceptedOut"
    }
    status = paths["/service/run-status/{run_id}"]["get"]
    assert status["parameters"] == [
        {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    assert set(status["responses"]) == {"200", "202", "401", "404"}
