"""The Flask app on the real bundled SmolLM2 model, loaded once per test session."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import BUNDLED
from tests.fakes import FakeModels
from tokenwheel import create_app
from tokenwheel.inference.registry import ModelRegistry
from tokenwheel.settings import Settings
from tokenwheel.store import migrate
from tokenwheel.store.database import make_engine


@functools.cache
def migrated_sqlite() -> Path:
    """A SQLite file migrated to head, made once per test process."""
    folder = Path(tempfile.mkdtemp(prefix="tokenwheel-template-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    template = folder / "migrated.sqlite3"
    engine = make_engine(f"sqlite:///{template}")
    migrate.upgrade(engine)
    engine.dispose()
    return template


def make_app(settings: Settings, registry: ModelRegistry) -> Flask:
    """The app on a migrated database. A new SQLite file starts as a copy of
    ``migrated_sqlite()``: running the migrations for each of the ~400 apps the API tests
    make took a third of their set-up time (tests/integration/test_migrations.py tests
    the migrations themselves)."""
    url = sa.engine.make_url(settings.database_url)
    file = url.database if url.get_backend_name() == "sqlite" else None
    copied = file not in (None, "", ":memory:") and not Path(str(file)).exists()
    if copied:
        shutil.copyfile(migrated_sqlite(), str(file))
    app = create_app(settings, models=registry)
    if not copied:
        migrate.upgrade(app.extensions["tokenwheel.engine"])
    return app


@pytest.fixture
def app(settings: Settings, registry: ModelRegistry) -> Flask:
    return make_app(settings, registry)


@pytest.fixture
def fake_app(settings: Settings) -> Flask:
    """The app on the fake model: for HTTP behaviour that does not need real weights."""
    return make_app(settings, FakeModels())  # type: ignore[arg-type]


@pytest.fixture
def fake_client(fake_app: Flask) -> FlaskClient:
    return fake_app.test_client()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class Student:
    """A tiny client for the student API that checks status codes as it goes."""

    def __init__(
        self,
        client: FlaskClient,
        model: str | None = None,
        class_code: str | None = None,
        seed: int | None = None,
    ) -> None:
        self.client = client
        body: dict[str, Any] = {} if model is None else {"model_name": model}
        if class_code is not None:
            body["class_code"] = class_code
        if seed is not None:
            body["seed"] = seed
        r = client.post("/api/sessions", json=body)
        assert r.status_code == 201, r.json
        self.id = r.json["session_id"]
        self.url = f"/api/sessions/{self.id}"

    def prompt(self, text: str) -> dict[str, Any]:
        r = self.client.post(f"{self.url}/set-prompt", json={"prompt": text})
        assert r.status_code == 200, r.json
        return r.json  # type: ignore[no-any-return]

    def probs(self, **query: Any) -> dict[str, Any]:
        r = self.client.get(f"{self.url}/next-token-probs", query_string=query)
        assert r.status_code == 200, r.json
        return r.json  # type: ignore[no-any-return]

    def append(self, **body: Any) -> dict[str, Any]:
        r = self.client.post(f"{self.url}/append-token", json=body)
        assert r.status_code == 200, r.json
        return r.json  # type: ignore[no-any-return]

    def undo(self) -> dict[str, Any]:
        r = self.client.post(f"{self.url}/undo")
        assert r.status_code == 200, r.json
        return r.json  # type: ignore[no-any-return]

    def state(self) -> dict[str, Any]:
        r = self.client.get(self.url)
        assert r.status_code == 200, r.json
        return r.json  # type: ignore[no-any-return]


@pytest.fixture
def student(client: FlaskClient) -> Student:
    return Student(client)


__all__ = ["Student", "make_app", "BUNDLED", "Path"]
