"""service runs: `status` (running, completed, failed), `detail` and `finished_at`, for
runs that go on after run-service has answered 202

Existing rows were all written once their run had ended: they are `completed`, or
`failed` where run-service wrote its own status code for a call that got no reply (400
refused, 502 unreachable, 504 timed out, with no JSON), and finished when they started.
The server default (`completed`) also keeps rows written by the previous version during
a rolling deployment right: it logged runs only once they had ended.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "service_run_log",
        sa.Column("status", sa.String(16), server_default="completed", nullable=False),
    )
    op.add_column("service_run_log", sa.Column("detail", sa.Text(), nullable=True))
    op.add_column(
        "service_run_log", sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_check_constraint(
        op.f("ck_service_run_log_status"),  # op.f: named as is, not by the convention again
        "service_run_log",
        "status in ('running', 'completed', 'failed')",
    )
    op.execute(
        "update service_run_log set finished_at = timestamp, "
        "status = case when response_json is null and response_status_code in (400, 502, 504) "
        "then 'failed' else 'completed' end"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_service_run_log_status"), "service_run_log", type_="check")
    op.drop_column("service_run_log", "finished_at")
    op.drop_column("service_run_log", "detail")
    op.drop_column("service_run_log", "status")
