"""Sign-in throttling, kept in PostgreSQL so that every instance sees it.

Each sign-in attempt is counted against its email and its client address *before* the
password is checked, in one short transaction with the two rows locked: parallel attempts
cannot slip past the limit, and a refused attempt costs no password hashing. Past the free
attempts, every further attempt blocks the subject for a doubling time (capped); an attempt
while a subject is blocked is refused with 429 and `Retry-After`, and is not counted. A
successful sign-in forgets the email's attempts and takes its own back from the address.
Attempts are forgotten after a quiet window. Nothing here depends on whether the email
exists, so the replies cannot tell.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from dtbase_core.config import Settings
from dtbase_core.errors import DomainError
from dtbase_core.orm import LoginThrottle

TOO_MANY = "Too many sign-in attempts: try again later"


class TooManyAttempts(DomainError):
    """429, with the seconds to wait in `Retry-After`."""

    status_code = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(TOO_MANY)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Subject:
    key: str  # the row's primary key
    free_attempts: int


def subjects(email: str, address: str | None, settings: Settings) -> list[Subject]:
    """The email (hashed: the table need not keep what people typed) and the address."""
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    found = [Subject(f"email:{digest}", settings.login_attempts_per_email)]
    if address:
        found.append(Subject(f"address:{address}", settings.login_attempts_per_address))
    return found


def _block_seconds(excess: int, settings: Settings) -> float:
    """1, 2, 4, ... times the base, capped."""
    return float(
        min(
            settings.login_block_seconds * 2 ** min(excess - 1, 30),
            settings.login_max_block_seconds,
        )
    )


def admit(session: Session, found: list[Subject], now: datetime, settings: Settings) -> None:
    """Count one attempt against every subject, or raise TooManyAttempts (counting none)
    while any of them is blocked."""
    keys = sorted(subject.key for subject in found)  # one lock order: no deadlocks
    session.execute(
        insert(LoginThrottle)
        .values([{"subject": key, "attempts": 0, "last_attempt": now} for key in keys])
        .on_conflict_do_nothing(index_elements=[LoginThrottle.subject])
    )
    rows = {
        row.subject: row
        for row in session.scalars(
            sa.select(LoginThrottle)
            .where(LoginThrottle.subject.in_(keys))
            .order_by(LoginThrottle.subject)
            .with_for_update()
        )
    }
    waits = [
        (row.blocked_until - now).total_seconds()
        for row in rows.values()
        if row.blocked_until is not None and row.blocked_until > now
    ]
    if waits:
        raise TooManyAttempts(max(1, math.ceil(max(waits))))
    window = timedelta(seconds=settings.login_window_seconds)
    for subject in found:
        row = rows[subject.key]
        if now - row.last_attempt > window:
            row.attempts = 0  # a quiet window: start again
        row.attempts += 1
        row.last_attempt = now
        excess = row.attempts - subject.free_attempts
        row.blocked_until = (
            now + timedelta(seconds=_block_seconds(excess, settings)) if excess > 0 else None
        )
    session.flush()


def succeeded(session: Session, found: list[Subject]) -> None:
    """A sign-in with the right password: the email starts afresh; the address gets this
    attempt back (an office behind one address signs in many people)."""
    email, *others = found
    session.execute(sa.delete(LoginThrottle).where(LoginThrottle.subject == email.key))
    for subject in others:
        remaining = sa.func.greatest(LoginThrottle.attempts - 1, 0)
        session.execute(
            sa.update(LoginThrottle)
            .where(LoginThrottle.subject == subject.key)
            .values(
                attempts=remaining,
                blocked_until=sa.case(
                    (remaining <= subject.free_attempts, None),
                    else_=LoginThrottle.blocked_until,
                ),
            )
        )
