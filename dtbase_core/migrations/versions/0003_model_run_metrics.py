"""model runs: a nullable JSON `metrics` column (ARIMA's cross-validation RMSE and MAPE)

On a branch of its own (the host upgrades every head).

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-28 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = ("model_metrics",)
depends_on = None


def upgrade() -> None:
    op.add_column("model_run", sa.Column("metrics", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    op.drop_column("model_run", "metrics")
