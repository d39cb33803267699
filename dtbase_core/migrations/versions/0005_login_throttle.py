"""sign-in hardening: a per-account token key, the Entra ID binding and the login throttle

- `user_account.token_key`: random per account, carried by tokens, so that a user deleted
  and created again with the same email does not revive the old account's tokens.
- `user_account.entra_tenant_id` / `entra_object_id`: the Entra ID person bound on first
  sign-in (matched on the object id afterwards).
- `login_throttle`: recent sign-in attempts per email and per client address, shared by
  every instance.

Merges the model-metrics and Entra branches (the host upgrades every head).

Revision ID: 0005
Revises: 0003, 0004
Create Date: 2026-11-29 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = ("0003", "0004")
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A volatile default: every existing row gets a key of its own.
    op.add_column(
        "user_account",
        sa.Column(
            "token_key", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False
        ),
    )
    op.add_column("user_account", sa.Column("entra_tenant_id", sa.String(36), nullable=True))
    op.add_column("user_account", sa.Column("entra_object_id", sa.String(36), nullable=True))
    op.create_unique_constraint(
        op.f("uq_user_account_entra_object_id"), "user_account", ["entra_object_id"]
    )
    op.create_table(
        "login_throttle",
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_attempt", sa.DateTime(timezone=True), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("subject", name=op.f("pk_login_throttle")),
    )


def downgrade() -> None:
    op.drop_table("login_throttle")
    op.drop_constraint(op.f("uq_user_account_entra_object_id"), "user_account", type_="unique")
    op.drop_column("user_account", "entra_object_id")
    op.drop_column("user_account", "entra_tenant_id")
    op.drop_column("user_account", "token_key")
