"""classes, nicknames, rounds and guesses (issue 15): read models and analyst views

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

A class a teacher opens is its own stream in ``events`` (``class:<code>``: ClassOpened,
ClassClosed, ClassReopened, RoundStarted, RoundRevealed); a student's guess is a
``GuessMade`` in the student's session stream. Beside them, four read models written in
the same transactions, each with the UNIQUE key that guards a race:

- ``class_index``: one row per class, ``class_code`` the primary key;
- ``nickname_claims``: (``class_code``, folded nickname) unique, so two racing joins
  cannot take one nickname;
- ``round_index``: one row per round (its status decides whether a guess may land);
- ``guess_index``: (``round_id``, ``session_id``) unique: one guess per student and round.

And two views for analysts, on both databases (SQL frozen here; only the JSON extraction
differs): ``class_rounds`` (one row per RoundStarted) and ``round_guesses`` (one row per
GuessMade, with the student's class and nickname). Documented in docs/events.md.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from tokenwheel.store.tables import AnyText, UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _revision(filename: str) -> ModuleType:
    path = Path(__file__).with_name(filename)
    spec = importlib.util.spec_from_file_location(f"tokenwheel_migration_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


V5 = _revision("0005_sampling_rules_in_views.py")
PAYLOAD = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
PREFIX_LENGTH = len("class:")


def class_rounds(dialect: str) -> str:
    def f(alias: str, key: str, kind: str) -> str:
        return V5.field(dialect, alias, key, kind)

    return f"""
CREATE VIEW class_rounds AS
SELECT
  r.id AS event_id,
  substr(r.session_id, {PREFIX_LENGTH + 1}) AS class_code,
  {f("r", "round_id", "text")} AS round_id,
  {f("r", "prompt", "text")} AS prompt,
  {f("r", "model_name", "text")} AS model_name,
  {f("r", "temperature", "real")} AS temperature,
  {f("r", "threshold", "real")} AS threshold,
  r.occurred_at AS started_at,
  (SELECT MIN(v.occurred_at) FROM events v
    WHERE v.session_id = r.session_id AND v.type = 'RoundRevealed'
      AND {f("v", "round_id", "text")} = {f("r", "round_id", "text")}) AS revealed_at,
  (SELECT COUNT(*) FROM events g
    WHERE g.type = 'GuessMade'
      AND {f("g", "round_id", "text")} = {f("r", "round_id", "text")}) AS guess_count
FROM events r
WHERE r.type = 'RoundStarted'
"""


def round_guesses(dialect: str) -> str:
    def f(alias: str, key: str, kind: str) -> str:
        return V5.field(dialect, alias, key, kind)

    if dialect == "postgresql":
        first = "CAST((g.payload->'token_ids'->>0) AS INTEGER)"
        count = "jsonb_array_length(g.payload->'token_ids')"
    else:
        first = "CAST(json_extract(g.payload, '$.token_ids[0]') AS INTEGER)"
        count = "json_array_length(g.payload, '$.token_ids')"
    return f"""
CREATE VIEW round_guesses AS
SELECT
  g.id AS event_id,
  g.session_id,
  {f("c", "class_code", "text")} AS class_code,
  {f("c", "nickname", "text")} AS nickname,
  {f("g", "round_id", "text")} AS round_id,
  {f("g", "text", "text")} AS text,
  {count} AS token_count,
  {first} AS first_token_id,
  {f("g", "first_token_probability", "real")} AS first_token_probability,
  {f("g", "first_token_rank", "int")} AS first_token_rank,
  {f("g", "text_probability", "real")} AS text_probability,
  {f("g", "text_log_probability", "real")} AS text_log_probability,
  {f("g", "single_token", "bool")} AS single_token,
  g.version,
  g.occurred_at AS made_at
FROM events g
JOIN events c ON c.session_id = g.session_id AND c.version = 1
WHERE g.type = 'GuessMade'
"""


def upgrade() -> None:
    op.create_table(
        "class_index",
        sa.Column("class_code", AnyText(16), nullable=False),
        sa.Column("name", AnyText(200), nullable=False),
        sa.Column("status", AnyText(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.Column("last_activity", UTCDateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("class_code", name=op.f("pk_class_index")),
    )
    op.create_index("ix_class_index_created_at", "class_index", ["created_at"])
    op.create_table(
        "nickname_claims",
        sa.Column("class_code", AnyText(16), nullable=False),
        sa.Column("nickname_key", AnyText(200), nullable=False),
        sa.Column("nickname", AnyText(200), nullable=False),
        sa.Column("session_id", AnyText(36), nullable=False),
        sa.Column("claimed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("class_code", "nickname_key", name=op.f("pk_nickname_claims")),
    )
    op.create_index("ix_nickname_claims_session_id", "nickname_claims", ["session_id"])
    op.create_table(
        "round_index",
        sa.Column("round_id", AnyText(36), nullable=False),
        sa.Column("class_code", AnyText(16), nullable=False),
        sa.Column("prompt", AnyText(), nullable=False),
        sa.Column("model_name", AnyText(128), nullable=False),
        sa.Column("temperature", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("status", AnyText(16), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("revealed_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("round_id", name=op.f("pk_round_index")),
    )
    op.create_index("ix_round_index_class_code", "round_index", ["class_code"])
    op.create_table(
        "guess_index",
        sa.Column("round_id", AnyText(36), nullable=False),
        sa.Column("session_id", AnyText(36), nullable=False),
        sa.Column("class_code", AnyText(16), nullable=False),
        sa.Column("text", AnyText(200), nullable=False),
        sa.Column("token_ids", PAYLOAD, nullable=False),
        sa.Column("first_token_probability", sa.Float(), nullable=False),
        sa.Column("first_token_rank", sa.Integer(), nullable=False),
        sa.Column("text_probability", sa.Float(), nullable=False),
        sa.Column("made_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("round_id", "session_id", name=op.f("pk_guess_index")),
    )
    op.create_index("ix_guess_index_session_id", "guess_index", ["session_id"])
    op.create_index("ix_guess_index_class_code", "guess_index", ["class_code"])
    dialect = op.get_bind().dialect.name
    op.execute(class_rounds(dialect))
    op.execute(round_guesses(dialect))


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS round_guesses")
    op.execute("DROP VIEW IF EXISTS class_rounds")
    for table in ("guess_index", "round_index", "nickname_claims", "class_index"):
        op.drop_table(table)
