"""The OpenAPI document of a new app does not depend on how many apps came before it:
our Blueprint shares the schema instances when flask-smorest copies each view's
documentation for an app (api/blueprint.py), and must leave the blueprints as it found
them."""

from __future__ import annotations

import json
from pathlib import Path

from flask import Flask

from tests.api.conftest import make_app
from tests.fakes import FakeModels
from tests.threads import at_once
from tokenwheel.api import sessions
from tokenwheel.settings import Settings


def fresh_app(tmp_path: Path, name: str) -> Flask:
    folder = tmp_path / name
    folder.mkdir()
    settings = Settings(
        instance_path=folder,
        database_url=f"sqlite:///{folder / 'tokenwheel.sqlite3'}",
        scheduler_enabled=False,
        offline=True,
    )
    return make_app(settings, FakeModels())  # type: ignore[arg-type]


def document(tmp_path: Path, name: str) -> str:
    answer = fresh_app(tmp_path, name).test_client().get("/api/openapi.json")
    assert answer.status_code == 200
    return json.dumps(answer.json, sort_keys=True)


def test_every_app_serves_the_same_document_and_the_blueprints_stay_as_they_were(
    tmp_path: Path,
) -> None:
    docs_before = sessions.blp._docs
    first, second, third = (document(tmp_path, name) for name in ("a", "b", "c"))
    assert first == second == third
    assert sessions.blp._docs is docs_before and type(docs_before) is dict
    spec = json.loads(first)
    # the shared schemas still resolve to references, with their components written out
    create = spec["paths"]["/api/sessions"]["post"]
    created = create["responses"]["201"]["content"]["application/json"]["schema"]
    assert created == {"$ref": "#/components/schemas/SessionCreated"}
    assert "SessionCreated" in spec["components"]["schemas"]


def test_the_document_is_written_when_first_read_and_once_under_concurrent_reads(
    tmp_path: Path,
) -> None:
    """Views are documented on the document's first read (api/documentation.py), not when
    the app is made; eight first requests at once write it once: the same document as a
    single read, every tag and security scheme in it once."""
    expected = json.loads(document(tmp_path, "alone"))
    app = fresh_app(tmp_path, "together")
    api = app.extensions["flask-smorest"]["apis"][""]["ext_obj"]
    assert api._spec.to_dict().get("paths", {}) == {}  # nothing documented yet
    bodies: list[object] = [None] * 8

    def read(n: int) -> None:
        answer = app.test_client().get("/api/openapi.json")
        assert answer.status_code == 200
        bodies[n] = answer.json

    at_once(8, read)
    assert all(body == expected for body in bodies)
    tags = [tag["name"] for tag in expected["tags"]]
    assert len(tags) == len(set(tags)) and "teacher" in tags
    assert list(expected["components"]["securitySchemes"]) == ["teacherToken"]
