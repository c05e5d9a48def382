"""The schema, in SQLAlchemy Core. Alembic owns changes to it (``migrations/``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from .text import decode_text, decode_value, encode_text, encode_value

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timestamps are UTC on the way in and timezone-aware on the way out.

    PostgreSQL stores ``timestamp with time zone``; SQLite has no such type, so it stores
    the UTC wall time and we attach UTC when reading it back.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class AnyText(sa.TypeDecorator[str]):
    """A string column that holds any text, U+0000 included (PostgreSQL refuses it in
    text): encoded on the way in, decoded on the way out (``store/text.py``). Lookups go
    through the same encoding, so a filter with a NUL matches what was stored with one
    and never fails."""

    impl = sa.String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else encode_text(value)

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else decode_text(value)


class Payload(sa.TypeDecorator[Any]):
    """JSON (JSONB on PostgreSQL) whose strings may hold any text, U+0000 included
    (JSONB refuses it): every string is encoded on the way in, decoded on the way out."""

    impl = sa.JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.JSONB())
        return dialect.type_descriptor(sa.JSON())

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return encode_value(value)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return decode_value(value)


# BIGINT does not autoincrement on SQLite; INTEGER PRIMARY KEY does (it is the rowid).
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("session_id", AnyText(36), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("type", AnyText(64), nullable=False),
    sa.Column("schema_version", sa.Integer, nullable=False),
    sa.Column("payload", Payload(), nullable=False),
    sa.Column("occurred_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("session_id", "version"),
    sa.Index("ix_events_occurred_at", "occurred_at"),
    sa.Index("ix_events_type", "type"),
)

session_index = sa.Table(
    "session_index",
    metadata,
    sa.Column("session_id", AnyText(36), primary_key=True),
    sa.Column("model_name", AnyText(128), nullable=False),
    sa.Column("class_code", AnyText(64), nullable=True),
    sa.Column("status", AnyText(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("last_accessed", UTCDateTime, nullable=False),
    sa.Column("expired_at", UTCDateTime, nullable=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("generated_count", sa.Integer, nullable=False),
    sa.Column("undo_count", sa.Integer, nullable=False),
    sa.Index("ix_session_index_status_last_accessed", "status", "last_accessed"),
    sa.Index("ix_session_index_class_code", "class_code"),
    sa.Index("ix_session_index_created_at", "created_at"),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("session_id", AnyText(36), primary_key=True),
    sa.Column("idempotency_key", AnyText(255), primary_key=True),
    sa.Column("method_path", AnyText(300), nullable=False),
    sa.Column("request_hash", AnyText(64), nullable=False),
    sa.Column("result_session_id", AnyText(36), nullable=False),
    sa.Column("result_version", sa.Integer, nullable=False),
    sa.Column("receipt", Payload(), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_idempotency_keys_created_at", "created_at"),
)

# ---------------------------------------------------------------- classes (issue 15)
# Read models of the class streams (``class:<code>`` in ``events``) and of the guesses,
# written in the transaction that appends the events they follow. Each UNIQUE key is a
# guard two racing requests cannot both pass: one code per class, one nickname (folded)
# per class, one guess per session and round.

class_index = sa.Table(
    "class_index",
    metadata,
    sa.Column("class_code", AnyText(16), primary_key=True),
    sa.Column("name", AnyText(200), nullable=False),
    sa.Column("status", AnyText(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("closed_at", UTCDateTime, nullable=True),
    sa.Column("last_activity", UTCDateTime, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Index("ix_class_index_created_at", "created_at"),
)

nickname_claims = sa.Table(
    "nickname_claims",
    metadata,
    sa.Column("class_code", AnyText(16), primary_key=True),
    sa.Column("nickname_key", AnyText(200), primary_key=True),
    sa.Column("nickname", AnyText(200), nullable=False),
    sa.Column("session_id", AnyText(36), nullable=False),
    sa.Column("claimed_at", UTCDateTime, nullable=False),
    sa.Index("ix_nickname_claims_session_id", "session_id"),
)

round_index = sa.Table(
    "round_index",
    metadata,
    sa.Column("round_id", AnyText(36), primary_key=True),
    sa.Column("class_code", AnyText(16), nullable=False),
    sa.Column("prompt", AnyText(), nullable=False),
    sa.Column("model_name", AnyText(128), nullable=False),
    sa.Column("temperature", sa.Float, nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("status", AnyText(16), nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("revealed_at", UTCDateTime, nullable=True),
    sa.Index("ix_round_index_class_code", "class_code"),
)

guess_index = sa.Table(
    "guess_index",
    metadata,
    sa.Column("round_id", AnyText(36), primary_key=True),
    sa.Column("session_id", AnyText(36), primary_key=True),
    sa.Column("class_code", AnyText(16), nullable=False),
    sa.Column("text", AnyText(200), nullable=False),
    sa.Column("token_ids", Payload(), nullable=False),
    sa.Column("first_token_probability", sa.Float, nullable=False),
    sa.Column("first_token_rank", sa.Integer, nullable=False),
    sa.Column("text_probability", sa.Float, nullable=False),
    sa.Column("made_at", UTCDateTime, nullable=False),
    sa.Index("ix_guess_index_session_id", "session_id"),
    sa.Index("ix_guess_index_class_code", "class_code"),
)
