"""analyst view: session_forks, one row per forked session and its parent

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

A fork's stream starts with ``SessionForked`` instead of ``SessionCreated``, so the views
of 0002 (which join on ``SessionCreated``) do not show forks. This view names each fork's
parent and the parent's version it copied. SQL frozen here, as in 0002; only the JSON
extraction differs between SQLite and PostgreSQL. Documented in docs/events.md.
(Numbered 0006 on its branch; revises 0004 until the branches meet.)
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def session_forks(dialect: str) -> str:
    if dialect == "postgresql":

        def text(key: str) -> str:
            return f"(e.payload->>'{key}')"

        count = "jsonb_array_length(e.payload->'generated')"
    else:

        def text(key: str) -> str:
            return f"json_extract(e.payload, '$.{key}')"

        count = "json_array_length(e.payload, '$.generated')"
    return f"""
CREATE VIEW session_forks AS
SELECT
  e.session_id,
  {text('parent_session_id')} AS parent_session_id,
  CAST({text('parent_version')} AS INTEGER) AS parent_version,
  {text('class_code')} AS class_code,
  {text('model_name')} AS model_name,
  e.occurred_at AS forked_at,
  {count} AS copied_token_count
FROM events e
WHERE e.type = 'SessionForked'
"""


def upgrade() -> None:
    op.execute(session_forks(op.get_bind().dialect.name))


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS session_forks")
