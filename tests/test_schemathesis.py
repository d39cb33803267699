"""Schemathesis over every operation of /api/openapi.json, against a local host over real
HTTP: bodies, path parameters and headers generated from the document itself. No reply
may be a server error, and every reply must conform to the document: its status code is
one the operation declares, its content type is declared, and its body fits the schema.

Examples are bounded so the whole run stays within a few minutes. Nothing leaves this
machine: the weather ingress calls a stand-in on 127.0.0.1, and `run-service` is fuzzed
against a service registered on a stand-in (generated services would name any address).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from tests.support import ADMIN_PASSWORD, LocalHost, TestDatabase, start_host

# Operations fuzzed elsewhere or not at all: generated services would call arbitrary
# addresses, so run-service gets its own run below against a registered stand-in.
EXCLUDED = ("/service/insert-service", "/service/run-service")
EXAMPLES = 10
# What the document promises: no server error, and status codes, content types and reply
# bodies as declared. (Data that fits the schema may still be refused: a row it names may
# not exist, or a value may break a rule the schema does not state.)
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


class _StandIn(BaseHTTPRequestHandler):
    """Answers any request with a small JSON object: the service and OpenWeatherMap."""

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = json.dumps({"ok": True}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer


@pytest.fixture(scope="module")
def stand_in() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StandIn)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def fuzzed_host(database: TestDatabase, host_root: Path, stand_in: str) -> Iterator[LocalHost]:
    host = start_host(
        database.url,
        host_root / "schemathesis",
        {"DT_OPENWEATHERMAP_BASE_URL": stand_in, "DT_SERVICE_TIMEOUT_SECONDS": "5"},
    )
    database.truncate_all()
    yield host
    host.stop()
    database.truncate_all()


@pytest.fixture(scope="module")
def token(fuzzed_host: LocalHost) -> str:
    reply = httpx.post(
        fuzzed_host.api + "/auth/login",
        json={"email": fuzzed_host.admin_email, "password": ADMIN_PASSWORD},
    )
    assert reply.status_code == 200, reply.text
    return str(reply.json()["access_token"])


@pytest.fixture(scope="module")
def api_schema(fuzzed_host: LocalHost) -> Any:
    schema = schemathesis.openapi.from_url(fuzzed_host.api + "/openapi.json")
    schema.config.update(base_url=fuzzed_host.api)
    return schema


def _fuzz(operation: Any, prepare: Any, headers: dict[str, str]) -> list[str]:
    """Run one operation's examples; each failure as a line naming it."""
    failures: list[str] = []

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: Any) -> None:
        prepare(case)
        case.call_and_validate(headers=headers, checks=CHECKS)

    try:
        run()
    except BaseException as exc:  # schemathesis's failures (one, or a group): the finding
        if not isinstance(exc, AssertionError | BaseExceptionGroup):
            raise
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        failures.append(f"{operation.label}: " + " / ".join(lines)[:1500])
    return failures


def test_every_operation_conforms(api_schema: Any, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 50
    for operation in operations:
        if operation.path in EXCLUDED:
            continue
        failures += _fuzz(operation, lambda case: None, headers)
    assert not failures, "\n\n".join(failures)


def test_run_service_conforms_against_a_stand_in(
    api_schema: Any, token: str, fuzzed_host: LocalHost, stand_in: str
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    httpx.post(
        fuzzed_host.api + "/service/insert-service",
        json={"name": "stand-in", "url": stand_in + "/run", "http_method": "POST"},
        headers=headers,
    )

    def to_the_stand_in(case: Any) -> None:
        if isinstance(case.body, dict):
            case.body["service_name"] = "stand-in"

    operation = api_schema.find_operation_by_path("POST", "/service/run-service")
    failures = _fuzz(operation, to_the_stand_in, headers)
    assert not failures, "\n\n".join(failures)
