"""user accounts: a nullable unique `entra_client_id` (sign-in with Entra ID)

An Entra ID application (a service calling the API with client credentials) is mapped to
the service user an admin registered with its client id. On a branch of its own (the host
upgrades every head).

Revision ID: 0004
Revises: 0001
Create Date: 2026-12-01 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0001"
branch_labels = ("entra",)
depends_on = None


def upgrade() -> None:
    op.add_column("user_account", sa.Column("entra_client_id", sa.String(36), nullable=True))
    op.create_unique_constraint(
        op.f("uq_user_account_entra_client_id"), "user_account", ["entra_client_id"]
    )


def downgrade() -> None:
    op.drop_constraint(op.f("uq_user_account_entra_client_id"), "user_account", type_="unique")
    op.drop_column("user_account", "entra_client_id")
