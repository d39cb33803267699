"""Outbound HTTP to user-given URLs, without server-side request forgery (README,
"Migrating from DTBase: what changed").

Every hop (the URL, then each redirect's `Location`) is checked before anything is sent:

- http or https only, and never the Durable management API (`/runtime/webhooks/durabletask`,
  which lists and purges every orchestration), whatever the host;
- the host is resolved once (a literal address is read as the URL Standard reads it, so
  `2130706433`, `0177.0.1` and `0x7f.1` are 127.0.0.1), and every address it resolves to
  must be a public one: loopback, link-local (169.254.0.0/16, the cloud metadata address),
  private, unique-local (fc00::/7), unspecified, multicast and reserved addresses are
  refused, also in their IPv6 forms (`::ffff:127.0.0.1`, 6to4, NAT64);
- hosts listed in DT_SERVICE_ALLOWED_HOSTS skip the address check (the app's own functions
  on 127.0.0.1 in local mode);
- the connection goes to the address that was checked (the URL is rewritten to it, with the
  original `Host` header and, for https, the original name for SNI and the certificate), so
  a second DNS answer cannot move it elsewhere (no DNS rebinding).

A refusal raises `OutboundRefused` (400) naming the host and address; nothing is sent.
"""

from __future__ import annotations

import asyncio
import ipaddress
import posixpath
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import httpx

from dtbase_core.errors import DomainError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the addresses to connect to; a name that does not resolve raises OSError.
Resolver = Callable[[str, int], Awaitable[Sequence[Address]]]

MANAGEMENT_PATH = "/runtime/webhooks/durabletask"
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
DEFAULT_PORTS = {"http": 80, "https": 443}
# NAT64's well-known prefix: the last 32 bits are an IPv4 address.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")


_tls: ssl.SSLContext | None = None


async def tls_context() -> ssl.SSLContext:
    """One TLS context for every outbound client: building one reads the CA bundle (a
    quarter of a second), which must not happen per call on the event loop."""
    global _tls
    if _tls is None:
        _tls = await asyncio.to_thread(httpx.create_ssl_context)
    return _tls


class OutboundRefused(DomainError):
    """A URL the policy will not call: 400, naming the host and the address."""

    status_code = 400


async def system_resolver(host: str, port: int) -> list[Address]:
    """The platform's resolver (getaddrinfo), without blocking the event loop."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[Address] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


def normalise_host(host: str) -> str:
    """Lower case, no brackets and no trailing dot: how hosts are compared."""
    return host.strip().strip("[]").rstrip(".").lower()


def _ipv4_number(part: str) -> int | None:
    if part[:2].lower() == "0x":
        digits, base = part[2:], 16
    elif len(part) > 1 and part.startswith("0"):
        digits, base = part[1:], 8
    else:
        digits, base = part, 10
    if digits == "":
        return 0 if base == 16 else None
    try:
        return int(digits, base)
    except ValueError:
        return None


def ipv4_literal(host: str) -> ipaddress.IPv4Address | None:
    """The URL Standard's IPv4 parser: a host whose last label is a number is an IPv4
    address in decimal, octal or hex, in 1 to 4 parts (`2130706433`, `0177.0.1`); None for a
    name. A number-like host that is no valid address is refused."""
    labels = host.split(".")
    if len(labels) > 1 and labels[-1] == "":
        labels.pop()
    last = labels[-1]
    if not (last.isdigit() or (last[:2].lower() == "0x" and _ipv4_number(last) is not None)):
        return None
    numbers = [_ipv4_number(label) for label in labels]
    if len(labels) > 4 or any(n is None for n in numbers):
        raise OutboundRefused(f"Refused to call {host}: not a valid IPv4 address")
    *head, tail = [n for n in numbers if n is not None]
    if any(n > 255 for n in head) or tail >= 256 ** (5 - len(labels)):
        raise OutboundRefused(f"Refused to call {host}: not a valid IPv4 address")
    value = tail
    for index, number in enumerate(head):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def literal_address(host: str) -> Address | None:
    """The address a literal host names, or None for a name to resolve."""
    if ":" in host:
        if "%" in host:  # a zone index: only link-local addresses have one
            raise OutboundRefused(f"Refused to call [{host}]: a scoped (link-local) address")
        try:
            return ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise OutboundRefused(f"Refused to call [{host}]: {exc}") from None
    return ipv4_literal(host)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def why_refused(address: Address) -> str | None:
    """What kind of non-public address this is ("a loopback address"), or None for a public
    one."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            reason = why_refused(inner)
            return f"{reason} in IPv6 form" if reason else None
        if address in _UNIQUE_LOCAL:
            return "a unique-local address"
    for reason, applies in (
        ("an unspecified address", address.is_unspecified),
        ("a loopback address", address.is_loopback),
        ("a link-local address", address.is_link_local),
        ("a multicast address", address.is_multicast),
        ("a private address", address.is_private),
        ("a reserved address", address.is_reserved),
        ("a non-public address", not address.is_global),
    ):
        if applies:
            return reason
    return None


def _management_path(path: str) -> bool:
    """Whether a path reaches the Durable management API, however it is spelled."""
    decoded = path
    for _ in range(3):  # %252F decodes twice
        decoded = unquote(decoded)
    normal = posixpath.normpath("/" + decoded.replace("\\", "/").lower())
    return MANAGEMENT_PATH in normal + "/"


@dataclass(frozen=True)
class Pinned:
    """A checked hop: the URL as given and the address to connect to."""

    url: httpx.URL
    address: Address

    @property
    def connect_url(self) -> httpx.URL:
        return self.url.copy_with(host=str(self.address))

    @property
    def host_header(self) -> str:
        return self.url.netloc.decode("ascii")

    @property
    def extensions(self) -> dict[str, Any]:
        """For https to a name: SNI and the certificate check use the name, not the IP."""
        name = self.url.raw_host.decode("ascii")
        if self.url.scheme == "https" and literal_address(normalise_host(name)) is None:
            return {"sni_hostname": name}
        return {}


@dataclass(frozen=True)
class OutboundPolicy:
    allowed_hosts: frozenset[str] = frozenset()
    resolver: Resolver = field(default=system_resolver)

    @classmethod
    def allowing(cls, hosts: Sequence[str], resolver: Resolver | None = None) -> OutboundPolicy:
        allowed = frozenset(normalise_host(host) for host in hosts if host.strip())
        return cls(allowed, resolver or system_resolver)

    def is_allowed_host(self, url: httpx.URL) -> bool:
        return normalise_host(url.host) in self.allowed_hosts

    async def check(self, url: httpx.URL) -> Pinned:
        """The address to connect to for `url`, or `OutboundRefused`. A name that does not
        resolve raises httpx.ConnectError (an unreachable service, not a refusal)."""
        if url.scheme not in DEFAULT_PORTS or not url.host:
            raise OutboundRefused(f"Refused to call {url.scheme}: URLs: only http and https")
        if _management_path(url.path):
            raise OutboundRefused(
                f"Refused to call {MANAGEMENT_PATH} on {url.host}: the Durable management API"
            )
        host = normalise_host(url.host)
        literal = literal_address(host)
        if literal is not None:
            addresses: Sequence[Address] = [literal]
        else:
            port = url.port or DEFAULT_PORTS[url.scheme]
            try:
                addresses = await self.resolver(host, port)
            except OSError as exc:
                raise httpx.ConnectError(f"{host} does not resolve ({exc})") from None
            if not addresses:
                raise httpx.ConnectError(f"{host} does not resolve")
        if host not in self.allowed_hosts:
            for address in addresses:
                reason = why_refused(address)
                if reason is not None:
                    raise OutboundRefused(
                        f"Refused to call {url.host} at {address}: {reason} "
                        "(only public addresses, or hosts in DT_SERVICE_ALLOWED_HOSTS)"
                    )
        return Pinned(url, addresses[0])


def same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    return (a.scheme, normalise_host(a.host), a.port) == (b.scheme, normalise_host(b.host), b.port)


async def send(
    client: httpx.AsyncClient,
    method: str,
    url: httpx.URL,
    *,
    policy: OutboundPolicy,
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
    origin_headers: Mapping[str, str] | None = None,
    max_redirects: int = MAX_REDIRECTS,
) -> httpx.Response:
    """Send a request through `policy`, following redirects hop by hop; the reply is read.

    `origin_headers` (a key) go only to the first URL's origin, never to another host a
    redirect names. `client` must not follow redirects itself."""
    first = url
    for _ in range(max_redirects + 1):
        pinned = await policy.check(url)
        sent = {**(headers or {}), "Host": pinned.host_header}
        if origin_headers and same_origin(url, first):
            sent.update(origin_headers)
        request = client.build_request(
            method, pinned.connect_url, headers=sent, content=content, extensions=pinned.extensions
        )
        response = await client.send(request)
        location = response.headers.get("location")
        if response.status_code not in REDIRECT_STATUSES or not location:
            return response
        url = url.join(location)
        # As browsers and httpx do: 303 (and 301/302 after a POST) become a GET without a body.
        if (response.status_code == 303 and method != "HEAD") or (
            response.status_code in (301, 302) and method == "POST"
        ):
            method, content = "GET", None
            headers = {k: v for k, v in (headers or {}).items() if k.lower() != "content-type"}
    raise httpx.TooManyRedirects(f"more than {max_redirects} redirects", request=request)
