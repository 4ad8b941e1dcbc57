"""The corrections table, as SQLAlchemy sees it (the migrations in ``migrations/`` create it)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

REVIEW_STATES = ("pending", "accepted", "rejected")

corrections = sa.Table(
    "corrections",
    metadata,
    sa.Column("prediction_id", sa.String(32), primary_key=True),
    sa.Column("model_version", sa.String(64), nullable=False, index=True),
    # SHA-256 of the 28x28 uint8 input: duplicates collapse on it, and it picks the held-out part.
    sa.Column("input_hash", sa.String(64), nullable=False, index=True),
    sa.Column("input_pixels", sa.LargeBinary, nullable=False),  # 784 bytes: what the model saw, nothing else
    sa.Column("predicted_digit", sa.SmallInteger, nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("label", sa.SmallInteger, nullable=False),
    sa.Column("review", sa.String(8), nullable=False, server_default="pending", index=True),
    # Which client sent it, without the key itself (a truncated SHA-256); no address is kept.
    sa.Column("api_key_hash", sa.String(16)),
    sa.Column("predicted_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("reviewed_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint("label BETWEEN 0 AND 9", name="label_is_a_digit"),
    sa.CheckConstraint("review IN ('pending', 'accepted', 'rejected')", name="review_state"),
)
