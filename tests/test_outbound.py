"""The outbound address policy (dtbase_core/outbound.py) in process: literal
address forms, a resolver stand-in mapping names to internal addresses, redirects, the
pinned connection, and the service key's destinations. The network is a recording
transport: a refused call must leave it untouched."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from dtbase_core import outbound, services
from dtbase_core.orm.base import HttpMethod
from dtbase_core.outbound import Address, OutboundPolicy, OutboundRefused

PUBLIC = ipaddress.ip_address("93.184.216.34")
NAMES: dict[str, list[Address]] = {
    "metadata.test": [ipaddress.ip_address("169.254.169.254")],
    "internal.test": [ipaddress.ip_address("10.0.0.1")],
    "ula.test": [ipaddress.ip_address("fd12::1")],
    # One public and one private answer: any non-public one refuses the host.
    "mixed.test": [PUBLIC, ipaddress.ip_address("10.0.0.1")],
    "public.test": [PUBLIC],
    "other.test": [ipaddress.ip_address("93.184.216.35")],
}


class StandInResolver:
    """Names to addresses from a table; records each lookup."""

    def __init__(self, table: dict[str, list[Address]]) -> None:
        self.table = table
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[Address]:
        self.lookups.append(host)
        if host not in self.table:
            raise OSError(f"no such name: {host}")
        return self.table[host]


class RecordingNetwork:
    """An httpx transport standing in for the network: records every request and answers
    from `answers` (a function of the request), or fails when none is given."""

    def __init__(self, answer: Any = None) -> None:
        self.requests: list[httpx.Request] = []
        self.answer = answer

    def transport(self) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            if self.answer is None:
                raise AssertionError(f"nothing may be sent, but {request.url} was")
            response: httpx.Response = self.answer(request)
            return response

        return httpx.MockTransport(handle)


def target(url: str, method: HttpMethod = HttpMethod.POST, **changes: Any) -> services.RunTarget:
    values: dict[str, Any] = {
        "service_id": 1,
        "url": url,
        "http_method": method,
        "use_service_key": False,
        "set_id": None,
        "parameters": {"p": 1},
    }
    values.update(changes)
    return services.RunTarget(**values)


def run(
    url: str,
    network: RecordingNetwork,
    *,
    resolver: StandInResolver | None = None,
    allowed: tuple[str, ...] = (),
    **changes: Any,
) -> services.RunResult:
    out = services.Outbound(
        policy=OutboundPolicy.allowing(allowed, resolver or StandInResolver(NAMES)),
        timeout=5,
        service_key=changes.pop("service_key", None),
        key_hosts=frozenset(changes.pop("key_hosts", ())),
        transport=network.transport(),
    )
    return asyncio.run(services.call_service(target(url, **changes), out))


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),  # decimal
        ("0177.0.1", "127.0.0.1"),  # octal
        ("0x7f.1", "127.0.0.1"),  # hex
        ("0x7f000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("0.0.0.0", "0.0.0.0"),
        ("169.254.169.254", "169.254.169.254"),
        ("2852039166", "169.254.169.254"),
        ("::1", "::1"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
        ("0:0:0:0:0:ffff:a9fe:a9fe", "::ffff:a9fe:a9fe"),
        ("example.com", None),
        ("deadbeef", None),
    ],
)
def test_literal_forms_are_read_as_the_address_they_name(host: str, address: str | None) -> None:
    found = outbound.literal_address(outbound.normalise_host(host))
    assert (str(found) if found else None) == address


@pytest.mark.parametrize("host", ["1.2.3.4.5", "256.0.0.1", "1.2.3.09", "99999999999", "a.0x"])
def test_number_like_hosts_that_are_no_address_are_refused(host: str) -> None:
    with pytest.raises(OutboundRefused, match="not a valid IPv4 address"):
        outbound.literal_address(host)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "a loopback address"),
        ("169.254.169.254", "a link-local address"),
        ("10.0.0.1", "a private address"),
        ("172.16.5.4", "a private address"),
        ("192.168.1.1", "a private address"),
        ("100.64.0.1", "a non-public address"),  # carrier-grade NAT
        ("0.0.0.0", "an unspecified address"),
        ("224.0.0.1", "a multicast address"),
        ("240.0.0.1", "a private address"),
        ("::1", "a loopback address"),
        ("::", "an unspecified address"),
        ("fe80::1", "a link-local address"),
        ("fd00::1", "a unique-local address"),
        ("ff02::1", "a multicast address"),
        ("::ffff:127.0.0.1", "a loopback address in IPv6 form"),
        ("::ffff:169.254.169.254", "a link-local address in IPv6 form"),
        ("2002:a00:1::", "a private address in IPv6 form"),  # 6to4 of 10.0.0.1
        ("64:ff9b::a9fe:a9fe", "a link-local address in IPv6 form"),  # NAT64
        ("93.184.216.34", None),
        ("2606:2800:220:1:248:1893:25c8:1946", None),
        ("::ffff:93.184.216.34", None),
    ],
)
def test_address_kinds(address: str, kind: str | None) -> None:
    assert outbound.why_refused(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("http://metadata.test/latest/meta-data/", "169.254.169.254"),
        ("http://internal.test:8080/run", "10.0.0.1"),
        ("https://ula.test/run", "fd12::1"),
        ("http://mixed.test/run", "10.0.0.1"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("http://2130706433:8080/", "127.0.0.1"),
        ("http://[::ffff:127.0.0.1]/", "127.0.0.1"),
        ("http://[::1]:8080/", "::1"),
        ("http://0.0.0.0:8080/", "0.0.0.0"),
        ("http://public.test/runtime/webhooks/durabletask/instances", "/runtime/webhooks"),
        ("http://public.test/x/..%2FRuntime/Webhooks/DurableTask/instances", "/runtime/webhooks"),
    ],
)
def test_refused_calls_name_the_address_and_send_nothing(url: str, named: str) -> None:
    network = RecordingNetwork()
    result = run(url, network)
    assert (result.status, result.status_code, result.response_json) == (400, 400, None)
    assert result.detail.startswith("Refused to call") and named in result.detail
    assert result.reply() == {"detail": result.detail}
    assert network.requests == []


def test_allowed_hosts_skip_the_address_check_but_never_reach_the_management_api() -> None:
    network = RecordingNetwork(lambda request: httpx.Response(200, json={"ok": True}))
    allowed = ("internal.test", "127.0.0.1")
    assert run("http://internal.test:8080/run", network, allowed=allowed).status == 200
    assert run("http://127.0.0.1:7071/api/health", network, allowed=allowed).status == 200
    assert [str(r.url) for r in network.requests] == [
        "http://10.0.0.1:8080/run",
        "http://127.0.0.1:7071/api/health",
    ]
    # Only the listed spelling: another spelling of the same address is checked as usual.
    for url in (
        "http://2130706433:7071/api/health",
        "http://127.0.0.1:7071/runtime/webhooks/durabletask/instances",
        "http://127.0.0.1:7071/runtime/webhooks/durabletask/instances/abc?code=x",
    ):
        assert run(url, network, allowed=allowed).status == 400, url
    assert len(network.requests) == 2


def test_the_connection_goes_to_the_checked_address() -> None:
    """A resolver that answers a public address first and loopback afterwards (DNS
    rebinding) is asked once per hop; the request goes to the first answer, with the
    original Host header, and https names the host for SNI and the certificate."""

    class Rebinding(StandInResolver):
        async def __call__(self, host: str, port: int) -> Sequence[Address]:
            self.lookups.append(host)
            first = len(self.lookups) == 1
            return [PUBLIC if first else ipaddress.ip_address("127.0.0.1")]

    resolver = Rebinding({})
    network = RecordingNetwork(lambda request: httpx.Response(200, json=[1]))
    result = run("https://rebind.test:8443/run?x=1", network, resolver=resolver)
    assert (result.status, result.status_code, result.response_json) == (200, 200, [1])
    (request,) = network.requests
    assert str(request.url) == "https://93.184.216.34:8443/run?x=1"
    assert request.headers["host"] == "rebind.test:8443"
    assert request.extensions["sni_hostname"] == "rebind.test"
    assert request.content == b'{"p":1}'
    assert resolver.lookups == ["rebind.test"]


def test_every_redirect_hop_is_checked() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers["host"] == "public.test":
            return httpx.Response(302, headers={"location": "http://metadata.test/latest"})
        raise AssertionError("the refused hop was sent")

    network = RecordingNetwork(answer)
    result = run("http://public.test/run", network)
    assert result.status == 400 and "169.254.169.254" in result.detail
    assert [r.headers["host"] for r in network.requests] == ["public.test"]


def test_redirects_are_followed_a_bounded_number_of_times() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/start":
            return httpx.Response(303, headers={"location": "/next"})
        if request.url.path == "/next":
            return httpx.Response(307, headers={"location": "http://other.test/end"})
        if request.url.path == "/end":
            return httpx.Response(201, json={"done": request.method})
        return httpx.Response(302, headers={"location": "/loop"})

    network = RecordingNetwork(answer)
    result = run("http://public.test/start", network)
    # 303 turns the POST into a GET without a body; 307 keeps the method.
    assert (result.status_code, result.response_json) == (201, {"done": "GET"})
    assert [(r.method, r.headers["host"], r.url.path) for r in network.requests] == [
        ("POST", "public.test", "/start"),
        ("GET", "public.test", "/next"),
        ("GET", "other.test", "/end"),
    ]
    assert network.requests[1].content == b""

    network = RecordingNetwork(answer)
    result = run("http://public.test/loop", network)
    assert result.status == 502 and "redirects" in result.detail
    assert len(network.requests) == outbound.MAX_REDIRECTS + 1


def test_the_service_key_goes_in_a_header_to_its_own_origin_only() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers["host"] == "public.test":
            return httpx.Response(307, headers={"location": "http://other.test/next"})
        return httpx.Response(200, json={"ok": True})

    network = RecordingNetwork(answer)
    result = run(
        "http://public.test/run",
        network,
        use_service_key=True,
        service_key="the-key",
        key_hosts={"public.test"},
    )
    assert result.status == 200
    first, second = network.requests
    assert first.headers["x-functions-key"] == "the-key"
    assert "x-functions-key" not in second.headers
    assert "the-key" not in str(first.url)

    # A host the key may not go to: refused before anything is sent.
    network = RecordingNetwork()
    result = run(
        "http://other.test/run",
        network,
        use_service_key=True,
        service_key="the-key",
        key_hosts={"public.test"},
    )
    assert result.status == 400 and "other.test" in result.detail
    assert network.requests == []


def test_a_name_that_does_not_resolve_is_unreachable() -> None:
    network = RecordingNetwork()
    result = run("http://nowhere.test/run", network)
    assert result.status == 502 and result.detail.startswith("Service unreachable: ")
    assert "nowhere.test" in result.detail


# ------------------------------------------------------------------ a 202's Location


def poll(location: str, network: RecordingNetwork, **changes: Any) -> services.RunResult:
    out = services.Outbound(
        policy=OutboundPolicy.allowing((), StandInResolver(NAMES)),
        timeout=5,
        service_key=changes.pop("service_key", None),
        key_hosts=frozenset(changes.pop("key_hosts", ())),
        transport=network.transport(),
    )
    service = target(changes.pop("url", "http://public.test/run"), **changes)
    return asyncio.run(services.poll_location(service, location, out, limit=60))


def test_a_202_hands_over_its_location_made_absolute_and_its_retry_after() -> None:
    network = RecordingNetwork(
        lambda request: httpx.Response(
            202, json={"queued": 1}, headers={"location": "../jobs/7", "retry-after": "3"}
        )
    )
    result = run("http://public.test/api/run", network)
    assert (result.status, result.status_code, result.response_json) == (200, 202, {"queued": 1})
    assert (result.location, result.retry_after) == ("http://public.test/jobs/7", 3.0)
    assert result.final().to_json() == {
        "status": 200,
        "detail": "Service called successfully.",
        "status_code": 202,
        "response_json": {"queued": 1},
        "location": None,
        "retry_after": None,
    }
    # Only a 202 is polled; a 201's Location is where the created thing is.
    network = RecordingNetwork(lambda request: httpx.Response(201, headers={"location": "/x"}))
    assert run("http://public.test/run", network).location is None


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("0", 0.0),
        ("2.5", 2.5),
        ("-3", 0.0),
        ("nan", None),
        ("soon", None),
        ("", None),
        ("Thu, 01 Jan 2026 00:00:10 GMT", 10.0),
        ("Thu, 01 Jan 2026 00:00:00 GMT", 0.0),
    ],
)
def test_retry_after_in_seconds(header: str, seconds: float | None) -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert services.retry_after_seconds(header, now) == seconds


def test_polling_a_location_goes_through_the_policy_and_the_key_stays_home() -> None:
    network = RecordingNetwork(lambda request: httpx.Response(200, json={"done": True}))
    keyed = {"use_service_key": True, "service_key": "the-key", "key_hosts": {"public.test"}}
    result = poll("http://public.test/jobs/7", network, **keyed)
    assert (result.status, result.status_code, result.response_json) == (200, 200, {"done": True})
    (sent,) = network.requests
    assert sent.method == "GET" and sent.content == b""
    assert sent.headers["x-functions-key"] == "the-key"
    # Another origin (another host, or the same host on another port or scheme): no key.
    for elsewhere in (
        "http://other.test/jobs/7",
        "http://public.test:8080/jobs/7",
        "https://public.test/jobs/7",
    ):
        network = RecordingNetwork(lambda request: httpx.Response(200, json={}))
        assert poll(elsewhere, network, **keyed).status == 200
        assert "x-functions-key" not in network.requests[0].headers, elsewhere
    # A Location the policy refuses: nothing is sent.
    for refused, named in (
        ("http://metadata.test/latest/", "169.254.169.254"),
        ("http://public.test/runtime/webhooks/durabletask/instances", "durabletask"),
        ("file:///etc/passwd", "only http and https"),
    ):
        network = RecordingNetwork()
        result = poll(refused, network, **keyed)
        assert result.status == 400 and named in result.detail, result.detail
        assert network.requests == []
