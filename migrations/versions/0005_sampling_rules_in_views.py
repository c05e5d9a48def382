"""analyst views: token_events shows the sampling rules (issue 14)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

0002's views, dropped and recreated (the cookbook's "replaceable objects": the SQL is
frozen here, copied from 0002 with the new columns) so that token_events shows the
TokenAppended fields of the sampling rules: top_k, top_p, min_p (the "off" values 0, 1
and 0 for events from before the rules, which have no such fields) and
sampling_probability (null for those events). session_summaries is unchanged but reads
token_events, so it is dropped and recreated with it. Downgrade restores 0002's views.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SQL_TYPES = {
    # kind: (SQLite, PostgreSQL)
    "int": ("INTEGER", "INTEGER"),
    "real": ("REAL", "DOUBLE PRECISION"),
    "text": (None, None),
}

# TokenAppended payload fields, in the order the view shows them
TOKEN_FIELDS = (
    ("token_id", "int"),
    ("token_text", "text"),
    ("probability", "real"),
    ("log_probability", "real"),
    ("category", "text"),
    ("selection", "text"),
    ("sampled_from_other", "bool"),
    ("rank", "int"),
    ("temperature", "real"),
    ("threshold", "real"),
    ("other_total_probability", "real"),
    ("other_token_count", "int"),
    ("selected_token_rank", "int"),
    ("top_k", "int"),
    ("top_p", "real"),
    ("min_p", "real"),
    ("sampling_probability", "real"),
)
# What an event from before the rules reads as: the rules were off.
DEFAULTS = {"top_k": "0", "top_p": "1.0", "min_p": "0.0"}


def field(dialect: str, alias: str, key: str, kind: str) -> str:
    """``alias.payload``'s ``key`` as a typed SQL value."""
    if dialect == "postgresql":
        raw = f"({alias}.payload->>'{key}')"
        if kind == "bool":
            return f"CASE WHEN CAST({raw} AS BOOLEAN) THEN 1 ELSE 0 END"
        sql_type = SQL_TYPES[kind][1]
    else:
        raw = f"json_extract({alias}.payload, '$.{key}')"
        if kind == "bool":
            return f"CAST({raw} AS INTEGER)"  # JSON true/false come out as 1/0
        sql_type = SQL_TYPES[kind][0]
    return f"CAST({raw} AS {sql_type})" if sql_type else raw


def token_events(dialect: str) -> str:
    def f(alias: str, key: str, kind: str) -> str:
        return field(dialect, alias, key, kind)

    def column(key: str, kind: str) -> str:
        value = f("e", key, kind)
        return f"COALESCE({value}, {DEFAULTS[key]})" if key in DEFAULTS else value

    payload_columns = ",\n".join(f"    {column(key, kind)} AS {key}" for key, kind in TOKEN_FIELDS)
    outer = ", ".join(
        f"t.{name}"
        for name in (
            "event_id",
            "session_id",
            "class_code",
            "model_name",
            "version",
            "occurred_at",
            "prompt_version",
            *(key for key, _ in TOKEN_FIELDS),
            "undone",
        )
    )
    # Each token ended one way: undone, cleared by a later SetPrompt (a token undone
    # before that reset counts as undone only), or still in the text. The three columns
    # add up to 1 on every row.
    return f"""
CREATE VIEW token_events AS
SELECT {outer},
  CASE WHEN t.undone = 0 AND t.later_prompt = 1 THEN 1 ELSE 0 END AS prompt_reset,
  CASE WHEN t.undone = 0 AND t.later_prompt = 0 THEN 1 ELSE 0 END AS in_text
FROM (
  SELECT
    e.id AS event_id,
    e.session_id,
    {f('c', 'class_code', 'text')} AS class_code,
    {f('c', 'model_name', 'text')} AS model_name,
    e.version,
    e.occurred_at,
    (SELECT MAX(p.version) FROM events p
      WHERE p.session_id = e.session_id AND p.type = 'SetPrompt' AND p.version < e.version)
      AS prompt_version,
{payload_columns},
    CASE WHEN EXISTS (
      SELECT 1 FROM events u
      WHERE u.session_id = e.session_id AND u.type = 'Undone'
        AND {f('u', 'undone_version', 'int')} = e.version
    ) THEN 1 ELSE 0 END AS undone,
    CASE WHEN EXISTS (
      SELECT 1 FROM events r
      WHERE r.session_id = e.session_id AND r.type = 'SetPrompt' AND r.version > e.version
    ) THEN 1 ELSE 0 END AS later_prompt
  FROM events e
  JOIN events c ON c.session_id = e.session_id AND c.version = 1 AND c.type = 'SessionCreated'
  WHERE e.type = 'TokenAppended'
) t
"""


def session_summaries(dialect: str) -> str:
    def f(alias: str, key: str, kind: str) -> str:
        return field(dialect, alias, key, kind)

    def count(event_type: str) -> str:
        return (
            f"(SELECT COUNT(*) FROM events x WHERE x.session_id = c.session_id "
            f"AND x.type = '{event_type}')"
        )

    return f"""
CREATE VIEW session_summaries AS
SELECT
  c.session_id,
  {f('c', 'class_code', 'text')} AS class_code,
  {f('c', 'model_name', 'text')} AS model_name,
  s.status,
  c.occurred_at AS created_at,
  s.updated_at,
  s.last_accessed,
  s.expired_at,
  (SELECT COUNT(*) FROM events x WHERE x.session_id = c.session_id) AS event_count,
  {count('SetPrompt')} AS prompt_count,
  (SELECT {f('x', 'prompt', 'text')} FROM events x
    WHERE x.session_id = c.session_id AND x.type = 'SetPrompt'
    ORDER BY x.version DESC LIMIT 1) AS prompt,
  COALESCE(t.tokens_appended, 0) AS tokens_appended,
  {count('Undone')} AS undo_count,
  COALESCE(t.tokens_generated, 0) AS tokens_generated,
  t.average_probability,
  COALESCE(t.other_picks, 0) AS other_picks,
  COALESCE(t.other_count, 0) AS other_count,
  COALESCE(t.other_sampled_count, 0) AS other_sampled_count,
  COALESCE(t.log_probability, 0.0) AS log_probability,
  COALESCE(t.top_choice_count, 0) AS top_choice_count
FROM events c
LEFT JOIN session_index s ON s.session_id = c.session_id
LEFT JOIN (
  SELECT
    session_id,
    COUNT(*) AS tokens_appended,
    SUM(in_text) AS tokens_generated,
    AVG(CASE WHEN in_text = 1 THEN probability END) AS average_probability,
    SUM(CASE WHEN category = 'other' THEN 1 ELSE 0 END) AS other_picks,
    SUM(CASE WHEN in_text = 1 AND category = 'other' THEN 1 ELSE 0 END) AS other_count,
    SUM(CASE WHEN in_text = 1 THEN sampled_from_other ELSE 0 END) AS other_sampled_count,
    SUM(CASE WHEN in_text = 1 THEN log_probability ELSE 0.0 END) AS log_probability,
    SUM(CASE WHEN in_text = 1 AND rank = 1 THEN 1 ELSE 0 END) AS top_choice_count
  FROM token_events
  GROUP BY session_id
) t ON t.session_id = c.session_id
WHERE c.type = 'SessionCreated'
"""


def _drop() -> None:
    op.execute("DROP VIEW IF EXISTS session_summaries")
    op.execute("DROP VIEW IF EXISTS token_events")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    _drop()
    op.execute(token_events(dialect))
    op.execute(session_summaries(dialect))


def _revision_0002() -> ModuleType:
    path = Path(__file__).with_name("0002_analyst_views.py")
    spec = importlib.util.spec_from_file_location("tokenwheel_migration_0002", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    previous = _revision_0002()
    _drop()
    op.execute(previous.token_events(dialect))
    op.execute(previous.session_summaries(dialect))
