"""Migrated PostgreSQL schemas for tests, reused by emptying them.

Creating a schema and running every migration in it took about 0.2 s a test, most of a
PostgreSQL API test's set-up. A test that wants a migrated database gets a schema from
this pool instead; afterwards its tables are emptied (``TRUNCATE ... RESTART IDENTITY``,
about 15 ms: the same empty tables and counters a fresh migration gives) and the schema
goes back to the pool. A schema whose tables, views, indexes or sequences a test changed,
or that cannot be emptied, is dropped instead, so no test sees another's leftovers.
tests/integration/test_migrations.py still migrates empty schemas (``pg_url``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from tokenwheel.store import migrate
from tokenwheel.store.database import make_engine

# What a schema holds besides rows: every relation (table, view, index, sequence) by name
# and kind, and the migration it is at.
SHAPE = """
SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = :schema ORDER BY 1
"""


def schema_url(server: str, schema: str) -> str:
    """A URL of ``server`` whose connections work in ``schema`` (its search_path)."""
    url = sa.engine.make_url(server).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


class SchemaPool:
    """One test process's migrated schemas: ``take`` one, and it comes back emptied."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.admin = sa.create_engine(server)
        self.free: list[str] = []
        self.made: set[str] = set()
        self.shape: list[tuple[str, str]] | None = None
        self.tables: list[str] = []

    def _shape(self, conn: sa.Connection, schema: str) -> list[tuple[str, str]]:
        rows = conn.execute(sa.text(SHAPE), {"schema": schema}).all()
        version = conn.exec_driver_sql(f'SELECT version_num FROM "{schema}".alembic_version')
        return [(str(name), str(kind)) for name, kind in rows] + [
            ("alembic_version", str(v)) for (v,) in version
        ]

    def _make(self) -> str:
        schema = f"pool_{uuid.uuid4().hex[:10]}"
        with self.admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        self.made.add(schema)
        engine = make_engine(schema_url(self.server, schema))
        try:
            migrate.upgrade(engine)
        finally:
            engine.dispose()
        with self.admin.connect() as conn:
            shape = self._shape(conn, schema)
        if self.shape is None:
            self.shape = shape
            self.tables = [name for name, kind in shape if kind in ("r", "p")]
            self.tables.remove("alembic_version")
        return schema

    @contextmanager
    def take(self) -> Iterator[str]:
        schema = self.free.pop() if self.free else self._make()
        try:
            yield schema_url(self.server, schema)
        finally:
            self._give_back(schema)

    def _give_back(self, schema: str) -> None:
        try:
            with self.admin.begin() as conn:
                conn.exec_driver_sql("SET LOCAL lock_timeout = '5s'")
                if self._shape(conn, schema) != self.shape:
                    raise ValueError(f"a test changed the shape of schema {schema}")
                names = ", ".join(f'"{schema}"."{table}"' for table in self.tables)
                conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        except (sa.exc.DBAPIError, ValueError):
            self._drop(schema)
            return
        self.free.append(schema)

    def _drop(self, schema: str) -> None:
        with self.admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        self.made.discard(schema)

    def close(self) -> None:
        for schema in list(self.made):
            self._drop(schema)
        self.admin.dispose()
