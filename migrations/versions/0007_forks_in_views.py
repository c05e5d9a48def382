"""analyst views: forks in token_events and session_summaries (issue 14)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

0005's views join on ``SessionCreated``, so a fork (a stream that starts with
``SessionForked``) was in neither: a student who branched and went on writing vanished
from them. Recreated (the cookbook's "replaceable objects"; SQL frozen here) so that:

- ``token_events`` has a row for each token a fork copied from its parent (from the
  ``SessionForked`` payload's ``generated``; ``copied_from_parent = 1``, ``version`` 1,
  ``occurred_at`` the fork's) and for each token appended in the fork itself
  (``copied_from_parent = 0``, as every token of an ordinary session). A copied token's
  fate follows the fork's own events: an ``Undone`` of version 1 removes the last copied
  token still in the text, a ``SetPrompt`` clears them all.
- ``session_summaries`` has a row per fork with ``parent_session_id`` and
  ``parent_version`` (null for other sessions); ``tokens_appended`` and ``other_picks``
  count picks made in the session itself (a copied token was picked in the parent and is
  counted there), the text columns count the text the session has now, copied tokens
  included, as the statistics API does.

Downgrade restores 0005's views. The column helpers (TOKEN_FIELDS, DEFAULTS, field) are
read from 0005, whose SQL is frozen.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0007"
down_revision = "0006"
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
OUTER = (
    "event_id",
    "session_id",
    "class_code",
    "model_name",
    "version",
    "occurred_at",
    "prompt_version",
    *(key for key, _ in V5.TOKEN_FIELDS),
    "copied_from_parent",
    "undone",
)


def _copied_value(dialect: str, key: str, kind: str) -> str:
    """A field of one copied token (``g.value``, an object of the fork's ``generated``)."""
    if dialect == "postgresql":
        raw = f"(g.value->>'{key}')"
        if kind == "bool":
            return f"CASE WHEN CAST({raw} AS BOOLEAN) THEN 1 ELSE 0 END"
        sql_type = V5.SQL_TYPES[kind][1]
    else:
        raw = f"json_extract(g.value, '$.{key}')"
        if kind == "bool":
            return f"CAST({raw} AS INTEGER)"
        sql_type = V5.SQL_TYPES[kind][0]
    return f"CAST({raw} AS {sql_type})" if sql_type else raw


def token_events(dialect: str) -> str:
    def f(alias: str, key: str, kind: str) -> str:
        return V5.field(dialect, alias, key, kind)

    def with_default(key: str, value: str) -> str:
        return f"COALESCE({value}, {V5.DEFAULTS[key]})" if key in V5.DEFAULTS else value

    own = ",\n".join(
        f"    {with_default(key, f('e', key, kind))} AS {key}" for key, kind in V5.TOKEN_FIELDS
    )
    copied = ",\n".join(
        f"    {with_default(key, _copied_value(dialect, key, kind))} AS {key}"
        for key, kind in V5.TOKEN_FIELDS
    )
    if dialect == "postgresql":
        elements = (
            "CROSS JOIN LATERAL jsonb_array_elements(e.payload->'generated') "
            "WITH ORDINALITY AS g(value, ordinal)"
        )
        ordinal = "g.ordinal"
        copied_count = "jsonb_array_length(e.payload->'generated')"
    else:
        elements = "JOIN json_each(e.payload, '$.generated') AS g"
        ordinal = "(g.key + 1)"
        copied_count = "json_array_length(e.payload, '$.generated')"
    outer = ", ".join(f"t.{name}" for name in OUTER)
    # Each token ended one way: undone, cleared by a later SetPrompt (a token undone
    # before that reset counts as undone only), or still in the text.
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
      WHERE p.session_id = e.session_id AND p.type IN ('SetPrompt', 'SessionForked')
        AND p.version < e.version)
      AS prompt_version,
{own},
    0 AS copied_from_parent,
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
  JOIN events c ON c.session_id = e.session_id AND c.version = 1
    AND c.type IN ('SessionCreated', 'SessionForked')
  WHERE e.type = 'TokenAppended'
  UNION ALL
  SELECT
    e.id AS event_id,
    e.session_id,
    {f('e', 'class_code', 'text')} AS class_code,
    {f('e', 'model_name', 'text')} AS model_name,
    e.version,
    e.occurred_at,
    1 AS prompt_version,
{copied},
    1 AS copied_from_parent,
    CASE WHEN {ordinal} > {copied_count} - (
      SELECT COUNT(*) FROM events u
      WHERE u.session_id = e.session_id AND u.type = 'Undone'
        AND {f('u', 'undone_version', 'int')} = 1
    ) THEN 1 ELSE 0 END AS undone,
    CASE WHEN EXISTS (
      SELECT 1 FROM events r
      WHERE r.session_id = e.session_id AND r.type = 'SetPrompt' AND r.version > 1
    ) THEN 1 ELSE 0 END AS later_prompt
  FROM events e
  {elements}
  WHERE e.type = 'SessionForked'
) t
"""


def session_summaries(dialect: str) -> str:
    def f(alias: str, key: str, kind: str) -> str:
        return V5.field(dialect, alias, key, kind)

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
  {f('c', 'parent_session_id', 'text')} AS parent_session_id,
  {f('c', 'parent_version', 'int')} AS parent_version,
  (SELECT COUNT(*) FROM events x WHERE x.session_id = c.session_id) AS event_count,
  {count('SetPrompt')} AS prompt_count,
  COALESCE(
    (SELECT {f('x', 'prompt', 'text')} FROM events x
      WHERE x.session_id = c.session_id AND x.type = 'SetPrompt'
      ORDER BY x.version DESC LIMIT 1),
    {f('c', 'prompt', 'text')}
  ) AS prompt,
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
    SUM(1 - copied_from_parent) AS tokens_appended,
    SUM(in_text) AS tokens_generated,
    AVG(CASE WHEN in_text = 1 THEN probability END) AS average_probability,
    SUM(CASE WHEN category = 'other' AND copied_from_parent = 0 THEN 1 ELSE 0 END)
      AS other_picks,
    SUM(CASE WHEN in_text = 1 AND category = 'other' THEN 1 ELSE 0 END) AS other_count,
    SUM(CASE WHEN in_text = 1 THEN sampled_from_other ELSE 0 END) AS other_sampled_count,
    SUM(CASE WHEN in_text = 1 THEN log_probability ELSE 0.0 END) AS log_probability,
    SUM(CASE WHEN in_text = 1 AND rank = 1 THEN 1 ELSE 0 END) AS top_choice_count
  FROM token_events
  GROUP BY session_id
) t ON t.session_id = c.session_id
WHERE c.version = 1 AND c.type IN ('SessionCreated', 'SessionForked')
"""


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    V5._drop()
    op.execute(token_events(dialect))
    op.execute(session_summaries(dialect))


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    V5._drop()
    op.execute(V5.token_events(dialect))
    op.execute(V5.session_summaries(dialect))
