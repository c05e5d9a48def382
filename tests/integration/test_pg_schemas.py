"""The pool of migrated PostgreSQL schemas (tests/pg_schemas.py) hands each test a schema
as a fresh migration leaves it: no rows, counters from 1, and never one a test reshaped."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tests.pg_schemas import SchemaPool
from tokenwheel.store.database import make_engine

EVENT = (
    "INSERT INTO events (session_id, version, type, schema_version, payload, occurred_at) "
    "VALUES ('s', 1, 'SessionCreated', 1, '{}', CURRENT_TIMESTAMP) RETURNING id"
)


@pytest.fixture
def pool(pg_server: str) -> Iterator[SchemaPool]:
    """A pool of its own, so the test sees exactly the schemas it took."""
    pool = SchemaPool(pg_server)
    yield pool
    pool.close()


def schema_of(url: str) -> str:
    return str(sa.engine.make_url(url).query["options"]).removeprefix("-csearch_path=")


def test_a_schema_comes_back_empty_with_its_counters_restarted(pool: SchemaPool) -> None:
    with pool.take() as url:
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql(EVENT)
            assert conn.exec_driver_sql(EVENT.replace("1, 'S", "2, 'S")).scalar() == 2
        engine.dispose()
        first = schema_of(url)
    with pool.take() as url:
        assert schema_of(url) == first  # reused, not migrated again
        engine = make_engine(url)
        with engine.begin() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM events").scalar() == 0
            assert conn.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar() == 1
            assert conn.exec_driver_sql(EVENT).scalar() == 1  # counted from 1 again
        engine.dispose()


def test_a_schema_a_test_reshaped_is_dropped_not_reused(pool: SchemaPool) -> None:
    with pool.take() as url:
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE stray (id INTEGER)")
        engine.dispose()
        reshaped = schema_of(url)
    with pool.admin.connect() as conn:
        names = conn.execute(
            sa.text("SELECT count(*) FROM pg_namespace WHERE nspname = :s"), {"s": reshaped}
        ).scalar()
    assert names == 0
    with pool.take() as url:
        assert schema_of(url) != reshaped
