"""Shared fixtures: databases, settings, the real bundled model (loaded once).

The tiers: a test that needs a real model (the ``registry`` fixture, directly or through
``app``, ``client``, ``student``, ``gemma``..., or anything under tests/models) is marked
``model`` here; ``server``, ``browser`` and ``processes`` tests are marked where they are
written, and every test in tests/models, tests/browser, tests/system and tests/hostile by
its folder here (``FOLDER_MARKS``).
``make test-fast`` runs everything else. This module imports no torch: tests/unit must not.
"""

from __future__ import annotations

import gc
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from tests.pg_schemas import SchemaPool, schema_url
from tokenwheel.settings import Settings

if TYPE_CHECKING:
    from tokenwheel.inference.registry import ModelRegistry

# The tests never use the network: an accidental Hugging Face Hub call fails at once
# (the machines this runs on have no Hub access anyway, but a laptop might).
os.environ.setdefault("HF_HUB_OFFLINE", "1")

PG_URL = os.environ.get(
    "TOKENWHEEL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("TOKENWHEEL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
MODEL_CACHE = Path(os.environ.get("TOKENWHEEL_TEST_CACHE", Path.cwd() / "instance" / "test-cache"))


def postgres_available() -> bool:
    try:
        engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


BUNDLED = "smollm2-135m"
GEMMA = "gemma-3-270m"


# Fixtures that load a real model; a test that uses one, even through other fixtures
# (``app``, ``client``, ``student``...), is a ``model`` test.
MODEL_FIXTURES = frozenset({"registry", "gemma"})
MODEL_DIRECTORY = Path(__file__).parent / "models"  # builds its own registries too
# Folders whose every test is marked whatever its file says (``make test-fast`` does not
# collect them at all).
FOLDER_MARKS = {
    MODEL_DIRECTORY: "model",
    Path(__file__).parent / "browser": "browser",
    Path(__file__).parent / "system": "server",
    Path(__file__).parent / "hostile": "server",
}


def pytest_collection_finish(session: pytest.Session) -> None:
    """Every API test creates an app (its OpenAPI document, schemas, SQLAlchemy objects):
    with CPython's default thresholds that set off a full collection every few tests,
    each walking the whole process (torch's objects included), a fifth of the API tests'
    time. Young objects are collected less often; memory stays bounded."""
    gc.set_threshold(100_000, 50, 50)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        uses = set(getattr(item, "fixturenames", ()))
        if uses & MODEL_FIXTURES:
            item.add_marker(pytest.mark.model)
        for folder, mark in FOLDER_MARKS.items():
            if folder in item.path.parents:
                item.add_marker(mark)


@pytest.fixture(scope="session")
def registry() -> Iterator[ModelRegistry]:
    """The real model registry, shared by the whole test session: each model loads once."""
    from tokenwheel.inference.registry import ModelRegistry
    from tokenwheel.inference.types import InferenceOptions

    registry = ModelRegistry(
        InferenceOptions(cache_dir=str(MODEL_CACHE), offline=True, default_model="gpt2")
    )
    registry.get(BUNDLED)
    yield registry
    registry.shutdown()


@pytest.fixture(scope="session")
def gemma(registry: ModelRegistry) -> str:
    registry.get(GEMMA)
    return GEMMA


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The PostgreSQL URL; under CI=true a missing server fails instead of skipping."""
    if not postgres_available():
        if IN_CI:
            pytest.fail(f"PostgreSQL is required under CI but {PG_URL} is unreachable")
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not running (skipped outside CI only)")
    return PG_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis URL; under CI=true a missing server fails instead of skipping."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError:
        if IN_CI:
            pytest.fail(f"Redis is required under CI but {REDIS_URL} is unreachable")
        pytest.skip("Redis at 127.0.0.1:6379 is not running (skipped outside CI only)")
    return REDIS_URL


@contextmanager
def fresh_schema(pg_server: str, prefix: str) -> Iterator[str]:
    """A URL of ``pg_server`` whose connections work in a new, empty schema of the test
    database (search_path), dropped with everything in it afterwards."""
    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(pg_server)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema_url(pg_server, schema)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty schema in the test database for one test."""
    with fresh_schema(pg_server, "t") as url:
        yield url


@pytest.fixture(scope="session")
def pg_schemas(pg_server: str) -> Iterator[SchemaPool]:
    pool = SchemaPool(pg_server)
    yield pool
    pool.close()


@pytest.fixture
def migrated_pg_url(pg_schemas: SchemaPool) -> Iterator[str]:
    """A schema of the test database migrated to head, with no rows, for one test
    (tests/pg_schemas.py: reused by emptying it, which is ten times faster than
    migrating a new one)."""
    with pg_schemas.take() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tokenwheel.sqlite3'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """A database for one test: on SQLite a new file (the app migrates it, or starts it
    as a copy of a migrated one), on PostgreSQL a migrated schema with no rows."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("migrated_pg_url"))


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest) -> str:
    """A database with nothing in it, not even the tables: for the migrations' tests."""
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"))


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str) -> Settings:
    return Settings(
        instance_path=tmp_path,
        database_url=sqlite_url,
        scheduler_enabled=False,
        offline=True,
        model_cache_dir=MODEL_CACHE,
    )
