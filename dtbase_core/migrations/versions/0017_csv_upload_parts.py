"""CSV import: the staging table of files uploaded in parts

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-29 23:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "csv_upload_part",
        sa.Column("upload_id", sa.Uuid(), nullable=False),
        sa.Column("part_number", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("upload_id", "part_number", name=op.f("pk_csv_upload_part")),
    )
    op.create_index(op.f("ix_csv_upload_part_created_at"), "csv_upload_part", ["created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_csv_upload_part_created_at"), "csv_upload_part")
    op.drop_table("csv_upload_part")
