"""services: `use_service_key` (send the deployment's service key in `x-functions-key`)

A merge of the model-metrics and Entra branches, on a branch of its own (the host upgrades
every head).

Revision ID: 0006
Revises: 0003, 0004
Create Date: 2026-11-29 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "service",
        sa.Column("use_service_key", sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("service", "use_service_key")
