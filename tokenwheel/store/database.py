"""Engines with the connection behaviour the event store relies on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url

SQLITE_BUSY_TIMEOUT_MS = 30_000
BEGIN_OPTION = "tokenwheel_begin"


def make_engine(url: str, **kwargs: Any) -> sa.Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and explicit BEGINs.

    pysqlite's own transaction handling starts transactions lazily and never with
    ``BEGIN IMMEDIATE``, so a read that later writes can fail at once with "database is
    locked". We take over BEGIN (the SQLAlchemy pysqlite recipe) and let a write
    transaction ask for ``BEGIN IMMEDIATE`` through an execution option.
    """
    parsed = make_url(url)
    # A database error's text never carries the statement's parameters: they hold
    # nicknames, prompts and session ids, and a 500 logs the error (docs/operations.md).
    kwargs.setdefault("hide_parameters", True)
    if parsed.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return sa.create_engine(url, **kwargs)

    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    kwargs.setdefault("connect_args", {})
    kwargs["connect_args"].setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
    kwargs["connect_args"].setdefault("check_same_thread", False)
    engine = sa.create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        mode = conn.get_execution_options().get(BEGIN_OPTION, "")
        conn.exec_driver_sql(f"BEGIN {mode}".strip())

    return engine


def is_sqlite(engine: sa.Engine) -> bool:
    return engine.dialect.name == "sqlite"


def write_connection(engine: sa.Engine) -> sa.Connection:
    """A connection whose transactions take the write lock up front on SQLite."""
    conn = engine.connect()
    if is_sqlite(engine):
        conn = conn.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
    return conn
