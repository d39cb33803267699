"""run-service over HTTP without forgery, starvation or leaked keys (README, "Where this API
deliberately differs from DTBase"): refused addresses send nothing (a listening socket
records every connection attempt), the Durable management API is never called, keys travel
in a header and are masked where URLs are listed or logged, and slow services or services
calling the API itself never hold the host's worker threads."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.support import Api, LocalHost

SERVICE_KEY = "service-key-" + "s" * 24


class Listener:
    """A bound, listening socket nobody accepts on: a connection attempt completes its
    handshake into the backlog, so `attempts()` finds it."""

    def __init__(self, family: socket.AddressFamily, address: str) -> None:
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((address, 0))
        self.sock.listen(64)
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]

    def attempts(self) -> int:
        count = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return count
            conn.close()
            count += 1

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listeners() -> Iterator[tuple[Listener, Listener]]:
    v4 = Listener(socket.AF_INET, "127.0.0.1")
    v6 = Listener(socket.AF_INET6, "::1")
    yield v4, v6
    v4.close()
    v6.close()


class Recorder(ThreadingHTTPServer):
    """A service on 127.0.0.1 that records each request's path, headers and body, and can
    be slow: `/slow` answers `delay` seconds after `batch` calls are in flight at once (on a
    loaded machine the 12 calls take a while to arrive: the 5 seconds start when all are
    in), counting the calls in flight."""

    daemon_threads = True
    request_queue_size = 64  # 24 connections at once: none waits for a SYN retry

    def __init__(self, delay: float = 5.0) -> None:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with recorder.lock:
                    recorder.requests.append((self.path, dict(self.headers), body))
                    recorder.in_flight += 1
                    recorder.peak = max(recorder.peak, recorder.in_flight)
                    if recorder.in_flight >= recorder.batch:
                        recorder.all_in.set()
                try:
                    if self.path.startswith("/slow"):
                        recorder.all_in.wait(30)
                        recorder.never.wait(recorder.delay)
                    payload = json.dumps({"path": self.path}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                finally:
                    with recorder.lock:
                        recorder.in_flight -= 1

            do_GET = do_POST = _handle

        super().__init__(("127.0.0.1", 0), Handler)
        self.delay = delay
        self.batch = 1
        self.all_in = threading.Event()
        self.never = threading.Event()
        self.lock = threading.Lock()
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.in_flight = 0
        self.peak = 0
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def close(self) -> None:
        self.never.set()
        self.shutdown()
        self.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.close()


def add_service(api: Api, name: str, url: str, method: str = "POST", **extra: Any) -> None:
    body = {"name": name, "url": url, "http_method": method, **extra}
    api.ok("/service/insert-service", body, 201)


# ------------------------------------------------------------------ the address policy


@pytest.fixture
def strict_host(host_factory: Callable[..., LocalHost]) -> LocalHost:
    """A local host whose allowed hosts do not include 127.0.0.1 or localhost (on a
    database of its own: another host would run its calls with its own policy)."""
    return host_factory(env={"DT_SERVICE_ALLOWED_HOSTS": "allowed.invalid"}, own_database=True)


def test_internal_addresses_are_refused_and_nothing_is_sent(
    strict_host: LocalHost, admin: Api, listeners: tuple[Listener, Listener]
) -> None:
    v4, v6 = listeners
    api = Api(strict_host.api, strict_host.admin_email, strict_host.admin_password)
    urls = {
        "decimal": (f"http://2130706433:{v4.port}/run", "127.0.0.1"),
        "octal": (f"http://0177.0.1:{v4.port}/run", "127.0.0.1"),
        "hex": (f"http://0x7f.0.0.1:{v4.port}/run", "127.0.0.1"),
        "mapped": (f"http://[::ffff:127.0.0.1]:{v4.port}/run", "127.0.0.1"),
        "dotted": (f"http://127.0.0.1:{v4.port}/run", "127.0.0.1"),
        "localhost": (f"http://localhost:{v4.port}/run", "127.0.0.1|::1"),
        "unspecified": (f"http://0.0.0.0:{v4.port}/run", "0.0.0.0"),
        "ipv6 loopback": (f"http://[::1]:{v6.port}/run", "::1"),
        "metadata": ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        "private": ("http://10.0.0.1/run", "10.0.0.1"),
    }
    for name, (url, _) in urls.items():
        add_service(api, name, url, "GET")
    for name, (_, address) in urls.items():
        reply = api.post("/service/run-service", {"service_name": name, "parameters": {"a": 1}})
        assert reply.status_code == 400, (name, reply.text)
        detail = reply.json()["detail"]
        assert detail.startswith("Refused to call"), (name, detail)
        assert any(a in detail for a in address.split("|")), (name, detail)
    # Each refusal is a logged run; no connection reached either listener.
    log = api.ok("/service/list-runs", None, 200)
    assert [(r["service_name"], r["response_status_code"], r["response_json"]) for r in log] == [
        (name, 400, None) for name in urls
    ]
    assert (v4.attempts(), v6.attempts()) == (0, 0)
    # The instrument works: a connection attempt is seen.
    socket.create_connection(("127.0.0.1", v4.port)).close()
    socket.create_connection(("::1", v6.port)).close()
    assert (v4.attempts(), v6.attempts()) == (1, 1)
    api.close()


def test_octal_with_four_parts_is_no_url(admin: Api) -> None:
    reply = admin.post(
        "/service/insert-service",
        {"name": "octal", "url": "http://0177.0.0.1/", "http_method": "GET"},
    )
    assert reply.status_code == 422 and reply.json()["detail"][0]["loc"] == ["body", "url"]


def test_the_durable_management_api_is_never_called(admin: Api, live_host: LocalHost) -> None:
    """Seen before the fix: a registered management URL listed every orchestration's input and
    output through list-runs. 127.0.0.1 is an allowed host in local mode, but not this
    path, however it is spelled."""
    base = live_host.url
    for index, path in enumerate(
        [
            "/runtime/webhooks/durabletask/instances",
            "/runtime/webhooks/DurableTask/instances?showInput=true",
            "//runtime/webhooks/durabletask/instances",
            "/api/../runtime/webhooks/durabletask/instances",
            "/runtime/webhooks%2Fdurabletask/instances",
        ]
    ):
        add_service(admin, f"m{index}", base + path, "GET")
        reply = admin.post("/service/run-service", {"service_name": f"m{index}"})
        assert reply.status_code == 400, (path, reply.text)
        assert "/runtime/webhooks/durabletask" in reply.json()["detail"]
    log = admin.ok("/service/list-runs", None, 200)
    assert {(r["response_status_code"], json.dumps(r["response_json"])) for r in log} == {
        (400, "null")
    }


# ------------------------------------------------------------------ keys


def test_keys_travel_in_a_header_and_are_masked_in_listings(
    host_factory: Callable[..., LocalHost], admin: Api, recorder: Recorder
) -> None:
    host = host_factory(env={"DT_SERVICE_API_KEY": SERVICE_KEY}, own_database=True)
    api = Api(host.api, host.admin_email, host.admin_password)
    add_service(api, "keyed", recorder.url("/run"), "POST", use_service_key=True)
    add_service(api, "plain", recorder.url("/run"), "POST")
    add_service(
        api, "old style", recorder.url(f"/run?code={SERVICE_KEY}&Sig=abc&TOKEN=t&keep=1"), "GET"
    )
    # The key goes only to the API's own host or an allowed host: not to example.com.
    reply = api.post(
        "/service/insert-service",
        {"name": "x", "url": "https://example.com/", "http_method": "GET", "use_service_key": True},
    )
    assert reply.status_code == 422 and "example.com" in reply.json()["detail"][0]["msg"]
    for value in ("true", 1, None):
        reply = api.post(
            "/service/insert-service",
            {"name": "x", "url": recorder.url("/"), "http_method": "GET", "use_service_key": value},
        )
        assert reply.status_code == 422, value

    assert api.get("/service/list-services").json() == [
        {
            "name": "keyed",
            "url": recorder.url("/run"),
            "http_method": "POST",
            "use_service_key": True,
        },
        {"name": "plain", "url": recorder.url("/run"), "http_method": "POST"},
        {
            "name": "old style",
            "url": recorder.url("/run?code=***&Sig=***&TOKEN=***&keep=1"),
            "http_method": "GET",
        },
    ]
    for name in ("keyed", "plain", "old style"):
        reply = api.post(
            "/service/run-service", {"service_name": name, "parameters": {"appid": "A", "n": 1}}
        )
        assert reply.status_code == 200, reply.text
    keyed, plain, old = recorder.requests
    assert keyed[1].get("x-functions-key") == SERVICE_KEY and SERVICE_KEY not in keyed[0]
    assert "x-functions-key" not in plain[1]
    assert old[0].startswith("/run?code=" + SERVICE_KEY)  # sent as registered
    # The run log and the replies never show the key: the old-style reply echoes its path.
    runs = api.ok("/service/list-runs", None, 200)
    assert SERVICE_KEY not in json.dumps(runs)
    assert runs[2]["response_json"] == {
        "path": "/run?code=***&Sig=***&TOKEN=***&keep=1&appid=***&n=1"
    }
    assert runs[2]["parameters"] == {"appid": "***", "n": 1}  # sent in the query: masked
    assert runs[0]["parameters"] == {"appid": "A", "n": 1}  # sent in a POST body: kept
    api.close()


# ------------------------------------------------------------------ starvation


def test_slow_services_and_calls_to_the_api_itself_hold_no_worker(
    host_factory: Callable[..., LocalHost], admin: Api, recorder: Recorder
) -> None:
    """Seen before the fix: six parallel calls to a slow service held the host's six worker
    threads for 30 s, and a service registered on the API's own URL deadlocked. Here the
    host has 4 worker threads (PYTHON_THREADPOOL_THREAD_COUNT, as on Azure); 12 calls to a
    5-second service and 12 to the API's own /health run at once, and /health and
    list-sensors (a synchronous function, which needs a worker thread) answer promptly
    all the while."""
    host = host_factory(env={"PYTHON_THREADPOOL_THREAD_COUNT": "4"})
    api = Api(host.api, host.admin_email, host.admin_password)
    add_service(api, "slow", recorder.url("/slow"), "POST")
    add_service(api, "self", host.api + "/health", "GET")
    add_service(api, "warm-up", recorder.url("/warm-up"), "POST")
    for name in ("warm-up", "self"):  # the host's database connections and TLS context
        api.ok("/service/run-service", {"service_name": name})
    recorder.batch = 12
    recorder.all_in.clear()
    replies: list[Any] = []
    # One plain-http client per caller, made up front (verify=False: no CA bundle to read,
    # which takes a quarter of a second per client).
    clients = [
        httpx.Client(
            base_url=host.api,
            timeout=60,
            verify=False,
            headers={"Authorization": f"Bearer {api.token}"},
        )
        for _ in range(24)
    ]

    def call(name: str, client: httpx.Client) -> None:
        replies.append(client.post("/service/run-service", json={"service_name": name}))

    names = ["slow"] * 12 + ["self"] * 12
    threads = [
        threading.Thread(target=call, args=pair) for pair in zip(names, clients, strict=True)
    ]
    for thread in threads:
        thread.start()
    assert recorder.all_in.wait(20), "the 12 slow calls are not all in flight"

    probe = Api(host.api)
    probe.token = api.token
    latencies: dict[str, list[float]] = {"health": [], "list-sensors": []}
    while recorder.in_flight == 12:
        started = time.monotonic()
        assert probe.get("/health").status_code == 200
        latencies["health"].append(time.monotonic() - started)
        started = time.monotonic()
        assert probe.post("/sensor/list-sensors", {}).status_code == 200
        if recorder.in_flight == 12:  # count only probes made entirely during the calls
            latencies["list-sensors"].append(time.monotonic() - started)
    probe.close()
    for thread in threads:
        thread.join(30)
    for client in clients:
        client.close()

    assert len(latencies["list-sensors"]) >= 5, latencies
    assert max(latencies["health"]) < 1 and max(latencies["list-sensors"]) < 1, latencies
    assert recorder.peak == 12 and len(recorder.requests) == 13
    assert sorted(r.status_code for r in replies) == [200] * 24
    bodies = [r.json() for r in replies]
    assert (
        bodies.count(
            {
                "detail": "Service called successfully.",
                "status_code": 200,
                "response_json": {"path": "/slow"},
            }
        )
        == 12
    )
    assert (
        bodies.count(
            {
                "detail": "Service called successfully.",
                "status_code": 200,
                "response_json": {"status": "ok", "database": "ok"},
            }
        )
        == 12
    )
    assert len(api.ok("/service/list-runs", None, 200)) == 26
    api.close()
