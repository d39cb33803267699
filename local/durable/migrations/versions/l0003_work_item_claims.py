"""work items: `claimed_by`, the host running one (activities run with no transaction open)

Revision ID: l0003
Revises: l0002
Create Date: 2026-11-29 14:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "l0003"
down_revision = "l0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("durable_work_item", sa.Column("claimed_by", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("durable_work_item", "claimed_by")
