"""The corrections table.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "corrections",
        sa.Column("prediction_id", sa.String(32), primary_key=True),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("input_hash", sa.String(64), nullable=False),
        sa.Column("input_pixels", sa.LargeBinary, nullable=False),
        sa.Column("predicted_digit", sa.SmallInteger, nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("label", sa.SmallInteger, nullable=False),
        sa.Column("review", sa.String(8), nullable=False, server_default="pending"),
        sa.Column("api_key_hash", sa.String(16)),
        sa.Column("predicted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("label BETWEEN 0 AND 9", name="label_is_a_digit"),
        sa.CheckConstraint("review IN ('pending', 'accepted', 'rejected')", name="review_state"),
    )
    for column in ("model_version", "input_hash", "review", "received_at"):
        op.create_index(f"ix_corrections_{column}", "corrections", [column])


def downgrade() -> None:
    op.drop_table("corrections")
