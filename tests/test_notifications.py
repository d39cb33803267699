"""/notification over real HTTP through the local host: channels (admins only, secrets
write-only), test-channel against a receiver on 127.0.0.1, list-deliveries, and the outbox
timer delivering webhooks and email (the Communication Services stand-in) with no secret
in any listing or log line."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.orm import Session

from dtbase_core.notifications.outbox import enqueue
from tests.notify_standins import AcsEmailServer, WebhookReceiver, new_access_key
from tests.support import ADMIN_PASSWORD, Api, LocalHost, TestDatabase

SECRET = "whsec-" + "k" * 30
EVENT = {
    "alert": {"id": 3, "rule_name": "quiet", "state": "firing", "severity": "warning"},
    "rule": {"name": "quiet", "kind": "no_data"},
    "transition": "firing",
    "at": "2026-03-01T12:00:00+00:00",
}


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(SECRET)
    yield server
    server.close()


def webhook(name: str, url: str, **more: Any) -> dict[str, Any]:
    return {"name": name, "kind": "webhook", "url": url, "secret": SECRET, **more}


def test_channels_are_listed_without_their_secret(admin: Api, receiver: WebhookReceiver) -> None:
    assert admin.ok("/notification/insert-channel", webhook("ops", receiver.url), 201) == {
        "detail": "Notification channel created"
    }
    admin.ok(
        "/notification/insert-channel",
        {"name": "mail", "kind": "email", "recipients": ["ops@example.org"]},
        201,
    )
    reply = admin.get("/notification/list-channels")
    assert reply.status_code == 200
    assert SECRET not in reply.text
    listed = {c["name"]: c for c in reply.json()}
    assert listed["ops"]["has_secret"] is True
    assert listed["ops"]["url"] == receiver.url
    assert "secret" not in listed["ops"]
    assert listed["mail"]["has_secret"] is False
    assert listed["mail"]["recipients"] == ["ops@example.org"]
    assert [c["name"] for c in reply.json()] == ["mail", "ops"]


def test_a_url_s_secret_query_values_are_masked_in_the_listing(admin: Api) -> None:
    admin.ok("/notification/insert-channel", webhook("q", "https://h.example/x?token=abc&a=1"))
    [channel] = admin.get("/notification/list-channels").json()
    assert channel["url"] == "https://h.example/x?token=***&a=1"


@pytest.mark.parametrize(
    ("body", "loc", "words"),
    [
        ({"name": "a", "kind": "webhook"}, ["body", "url"], "needs a url"),
        ({"name": "a", "kind": "webhook", "url": "ftp://h/x"}, ["body", "url"], "http or https"),
        ({"name": "a", "kind": "email"}, ["body", "recipients"], "at least one"),
        ({"name": "a", "kind": "email", "recipients": ["not-an-address"]}, None, "email address"),
        (
            {"name": "a", "kind": "email", "recipients": ["a@b.org"], "secret": "s"},
            ["body", "secret"],
            "only webhook",
        ),
        ({"name": "a", "kind": "sms", "url": "http://h/"}, ["body", "kind"], "webhook"),
        (
            {"name": "a", "kind": "webhook", "url": "http://h/", "template": "{{ rule.name "},
            ["body", "template"],
            "not a valid Jinja2 template",
        ),
        (
            {"name": "a", "kind": "webhook", "url": "http://h/", "template": "not json {{ at }}"},
            ["body", "template"],
            "did not render JSON",
        ),
        (
            # The sandbox refuses Python internals: no way out to the interpreter.
            {
                "name": "a",
                "kind": "webhook",
                "url": "http://h/",
                "template": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
            },
            ["body", "template"],
            "unsafe",
        ),
    ],
)
def test_bad_channels_are_422_naming_the_field(
    admin: Api, body: dict[str, Any], loc: list[str] | None, words: str
) -> None:
    reply = admin.post("/notification/insert-channel", body)
    assert reply.status_code == 422, reply.text
    [item] = reply.json()["detail"]
    if loc is not None:
        assert item["loc"][:2] == loc
    assert words in item["msg"]
    assert admin.get("/notification/list-channels").json() == []


def test_a_duplicate_channel_is_409(admin: Api, receiver: WebhookReceiver) -> None:
    admin.ok("/notification/insert-channel", webhook("ops", receiver.url), 201)
    reply = admin.post("/notification/insert-channel", webhook("ops", receiver.url))
    assert reply.status_code == 409


def test_unknown_channels_are_400(admin: Api) -> None:
    for route in ("delete-channel", "test-channel"):
        reply = admin.post(f"/notification/{route}", {"name": "nope"})
        assert (reply.status_code, reply.json()) == (
            400,
            {"detail": "Notification channel doesn't exist."},
        )


def test_only_admins_manage_and_test_channels(
    admin: Api, live_host: LocalHost, receiver: WebhookReceiver
) -> None:
    admin.ok("/user/create-user", {"email": "viewer@example.org", "password": "pw"}, 201)
    admin.ok("/notification/insert-channel", webhook("ops", receiver.url), 201)
    viewer = Api(live_host.api, "viewer@example.org", "pw")
    try:
        for route, body in (
            ("insert-channel", webhook("x", receiver.url)),
            ("delete-channel", {"name": "ops"}),
            ("test-channel", {"name": "ops"}),
        ):
            reply = viewer.post(f"/notification/{route}", body)
            assert reply.status_code == 403, (route, reply.text)
            assert reply.json() == {"detail": f"Only an admin can use notification/{route}"}
        # Anyone signed in may look, but only admins see a URL's path (a webhook's may be
        # its credential, as Slack's and Teams' are).
        [listed] = viewer.get("/notification/list-channels").json()
        origin = receiver.url.split("/", 3)
        assert (listed["name"], listed["url"]) == ("ops", f"{origin[0]}//{origin[2]}/***")
        assert viewer.post("/notification/list-deliveries", {}).json() == []
    finally:
        viewer.close()
    assert receiver.received == []


def test_test_channel_sends_a_signed_sample_and_lists_it(
    admin: Api, receiver: WebhookReceiver
) -> None:
    admin.ok("/notification/insert-channel", webhook("ops", receiver.url), 201)
    outcome = admin.ok("/notification/test-channel", {"name": "ops"})
    assert outcome["delivered"] is True
    assert (outcome["status_code"], outcome["error"]) == (200, None)
    [got] = receiver.received
    assert got.signature_ok is True
    assert got.headers["X-DTBase-Delivery"] == str(outcome["delivery_id"])
    body = got.json
    assert list(body) == ["delivery_id", "alert", "rule", "transition", "at"]
    assert (body["delivery_id"], body["transition"]) == (outcome["delivery_id"], "test")
    [row] = admin.ok("/notification/list-deliveries", {"channel": "ops"})
    assert (row["id"], row["status"], row["attempts"], row["transition"]) == (
        outcome["delivery_id"],
        "delivered",
        1,
        "test",
    )
    assert [a["status_code"] for a in row["history"]] == [200]


def test_a_failing_test_is_replied_and_listed_dead_not_retried(
    admin: Api, receiver: WebhookReceiver
) -> None:
    receiver.replies = [500]
    admin.ok("/notification/insert-channel", webhook("ops", receiver.url), 201)
    outcome = admin.ok("/notification/test-channel", {"name": "ops"})
    assert (outcome["delivered"], outcome["status_code"]) == (False, 500)
    assert outcome["error"].startswith("the receiver answered 500")
    [row] = admin.ok("/notification/list-deliveries", {"status": "dead"})
    assert row["last_error"] == outcome["error"]
    assert admin.ok("/notification/list-deliveries", {"status": "pending"}) == []


def test_test_channel_to_a_refused_address_sends_nothing(admin: Api) -> None:
    admin.ok(
        "/notification/insert-channel",
        webhook("metadata", "http://169.254.169.254/metadata/instance"),
        201,
    )
    outcome = admin.ok("/notification/test-channel", {"name": "metadata"})
    assert outcome["delivered"] is False
    assert outcome["status_code"] is None
    assert outcome["error"].startswith("Refused to call 169.254.169.254")


def test_an_email_test_without_communication_services_says_so(admin: Api) -> None:
    admin.ok(
        "/notification/insert-channel",
        {"name": "mail", "kind": "email", "recipients": ["ops@example.org"]},
        201,
    )
    outcome = admin.ok("/notification/test-channel", {"name": "mail"})
    assert (outcome["delivered"], outcome["status_code"]) == (False, None)
    assert outcome["error"].startswith("email is not configured: set DT_ACS_ENDPOINT")


def test_list_deliveries_filters(admin: Api, receiver: WebhookReceiver) -> None:
    receiver.replies = [500]
    admin.ok("/notification/insert-channel", webhook("a", receiver.url), 201)
    admin.ok("/notification/insert-channel", webhook("b", receiver.url), 201)
    first = admin.ok("/notification/test-channel", {"name": "a"})["delivery_id"]
    second = admin.ok("/notification/test-channel", {"name": "b"})["delivery_id"]
    assert [d["id"] for d in admin.ok("/notification/list-deliveries", {})] == [second, first]
    assert [d["id"] for d in admin.ok("/notification/list-deliveries", {"channel": "a"})] == [first]
    assert [d["id"] for d in admin.ok("/notification/list-deliveries", {"status": "dead"})] == [
        first
    ]
    assert admin.post("/notification/list-deliveries", {"status": "lost"}).status_code == 422
    # A deleted channel's deliveries stay listed under its name.
    admin.ok("/notification/delete-channel", {"name": "a"})
    assert [d["id"] for d in admin.ok("/notification/list-deliveries", {"channel": "a"})] == [first]


def _wait_for(check: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_the_timer_delivers_the_outbox_and_logs_no_secret(
    host_factory: Callable[..., LocalHost],
    live_host: LocalHost,  # the database migrated
    clean_db: TestDatabase,
    receiver: WebhookReceiver,
) -> None:
    key = new_access_key()
    acs = AcsEmailServer(key)
    host = host_factory(
        env={
            "DT_NOTIFY_SCHEDULE": "* * * * * *",  # every second
            "DT_ACS_ENDPOINT": acs.endpoint,
            "DT_ACS_ACCESS_KEY": key,
            "DT_ACS_SENDER_ADDRESS": "DoNotReply@dt.example",
        },
        log_level="debug",
    )
    api = Api(host.api, host.admin_email, ADMIN_PASSWORD)
    try:
        api.ok("/notification/insert-channel", webhook("ops", receiver.url), 201)
        api.ok(
            "/notification/insert-channel",
            {"name": "mail", "kind": "email", "recipients": ["ops@example.org"]},
            201,
        )
        # What an alert transition does: deliveries in its own transaction.
        with Session(clean_db.engine) as session, session.begin():
            ids = enqueue(
                session, channel_names=["ops", "mail"], event=EVENT, now=datetime.now(UTC)
            )

        def delivered() -> bool:
            rows = api.ok("/notification/list-deliveries", {"status": "delivered"})
            return sorted(r["id"] for r in rows) == sorted(ids)

        _wait_for(delivered)
        [hook] = receiver.received
        assert hook.signature_ok is True
        assert hook.json == {"delivery_id": ids[0], **EVENT}
        [mail] = acs.messages
        assert mail["recipients"]["to"] == [{"address": "ops@example.org"}]
        assert acs.refusals == []
        # An email channel's test, through the same host.
        outcome = api.ok("/notification/test-channel", {"name": "mail"})
        assert (outcome["delivered"], outcome["status_code"]) == (True, 202)
        assert len(acs.messages) == 2
        listing = api.get("/notification/list-channels").text + str(
            api.ok("/notification/list-deliveries", {})
        )
        log = host.log()
        assert "notification" in log.lower()  # the debug log did see the sends
        for secret in (SECRET, key):
            assert secret not in listing
            assert secret not in log
    finally:
        api.close()
        acs.close()


def test_two_hosts_on_one_database_send_each_delivery_once(
    host_factory: Callable[..., LocalHost],
    live_host: LocalHost,  # the database migrated
    clean_db: TestDatabase,
    receiver: WebhookReceiver,
) -> None:
    """Both drain every second; a receiver slower than that makes their drains overlap."""
    receiver.delay = 1.5
    env = {"DT_NOTIFY_SCHEDULE": "* * * * * *", "DT_NOTIFY_BATCH_SIZE": "4"}
    hosts = [host_factory(env=env), host_factory(env=env)]
    api = Api(hosts[0].api, hosts[0].admin_email, ADMIN_PASSWORD)
    try:
        api.ok("/notification/insert-channel", webhook("ops", receiver.url), 201)
        with Session(clean_db.engine) as session, session.begin():
            ids = [
                enqueue(session, channel_names=["ops"], event=EVENT, now=datetime.now(UTC))[0]
                for _ in range(16)
            ]

        def all_delivered() -> bool:
            rows = api.ok("/notification/list-deliveries", {"status": "delivered"})
            return len(rows) == len(ids)

        _wait_for(all_delivered, 60)
        assert receiver.per_delivery() == {str(i): 1 for i in ids}
        assert all(r.signature_ok for r in receiver.received)
        assert receiver.peak > 4  # more than one batch in flight: two drains at once
        rows = api.ok("/notification/list-deliveries", {})
        assert {(r["status"], r["attempts"]) for r in rows} == {("delivered", 1)}
    finally:
        api.close()
