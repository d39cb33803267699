"""The outbox's drainer against the database and stand-ins on 127.0.0.1: signed webhooks,
retries with backoff, dead deliveries, leases, two drainers at once, the outbound policy,
and email through the Communication Services stand-in with the real SDK. The clock is
passed in (`now`): nothing sleeps to move time."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from dtbase_core.config import NotifySettings, Settings
from dtbase_core.migrations import upgrade
from dtbase_core.notifications import channels
from dtbase_core.notifications.delivery import Outcome
from dtbase_core.notifications.drain import (
    DrainSummary,
    RetryPolicy,
    claim_due,
    drain,
    record_outcome,
)
from dtbase_core.notifications.outbox import enqueue
from dtbase_core.notifications.senders import Sender
from dtbase_core.orm.notifications import NotificationChannel, NotificationDelivery
from tests import support
from tests.notify_standins import AcsEmailServer, WebhookReceiver, new_access_key

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SECRET = "whsec-" + "s" * 26
EVENT = {
    "alert": {"id": 7, "rule_name": "too-hot", "state": "firing", "severity": "critical"},
    "rule": {"name": "too-hot", "kind": "threshold"},
    "transition": "firing",
    "at": T0.isoformat(),
}
LEASE = 300.0


@pytest.fixture(scope="module")
def migrated(database: support.TestDatabase) -> support.TestDatabase:
    upgrade(database.url)
    return database


@pytest.fixture
def engine(migrated: support.TestDatabase) -> sa.Engine:
    migrated.truncate_all()
    return migrated.engine


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(SECRET)
    yield server
    server.close()


def settings(**notify: Any) -> Settings:
    return Settings(local_mode=True, notify=NotifySettings(**{"timeout_seconds": 5.0, **notify}))


class Outbox:
    """The database as the drainer sees it, with a test's helpers."""

    def __init__(self, engine: sa.Engine, settings: Settings | None = None) -> None:
        self.engine = engine
        self.settings = settings or globals()["settings"]()
        self.sender = Sender(self.settings)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine) as session, session.begin():
            yield session

    def channel(self, name: str = "ops", **fields: Any) -> None:
        with self.session() as session:
            channels.insert_channel(
                session,
                name=name,
                kind=fields.pop("kind", "webhook"),
                url=fields.pop("url", None),
                recipients=fields.pop("recipients", None),
                secret=fields.pop("secret", None),
                template=fields.pop("template", None),
            )

    def enqueue(self, *names: str, event: dict[str, Any] = EVENT, now: datetime = T0) -> list[int]:
        with self.session() as session:
            return enqueue(session, channel_names=names or ("ops",), event=event, now=now)

    def drain(
        self, now: datetime, retry: RetryPolicy | None = None, limit: int = 50
    ) -> DrainSummary:
        return asyncio.run(
            drain(
                sessions=self.session,
                sender=self.sender,
                now=now,
                retry=retry or RetryPolicy(),
                limit=limit,
                lease_seconds=LEASE,
            )
        )

    def deliveries(self, **filters: Any) -> list[dict[str, Any]]:
        with self.session() as session:
            return channels.list_deliveries(
                session, channel=filters.get("channel"), status=filters.get("status"), limit=500
            )


@pytest.fixture
def outbox(engine: sa.Engine) -> Outbox:
    return Outbox(engine)


def test_a_webhook_is_posted_signed_and_recorded(outbox: Outbox, receiver: WebhookReceiver) -> None:
    outbox.channel(url=receiver.url, secret=SECRET)
    [delivery_id] = outbox.enqueue()
    summary = outbox.drain(T0)
    assert (summary.claimed, summary.delivered) == (1, 1)
    [got] = receiver.received
    assert got.signature_ok is True
    assert got.headers["X-DTBase-Delivery"] == str(delivery_id)
    assert got.headers["Content-Type"] == "application/json"
    assert got.json == {"delivery_id": delivery_id, **EVENT}
    [row] = outbox.deliveries()
    assert row["status"] == "delivered"
    assert (row["attempts"], row["last_status_code"], row["last_error"]) == (1, 200, None)
    assert row["delivered_at"] == T0
    assert [(a["status_code"], a["error"]) for a in row["history"]] == [(200, None)]
    # Delivered: never sent again.
    assert outbox.drain(T0 + timedelta(days=1)).claimed == 0
    assert len(receiver.received) == 1


def test_a_wrong_secret_does_not_verify(outbox: Outbox, receiver: WebhookReceiver) -> None:
    """The receiver's check can fail: a signature made with another secret is refused."""
    outbox.channel(url=receiver.url, secret="another-secret")
    outbox.enqueue()
    outbox.drain(T0)
    assert receiver.received[0].signature_ok is False


def test_without_a_secret_there_is_no_signature(outbox: Outbox, receiver: WebhookReceiver) -> None:
    outbox.channel(url=receiver.url)
    outbox.enqueue()
    outbox.drain(T0)
    [got] = receiver.received
    assert got.signature_ok is None
    assert "X-DTBase-Delivery" in got.headers


def test_failures_are_retried_with_backoff_then_delivered(
    outbox: Outbox, receiver: WebhookReceiver
) -> None:
    receiver.replies = [500, 503]
    outbox.channel(url=receiver.url, secret=SECRET)
    outbox.enqueue()
    assert outbox.drain(T0).retrying == 1
    [row] = outbox.deliveries()
    assert row["status"] == "pending"
    assert row["next_attempt_at"] == T0 + timedelta(seconds=30)
    assert (row["last_status_code"], row["last_error"]) == (
        500,
        'the receiver answered 500: {"error": "receiver is down"}',
    )
    # Not due yet: nothing is claimed.
    assert outbox.drain(T0 + timedelta(seconds=29)).claimed == 0
    t1 = T0 + timedelta(seconds=30)
    assert outbox.drain(t1).retrying == 1
    assert outbox.deliveries()[0]["next_attempt_at"] == t1 + timedelta(seconds=60)
    assert outbox.drain(t1 + timedelta(seconds=59)).claimed == 0
    assert outbox.drain(t1 + timedelta(seconds=60)).delivered == 1
    [row] = outbox.deliveries()
    assert (row["status"], row["attempts"], row["last_status_code"], row["last_error"]) == (
        "delivered",
        3,
        200,
        None,
    )
    assert [a["status_code"] for a in row["history"]] == [500, 503, 200]
    assert [a["at"] for a in row["history"]] == [T0, t1, t1 + timedelta(seconds=60)]
    # Every send carried the same delivery id, each correctly signed.
    assert receiver.per_delivery() == {str(row["id"]): 3}
    assert all(r.signature_ok for r in receiver.received)


def test_backoff_doubles_up_to_its_cap() -> None:
    policy = RetryPolicy(max_attempts=20, first_seconds=30, max_seconds=3600)
    assert [policy.delay(n).total_seconds() for n in range(1, 10)] == [
        30,
        60,
        120,
        240,
        480,
        960,
        1920,
        3600,
        3600,
    ]


def test_a_receiver_s_retry_after_is_honoured_within_the_cap(
    outbox: Outbox, receiver: WebhookReceiver
) -> None:
    receiver.replies = [503, 429, 503]
    receiver.retry_after = "600"
    retry = RetryPolicy(max_attempts=5, first_seconds=30, max_seconds=900)
    outbox.channel(url=receiver.url)
    outbox.enqueue()
    outbox.drain(T0, retry)
    t1 = T0 + timedelta(seconds=600)  # the receiver's wait, longer than 30 s
    assert outbox.deliveries()[0]["next_attempt_at"] == t1
    assert outbox.drain(t1 - timedelta(seconds=1), retry).claimed == 0
    receiver.retry_after = "5"
    outbox.drain(t1, retry)
    t2 = t1 + timedelta(seconds=60)  # shorter than the backoff: the backoff wins
    assert outbox.deliveries()[0]["next_attempt_at"] == t2
    receiver.retry_after = "86400"
    outbox.drain(t2, retry)
    assert outbox.deliveries()[0]["next_attempt_at"] == t2 + timedelta(seconds=900)  # capped


def test_a_delivery_is_dead_after_its_last_attempt_and_kept(
    outbox: Outbox, receiver: WebhookReceiver
) -> None:
    receiver.replies = [500] * 10
    retry = RetryPolicy(max_attempts=3, first_seconds=10, max_seconds=100)
    outbox.channel(url=receiver.url, secret=SECRET)
    outbox.enqueue()
    now = T0
    statuses = []
    for _ in range(3):
        summary = outbox.drain(now, retry)
        statuses.append((summary.retrying, summary.dead))
        now += timedelta(hours=1)
    assert statuses == [(1, 0), (1, 0), (0, 1)]
    [row] = outbox.deliveries(status="dead")
    assert (row["attempts"], row["last_status_code"], row["next_attempt_at"]) == (3, 500, None)
    assert len(row["history"]) == 3
    # Dead is final: a later drain leaves it alone, and it stays listed.
    assert outbox.drain(now + timedelta(days=30), retry).claimed == 0
    assert len(receiver.received) == 3
    assert outbox.deliveries(status="pending") == []
    assert [r["id"] for r in outbox.deliveries(channel="ops")] == [row["id"]]


def test_an_unreachable_receiver_is_retried(outbox: Outbox) -> None:
    closed = WebhookReceiver()
    url = closed.url
    closed.close()
    outbox.channel(url=url)
    outbox.enqueue()
    assert outbox.drain(T0).retrying == 1
    [row] = outbox.deliveries()
    assert row["last_status_code"] is None
    assert row["last_error"].startswith("could not reach the receiver")


def test_a_refused_address_fails_at_once_and_nothing_is_sent(engine: sa.Engine) -> None:
    sent: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    outbox = Outbox(engine)
    outbox.sender = Sender(outbox.settings, transport=httpx.MockTransport(record))
    outbox.channel(url="http://169.254.169.254/latest/meta-data/")
    outbox.channel("v6", url="http://[::ffff:10.0.0.1]/hook")
    outbox.enqueue("ops", "v6")
    summary = outbox.drain(T0)
    assert (summary.dead, summary.delivered) == (2, 0)
    assert sent == []
    errors = {row["channel"]: row["last_error"] for row in outbox.deliveries()}
    assert errors["ops"].startswith("Refused to call 169.254.169.254")
    assert "link-local" in errors["ops"]
    assert "private address in IPv6 form" in errors["v6"]


def test_a_lease_keeps_a_claimed_delivery_from_other_drainers_until_it_ends(
    outbox: Outbox, receiver: WebhookReceiver
) -> None:
    outbox.channel(url=receiver.url, secret=SECRET)
    [delivery_id] = outbox.enqueue()
    with outbox.session() as session:  # a drainer that dies after its claim
        [lost] = claim_due(session, now=T0, limit=10, lease_seconds=LEASE)
    assert outbox.drain(T0 + timedelta(seconds=LEASE - 1)).claimed == 0
    summary = outbox.drain(T0 + timedelta(seconds=LEASE))
    assert (summary.claimed, summary.delivered) == (1, 1)
    # The first drainer comes back: its lease is gone, its outcome changes nothing.
    with outbox.session() as session:
        status = record_outcome(
            session, lost, Outcome(False, 500, "late"), now=T0, retry=RetryPolicy()
        )
    assert status is None
    [row] = outbox.deliveries()
    assert (row["id"], row["status"], row["attempts"]) == (delivery_id, "delivered", 2)
    assert [a["status_code"] for a in row["history"]] == [200, 500]


def test_skip_locked_gives_concurrent_claims_different_rows(
    outbox: Outbox, receiver: WebhookReceiver
) -> None:
    outbox.channel(url=receiver.url)
    ids = [outbox.enqueue()[0] for _ in range(6)]
    with Session(outbox.engine) as first, first.begin():
        mine = claim_due(first, now=T0, limit=4, lease_seconds=LEASE)
        with Session(outbox.engine) as second, second.begin():
            # The first claim is not committed: its rows are locked, skipped, not waited for.
            theirs = claim_due(second, now=T0, limit=4, lease_seconds=LEASE)
    assert [c.id for c in mine] == ids[:4]
    assert [c.id for c in theirs] == ids[4:]


def test_two_drainers_at_once_send_each_delivery_once(
    outbox: Outbox, receiver: WebhookReceiver
) -> None:
    receiver.delay = 0.02
    outbox.channel(url=receiver.url, secret=SECRET)
    ids = outbox.enqueue(event=EVENT)
    for _ in range(39):
        ids += outbox.enqueue()
    start = threading.Barrier(2)
    summaries: list[DrainSummary] = []

    def drainer() -> None:
        start.wait()
        for _ in range(10):  # small batches, so the two interleave
            summary = outbox.drain(T0, limit=5)
            summaries.append(summary)
            if summary.claimed == 0:
                break

    threads = [threading.Thread(target=drainer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert receiver.per_delivery() == {str(i): 1 for i in ids}
    assert sum(s.delivered for s in summaries) == 40
    assert {r["status"] for r in outbox.deliveries()} == {"delivered"}
    assert all(r.signature_ok for r in receiver.received)


def test_a_channel_template_shapes_the_body_that_is_signed(
    outbox: Outbox, receiver: WebhookReceiver
) -> None:
    slack = '{"text": {{ ("*" ~ rule.name ~ "* is " ~ transition) | tojson }}}'
    outbox.channel(url=receiver.url, secret=SECRET, template=slack)
    outbox.enqueue()
    outbox.drain(T0)
    [got] = receiver.received
    assert got.json == {"text": "*too-hot* is firing"}
    assert got.signature_ok is True


def test_a_template_that_fails_at_send_time_makes_the_delivery_dead(
    outbox: Outbox, receiver: WebhookReceiver
) -> None:
    """Saved templates render on a sample event; an event may still break one."""
    with outbox.session() as session:
        session.add(
            NotificationChannel(
                name="ops", kind="webhook", url=receiver.url, template="{{ 1 / alert.zero }}"
            )
        )
    outbox.enqueue(event={**EVENT, "alert": {"zero": 0}})
    assert outbox.drain(T0).dead == 1
    assert receiver.received == []
    assert "template failed" in outbox.deliveries()[0]["last_error"]


def test_a_deleted_channel_s_pending_delivery_goes_dead(
    outbox: Outbox, receiver: WebhookReceiver
) -> None:
    outbox.channel(url=receiver.url)
    outbox.enqueue()
    with outbox.session() as session:
        channels.delete_channel(session, name="ops")
    assert outbox.drain(T0).dead == 1
    [row] = outbox.deliveries(channel="ops")
    assert row["last_error"] == "the channel was deleted"
    assert receiver.received == []


def test_a_send_that_raises_is_recorded_as_a_failed_attempt(
    outbox: Outbox, receiver: WebhookReceiver
) -> None:
    class Broken(Sender):
        async def send(self, *args: Any) -> Outcome:
            raise RuntimeError("a bug")

    outbox.sender = Broken(outbox.settings)
    outbox.channel(url=receiver.url)
    outbox.enqueue()
    assert outbox.drain(T0).retrying == 1
    [row] = outbox.deliveries()
    assert row["last_error"] == "internal error while sending: RuntimeError"
    assert row["next_attempt_at"] == T0 + timedelta(seconds=30)


# --- email through Azure Communication Services ----------------------------------------


@pytest.fixture
def acs() -> Iterator[tuple[AcsEmailServer, str]]:
    key = new_access_key()
    server = AcsEmailServer(key)
    yield server, key
    server.close()


def email_outbox(engine: sa.Engine, endpoint: str, key: str) -> Outbox:
    return Outbox(
        engine,
        settings(
            acs_endpoint=endpoint, acs_access_key=key, acs_sender_address="DoNotReply@dt.example"
        ),
    )


def test_an_email_goes_through_communication_services(
    engine: sa.Engine, acs: tuple[AcsEmailServer, str]
) -> None:
    server, key = acs
    outbox = email_outbox(engine, server.endpoint, key)
    outbox.channel("mail", kind="email", recipients=["ops@example.org", "lead@example.org"])
    [delivery_id] = outbox.enqueue("mail")
    assert outbox.drain(T0).delivered == 1
    assert server.refusals == []
    assert server.polls >= 1  # the SDK followed the operation to its end
    [message] = server.messages
    assert message["senderAddress"] == "DoNotReply@dt.example"
    assert message["recipients"]["to"] == [
        {"address": "ops@example.org"},
        {"address": "lead@example.org"},
    ]
    assert message["content"]["subject"] == "[DTBase] too-hot: firing (critical)"
    assert "too-hot is firing (critical)" in message["content"]["plainText"]
    assert "<strong>too-hot</strong>" in message["content"]["html"]
    assert message["headers"] == {"X-DTBase-Delivery": str(delivery_id)}
    [row] = outbox.deliveries()
    assert (row["status"], row["last_status_code"]) == ("delivered", 202)


def test_an_email_the_service_fails_is_retried(
    engine: sa.Engine, acs: tuple[AcsEmailServer, str]
) -> None:
    server, key = acs
    outbox = email_outbox(engine, server.endpoint, key)
    outbox.channel("mail", kind="email", recipients=["gone@bounce.example"])
    outbox.enqueue("mail")
    assert outbox.drain(T0).retrying == 1
    [row] = outbox.deliveries()
    assert row["last_error"] == (
        "Communication Services did not send it: Message was not delivered: every recipient "
        "is suppressed"
    )


def test_a_wrong_access_key_is_refused_by_the_service(
    engine: sa.Engine, acs: tuple[AcsEmailServer, str]
) -> None:
    server, _ = acs
    outbox = email_outbox(engine, server.endpoint, new_access_key())
    outbox.channel("mail", kind="email", recipients=["ops@example.org"])
    outbox.enqueue("mail")
    assert outbox.drain(T0).retrying == 1
    assert server.refusals == ["bad signature"]
    assert server.messages == []
    [row] = outbox.deliveries()
    assert (row["last_status_code"], row["last_error"]) == (
        401,
        "Communication Services answered 401: bad signature",
    )


def test_email_without_settings_is_dead_with_the_reason(outbox: Outbox) -> None:
    outbox.channel("mail", kind="email", recipients=["ops@example.org"])
    outbox.enqueue("mail")
    assert outbox.drain(T0).dead == 1
    assert outbox.deliveries()[0]["last_error"].startswith("email is not configured")


def test_the_drainer_uses_the_partial_index(outbox: Outbox) -> None:
    """Due pending rows are found through ix_notification_delivery_due, whatever the
    delivered history holds."""
    with outbox.session() as session:
        session.execute(sa.text("set local enable_seqscan = off"))
        plan = "\n".join(
            session.scalars(
                sa.text(
                    "explain select id from notification_delivery "
                    "where notification_delivery.status = 'pending' and next_attempt_at <= now()"
                )
            )
        )
    assert "ix_notification_delivery_due" in plan
    with outbox.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(NotificationDelivery)) == 0


def test_no_secret_in_any_log_line(
    engine: sa.Engine,
    receiver: WebhookReceiver,
    acs: tuple[AcsEmailServer, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every logger at DEBUG (httpx, httpcore, azure-core's request log) while a signed
    webhook, a failing one and an email are sent: neither the channel's secret nor the
    Communication Services key shows."""
    server, key = acs
    receiver.replies = [500]
    outbox = email_outbox(engine, server.endpoint, key)
    outbox.channel(url=receiver.url, secret=SECRET)
    outbox.channel("mail", kind="email", recipients=["ops@example.org"])
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    try:
        outbox.enqueue("ops", "mail")
        first = outbox.drain(T0)
        second = outbox.drain(T0 + timedelta(minutes=1))
    finally:
        root.setLevel(level)
    assert (first.delivered, first.retrying, second.delivered) == (1, 1, 1)
    assert "emails:send" in caplog.text  # the SDK's request log was captured
    for secret in (SECRET, key):
        assert secret not in caplog.text
    with outbox.session() as session:
        # What a traceback would print of a claimed delivery: its channel, not its secret.
        claimed = repr(channels.start_test(session, name="ops", now=T0, lease_seconds=LEASE))
        listed = str(channels.list_channels(session, full_urls=True)) + str(outbox.deliveries())
    assert "ChannelTarget(name='ops'" in claimed
    assert SECRET not in claimed + listed


def test_a_webhook_url_is_logged_as_its_origin_only(caplog: pytest.LogCaptureFixture) -> None:
    """httpx logs each request's URL; a Slack-style URL carries its credential in the path."""
    from dtbase_core import redact

    redact.install_log_filter()
    url = "https://hooks.example.com/services/T0/B0/secretpathtoken123456"
    caplog.set_level(logging.INFO)
    with redact.secret_url(url):
        logging.getLogger("httpx").info("HTTP Request: POST %s 200 OK", url)
        assert redact.mask_text(f"could not reach {url}") == (
            "could not reach https://hooks.example.com/***"
        )
    logging.getLogger("httpx").info("after: %s", "https://other.example/path")
    assert "secretpathtoken" not in caplog.text
    assert "https://hooks.example.com/***" in caplog.text
    assert "https://other.example/path" in caplog.text  # only while it is being called
