"""The sign-in throttle against the database, with the clock passed in, and
the client address read from X-Forwarded-For."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import azure.functions as func
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from dtbase_core import throttle, users
from dtbase_core.config import Settings
from dtbase_core.orm import LoginThrottle
from function_app.http import client_address
from tests.support import TestDatabase

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
SETTINGS = Settings(
    login_attempts_per_email=2,
    login_attempts_per_address=3,
    login_window_seconds=600,
    login_block_seconds=10,
    login_max_block_seconds=35,
)


@pytest.fixture
def session(database: TestDatabase) -> Iterator[Session]:
    from dtbase_core.migrations import upgrade

    upgrade(database.url)
    with Session(database.engine) as session:
        session.execute(sa.delete(LoginThrottle))
        yield session
        session.rollback()


def attempt(session: Session, at: float, email: str = "a@x.org", address: str = "192.0.2.1"):
    """One attempt `at` seconds after T0: None if admitted, else the Retry-After."""
    subjects = throttle.subjects(email, address, SETTINGS)
    try:
        with session.begin_nested():
            throttle.admit(session, subjects, T0 + timedelta(seconds=at), SETTINGS)
    except throttle.TooManyAttempts as exc:
        return exc.retry_after
    return None


def test_blocks_double_up_to_the_cap_and_refusals_are_not_counted(session: Session) -> None:
    assert [attempt(session, 0), attempt(session, 1)] == [None, None]  # free
    assert attempt(session, 2) is None  # admitted, and blocks the email for 10 s
    assert attempt(session, 3) == 9
    assert attempt(session, 11.5) == 1  # refused, not counted: still the first block
    assert attempt(session, 12) is None  # the block ended: admitted, blocks for 20 s
    assert attempt(session, 31) == 1
    assert attempt(session, 32) is None  # 40 s, capped to 35
    assert attempt(session, 33) == 34


def test_case_and_spaces_do_not_make_another_email(session: Session) -> None:
    for at in range(3):
        attempt(session, at, email=f"  A@X.org{' ' * at}", address=f"192.0.2.{at}")
    assert attempt(session, 3, email="a@x.org", address="192.0.2.9") == 9


def test_a_quiet_window_starts_the_count_again(session: Session) -> None:
    for at in range(3):
        attempt(session, at)
    assert attempt(session, 2 + 600 + 1) is None  # free again
    assert attempt(session, 604) is None
    assert attempt(session, 605) is None  # the third: blocks
    assert attempt(session, 606) == 9


def test_the_address_is_counted_across_emails(session: Session) -> None:
    for n in range(4):
        assert attempt(session, n, email=f"user{n}@x.org") is None
    assert attempt(session, 5, email="fresh@x.org") == 8
    assert attempt(session, 5, email="fresh@x.org", address="192.0.2.2") is None


def test_success_resets_the_email_and_gives_the_address_its_attempt_back(
    session: Session,
) -> None:
    subjects = throttle.subjects("a@x.org", "192.0.2.1", SETTINGS)
    attempt(session, 0)
    attempt(session, 1)
    throttle.succeeded(session, subjects)
    rows = dict(session.execute(sa.select(LoginThrottle.subject, LoginThrottle.attempts)).all())
    assert rows == {subjects[1].key: 1}
    assert [attempt(session, 2), attempt(session, 3)] == [None, None]  # two free again


def test_an_unknown_email_costs_a_real_password_check(session: Session) -> None:
    sign_in = users.begin_login(
        session, email="nobody@x.org", address=None, now=T0, settings=SETTINGS
    )
    assert sign_in.user_id is None and sign_in.password_hash.startswith("$argon2id$")


def _request(forwarded: str | None) -> func.HttpRequest:
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    return func.HttpRequest("POST", "http://h/api/auth/login", headers=headers, body=b"")


@pytest.mark.parametrize(
    ("forwarded", "hops", "expected"),
    [
        ("198.51.100.7", 1, "198.51.100.7"),
        ("198.51.100.7:50123", 1, "198.51.100.7"),
        ("[2001:db8::7]:50123", 1, "2001:db8::7"),
        ("2001:db8::7", 1, "2001:db8::7"),
        # What the client wrote itself is further left than the trusted proxy's entry.
        ("203.0.113.9, 198.51.100.7", 1, "198.51.100.7"),
        ("203.0.113.9, 198.51.100.7, 10.0.0.4", 2, "198.51.100.7"),
        ("198.51.100.7", 0, None),  # no proxy trusted: the header means nothing
        ("198.51.100.7", 2, None),  # fewer entries than trusted proxies
        ("not-an-address", 1, None),
        (None, 1, None),
    ],
)
def test_client_address(forwarded: str | None, hops: int, expected: str | None) -> None:
    settings = Settings(trusted_proxy_hops=hops)
    assert client_address(_request(forwarded), settings) == expected
