"""user roles: `role` (viewer, editor, admin) replaces the `is_admin` flag

Admins stay admins; everyone else becomes an editor, which is what every DTBase user
could do. One column, so a user's role has one source.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-13 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "user_account",
        sa.Column("role", sa.String(16), server_default="editor", nullable=False),
    )
    op.execute("update user_account set role = 'admin' where is_admin")
    op.create_check_constraint(
        op.f("ck_user_account_role"),  # op.f: named as is, not by the convention again
        "user_account",
        "role in ('viewer', 'editor', 'admin')",
    )
    op.drop_column("user_account", "is_admin")


def downgrade() -> None:
    op.add_column(
        "user_account",
        sa.Column("is_admin", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.execute("update user_account set is_admin = (role = 'admin')")
    op.drop_constraint(op.f("ck_user_account_role"), "user_account", type_="check")
    op.drop_column("user_account", "role")
