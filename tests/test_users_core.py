"""The default user's lifecycle at start-up (docs/api.md, The default user),
against the database directly."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from dtbase_core import security, users
from dtbase_core.orm import User
from tests.support import TestDatabase

EMAIL = "default_user@localhost"


@pytest.fixture
def session(database: TestDatabase) -> Iterator[Session]:
    from dtbase_core.migrations import upgrade

    upgrade(database.url)
    with Session(database.engine) as session:
        session.execute(sa.delete(User))  # rolled back at the end: other tests keep theirs
        yield session
        session.rollback()


def _default(session: Session) -> User | None:
    return session.scalar(sa.select(User).where(User.email == EMAIL))


def test_unset_password_never_crashes_and_changes_nothing(session: Session) -> None:
    users.ensure_default_user(session, None)
    assert _default(session) is None
    users.ensure_default_user(session, "first")
    users.ensure_default_user(session, "")
    assert _default(session) is not None


def test_created_as_admin_then_updated_only_when_the_password_changes(session: Session) -> None:
    users.ensure_default_user(session, "first")
    user = _default(session)
    assert (
        user is not None
        and user.role == "admin"
        and security.verify_password(user.password_hash, "first")
    )
    kept_hash, kept_version = user.password_hash, user.token_version
    users.ensure_default_user(session, "first")
    assert (user.password_hash, user.token_version) == (kept_hash, kept_version)
    users.ensure_default_user(session, "second")
    assert security.verify_password(user.password_hash, "second")
    assert user.token_version == kept_version + 1  # tokens issued under "first" end
