"""The student and teacher pages are plain static files: served by Flask, nothing inline
that a strict Content-Security-Policy would block, nothing fetched from another host."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from tests.fakes import FakeModels
from tokenwheel import create_app
from tokenwheel.settings import Settings

WEB = Path(__file__).resolve().parents[2] / "tokenwheel" / "web"
SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # a name, never fetched


@pytest.fixture
def client(settings: Settings) -> FlaskClient:
    return create_app(settings, models=FakeModels()).test_client()


@pytest.mark.parametrize(("url", "script"), [("/", "app.js"), ("/teacher", "teacher.js")])
def test_the_pages_are_served(client: FlaskClient, url: str, script: str) -> None:
    r = client.get(url)
    assert r.status_code == 200 and r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    assert f'<script type="module" src="/static/{script}"></script>' in html
    for path in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
        asset = client.get(path)
        assert asset.status_code == 200, path
        asset.close()
    r.close()


@pytest.mark.parametrize(
    ("name", "mimetype"),
    [
        ("app.js", "javascript"),
        ("teacher.js", "javascript"),
        ("tokens.js", "javascript"),
        ("wheel.js", "javascript"),
        ("style.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
    ],
)
def test_static_files_have_their_types(client: FlaskClient, name: str, mimetype: str) -> None:
    r = client.get(f"/static/{name}")
    assert r.status_code == 200 and mimetype in r.mimetype
    r.close()
    assert client.get("/static/nope.js").status_code == 404
    assert client.get("/static/../app.py").status_code == 404


@pytest.mark.parametrize("page", ["index.html", "teacher.html"])
def test_nothing_inline_and_nothing_from_elsewhere(page: str) -> None:
    html = (WEB / page).read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline script"
    assert "<style" not in html and not re.search(r"\sstyle=", html), "inline style"
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"
    for path in WEB.rglob("*"):
        if path.is_file():
            text = path.read_text().replace(SVG_NAMESPACE, "")
            assert not re.search(r"https?://|url\(\s*['\"]?//|@import", text), path.name
            assert "innerHTML" not in text, f"{path.name}: build DOM nodes, never HTML strings"


def test_modules_import_only_their_siblings() -> None:
    for path in WEB.glob("*.js"):
        for target in re.findall(r'\bfrom "([^"]+)";', path.read_text()):
            assert target.startswith("./") and (WEB / target[2:]).is_file(), (path.name, target)
