"""Outside services of the notifications, as small servers on 127.0.0.1 speaking their
protocols, so that the real client code runs: a webhook receiver that checks
X-DTBase-Signature as a receiver would, and Azure Communication Services Email's REST API
(`POST /emails:send`, 202 with Operation-Location, the operation polled to `Succeeded`),
checking the SDK's HMAC-SHA256 request signature with the access key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import uuid
from collections import Counter
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool | None  # None: no signature header

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def verify_signature(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does: recompute the HMAC of the raw body, compare in constant time."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


class WebhookReceiver(ThreadingHTTPServer):
    """Records each POST; answers the statuses in `replies` in turn (then 200), after
    `delay` seconds; `peak` is the most requests it held at once."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, secret: str | None = None, replies: list[int] | None = None) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                header = self.headers.get("X-DTBase-Signature")
                ok = None
                if header is not None:
                    ok = receiver.secret is not None and verify_signature(
                        receiver.secret, body, header
                    )
                with receiver.lock:
                    receiver.received.append(Received(self.path, dict(self.headers), body, ok))
                    status = receiver.replies.pop(0) if receiver.replies else 200
                    receiver.in_flight += 1
                    receiver.peak = max(receiver.peak, receiver.in_flight)
                if receiver.delay:
                    threading.Event().wait(receiver.delay)
                with receiver.lock:
                    receiver.in_flight -= 1
                payload = b'{"ok": true}' if status < 300 else b'{"error": "receiver is down"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                if status >= 300 and receiver.retry_after is not None:
                    self.send_header("Retry-After", receiver.retry_after)
                self.end_headers()
                self.wfile.write(payload)

        super().__init__(("127.0.0.1", 0), Handler)
        self.secret = secret
        self.retry_after: str | None = None  # sent with every failure
        self.replies = list(replies or [])
        self.delay = 0.0
        self.in_flight = 0
        self.peak = 0
        self.lock = threading.Lock()
        self.received: list[Received] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def per_delivery(self) -> Counter[str]:
        with self.lock:
            return Counter(r.headers.get("X-DTBase-Delivery", "") for r in self.received)

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class AcsEmailServer(ThreadingHTTPServer):
    """Azure Communication Services Email, as far as EmailClient.begin_send uses it.

    Each request must carry the HMAC-SHA256 signature the access key makes (x-ms-date,
    host and x-ms-content-sha256, signed with the base64-decoded key) and a body matching
    its content hash; else 401, as the service answers. A message to an address at
    `bounce.example` ends `Failed`."""

    daemon_threads = True

    def __init__(self, access_key: str) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, payload: Any, headers: dict[str, str]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _authorised(self, body: bytes) -> str | None:
                """None if the signature holds, else why not."""
                auth = self.headers.get("Authorization", "")
                date = self.headers.get("x-ms-date", "")
                content_hash = self.headers.get("x-ms-content-sha256", "")
                if not auth.startswith("HMAC-SHA256 SignedHeaders=x-ms-date;host;"):
                    return "not an HMAC-SHA256 request"
                if base64.b64encode(hashlib.sha256(body).digest()).decode() != content_hash:
                    return "the content hash does not match the body"
                parsedate_to_datetime(date)  # an HTTP date, or ValueError
                to_sign = (
                    f"{self.command}\n{self.path}\n{date};{self.headers['Host']};{content_hash}"
                )
                digest = hmac.new(
                    base64.b64decode(server.access_key), to_sign.encode(), hashlib.sha256
                ).digest()
                expected = base64.b64encode(digest).decode()
                signature = auth.rsplit("&Signature=", 1)[-1]
                return None if hmac.compare_digest(expected, signature) else "bad signature"

            def _denied(self, why: str) -> None:
                server.refusals.append(why)
                self._reply(401, {"error": {"code": "Denied", "message": why}}, {})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                why = self._authorised(body)
                if why is not None:
                    return self._denied(why)
                parts = urlsplit(self.path)
                if parts.path != "/emails:send" or "api-version=" not in parts.query:
                    return self._reply(404, {"error": {"code": "NotFound", "message": "?"}}, {})
                message = json.loads(body)
                operation = self.headers.get("Operation-Id") or str(uuid.uuid4())
                bounced = any(
                    r["address"].endswith("@bounce.example") for r in message["recipients"]["to"]
                )
                with server.lock:
                    server.messages.append(message)
                    server.operations[operation] = "Failed" if bounced else "Succeeded"
                location = (
                    f"http://{self.headers['Host']}/emails/operations/{operation}"
                    "?api-version=2025-09-01"
                )
                self._reply(
                    202,
                    {"id": operation, "status": "Running"},
                    {"Operation-Location": location, "Retry-After": "0"},
                )

            def do_GET(self) -> None:
                why = self._authorised(b"")
                if why is not None:
                    return self._denied(why)
                operation = urlsplit(self.path).path.rsplit("/", 1)[-1]
                with server.lock:
                    status = server.operations.get(operation)
                    server.polls += 1
                if status is None:
                    return self._reply(404, {"error": {"code": "NotFound", "message": "?"}}, {})
                payload: dict[str, Any] = {"id": operation, "status": status}
                if status == "Failed":
                    payload["error"] = {
                        "code": "EmailDroppedAllRecipientsSuppressed",
                        "message": "Message was not delivered: every recipient is suppressed",
                    }
                self._reply(200, payload, {"Retry-After": "0"})

        super().__init__(("127.0.0.1", 0), Handler)
        self.access_key = access_key
        self.lock = threading.Lock()
        self.messages: list[dict[str, Any]] = []
        self.operations: dict[str, str] = {}
        self.refusals: list[str] = []
        self.polls = 0
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()


def new_access_key() -> str:
    """A Communication Services access key: 64 random bytes, base64."""
    return base64.b64encode(uuid.uuid4().bytes * 4).decode()
