"""idempotency_keys: store where a keyed request left its session, not its HTTP body

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

A key now records the session and version its request led to, plus a receipt of what the
events do not hold (a spin's draw); a retry rebuilds the first answer from the session at
that version. Keys stored before this revision held rendered bodies: they are dropped
(a key lives 24 hours; a request retried across the upgrade is applied once more).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.execute("DELETE FROM idempotency_keys")
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.drop_column("response_status")
        batch.drop_column("response_body")
        batch.add_column(sa.Column("result_session_id", sa.String(36), nullable=False))
        batch.add_column(sa.Column("result_version", sa.Integer(), nullable=False))
        batch.add_column(sa.Column("receipt", JSON, nullable=False))


def downgrade() -> None:
    op.execute("DELETE FROM idempotency_keys")
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.drop_column("receipt")
        batch.drop_column("result_version")
        batch.drop_column("result_session_id")
        batch.add_column(sa.Column("response_status", sa.Integer(), nullable=False))
        batch.add_column(sa.Column("response_body", JSON, nullable=False))
