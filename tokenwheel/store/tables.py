"""The schema, in SQLAlchemy Core. Alembic owns changes to it (``migrations/``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

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


# BIGINT does not autoincrement on SQLite; INTEGER PRIMARY KEY does (it is the rowid).
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Payload = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("session_id", sa.String(36), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("schema_version", sa.Integer, nullable=False),
    sa.Column("payload", Payload, nullable=False),
    sa.Column("occurred_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("session_id", "version"),
    sa.Index("ix_events_occurred_at", "occurred_at"),
    sa.Index("ix_events_type", "type"),
)

session_index = sa.Table(
    "session_index",
    metadata,
    sa.Column("session_id", sa.String(36), primary_key=True),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("class_code", sa.String(64), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
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
    sa.Column("session_id", sa.String(36), primary_key=True),
    sa.Column("idempotency_key", sa.String(255), primary_key=True),
    sa.Column("method_path", sa.String(300), nullable=False),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("result_session_id", sa.String(36), nullable=False),
    sa.Column("result_version", sa.Integer, nullable=False),
    sa.Column("receipt", Payload, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_idempotency_keys_created_at", "created_at"),
)
