"""derived measures: their table, and the guarded arithmetic their expressions compile to

Revision ID: 0016
Revises: 0013
Create Date: 2026-11-29 23:50:00

PostgreSQL raises an error, not NULL, for a division by zero, the logarithm or square
root of a negative number, and any float8 result that overflows or underflows; one bad
point would fail a whole read. Each `dt_*` function below returns NULL instead where the
operation has no finite result (0 where the result underflows), and the reads leave those
points out. They are plain SQL functions, which the planner inlines into the query.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0013"
branch_labels = None
depends_on = None

# ln(max float8) is 709.78 and ln(min normal float8) -708.40: results inside these bounds
# are finite and normal.
_FUNCTIONS = {
    "dt_add(a float8, b float8)": (
        "case when abs(a) < 8.9e307 and abs(b) < 8.9e307 then a + b end"
    ),
    "dt_sub(a float8, b float8)": (
        "case when abs(a) < 8.9e307 and abs(b) < 8.9e307 then a - b end"
    ),
    "dt_mul(a float8, b float8)": (
        "case when a = 0 or b = 0 then 0::float8"
        " when ln(abs(a)) + ln(abs(b)) > 709 then null"
        " when ln(abs(a)) + ln(abs(b)) < -708 then 0::float8"
        " else a * b end"
    ),
    "dt_div(a float8, b float8)": (
        "case when b = 0 then null when a = 0 then 0::float8"
        " when ln(abs(a)) - ln(abs(b)) > 709 then null"
        " when ln(abs(a)) - ln(abs(b)) < -708 then 0::float8"
        " else a / b end"
    ),
    "dt_pow(a float8, b float8)": (
        "case when b = 0 then 1::float8"
        " when a = 0 then case when b > 0 then 0::float8 end"
        " when a < 0 and b <> trunc(b) then null"
        " when abs(b) > 1e300 then null"
        " when abs(b) < 1e-300 then 1::float8"
        " when b * ln(abs(a)) > 709 then null"
        " when b * ln(abs(a)) < -708 then 0::float8"
        " else power(a, b) end"
    ),
    "dt_exp(x float8)": (
        "case when x > 709 then null when x < -708 then 0::float8 else exp(x) end"
    ),
    "dt_ln(x float8)": "case when x > 0 then ln(x) end",
    "dt_sqrt(x float8)": "case when x >= 0 then sqrt(x) end",
}


def upgrade() -> None:
    op.create_table(
        "derived_measure",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("type_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("units", sa.String(100), nullable=True),
        sa.Column("expression", sa.Text(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column(
            "time_created",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("time_updated", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["type_id"],
            ["sensor_type.id"],
            name=op.f("fk_derived_measure_type_id_sensor_type"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_derived_measure")),
        sa.UniqueConstraint("type_id", "name", name=op.f("uq_derived_measure_type_id_name")),
    )
    op.create_index(op.f("ix_derived_measure_type_id"), "derived_measure", ["type_id"])
    for signature, body in _FUNCTIONS.items():
        op.execute(
            f"create function {signature} returns float8"
            f" language sql immutable parallel safe return {body}"
        )


def downgrade() -> None:
    for signature in _FUNCTIONS:
        op.execute(f"drop function {signature}")
    op.drop_index(op.f("ix_derived_measure_type_id"), "derived_measure")
    op.drop_table("derived_measure")
