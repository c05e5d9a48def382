"""The student and teacher pages are plain static files: served by Flask, nothing inline
that a strict Content-Security-Policy would block, nothing fetched from another host; every
word they show comes from the message catalogs, which hold the same messages in English
and Spanish."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

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


@pytest.mark.parametrize(
    ("url", "script"),
    [
        ("/", "app.js"),
        ("/teacher", "teacher.js"),
        ("/teacher/projector", "projector.js"),
        ("/lab", "lab.js"),
    ],
)
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
        ("lab.js", "javascript"),
        ("score.js", "javascript"),
        ("tokens.js", "javascript"),
        ("wheel.js", "javascript"),
        ("rules.js", "javascript"),
        ("surprise.js", "javascript"),
        ("sample-chart.js", "javascript"),
        ("compare.js", "javascript"),
        ("lesson.js", "javascript"),
        ("live.js", "javascript"),
        ("live-grid.js", "javascript"),
        ("classes.js", "javascript"),
        ("class-charts.js", "javascript"),
        ("rounds.js", "javascript"),
        ("projector.js", "javascript"),
        ("i18n.js", "javascript"),
        ("docs.js", "javascript"),
        ("i18n/en.json", "application/json"),  # imported as JSON modules: the type matters
        ("i18n/es.json", "application/json"),
        ("style.css", "text/css"),
        ("lab.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
    ],
)
def test_static_files_have_their_types(client: FlaskClient, name: str, mimetype: str) -> None:
    r = client.get(f"/static/{name}")
    assert r.status_code == 200 and mimetype in r.mimetype
    r.close()
    assert client.get("/static/nope.js").status_code == 404
    assert client.get("/static/../app.py").status_code == 404


@pytest.mark.parametrize("page", ["index.html", "teacher.html", "projector.html", "lab.html"])
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
        for target in re.findall(
            r'\bfrom "([^"]+)"(?: with \{ type: "json" \})?;', path.read_text()
        ):
            assert target.startswith("./") and (WEB / target[2:]).is_file(), (path.name, target)


# ---------------------------------------------------------------- the catalogs

CATALOGS = {lang: WEB / "i18n" / f"{lang}.json" for lang in ("en", "es")}
# docs.html is Swagger UI's page, in English only
PAGES = ("index.html", "teacher.html", "projector.html", "lab.html")
SCRIPTS = (
    "app.js",
    "teacher.js",
    "lab.js",
    "score.js",
    "wheel.js",
    "tokens.js",
    "format.js",
    "api.js",
    "rules.js",
    "surprise.js",
    "sample-chart.js",
    "compare.js",
    "lesson.js",
    "live.js",
    "live-grid.js",
    "classes.js",
    "class-charts.js",
    "rounds.js",
    "projector.js",
)
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def catalog(lang: str) -> dict[str, Any]:
    return json.loads(CATALOGS[lang].read_text())  # type: ignore[no-any-return]


def forms(message: Any) -> list[str]:
    return list(message.values()) if isinstance(message, dict) else [message]


def test_english_and_spanish_have_the_same_messages() -> None:
    en, es = catalog("en"), catalog("es")
    assert en.keys() == es.keys(), set(en) ^ set(es)
    for key, message in en.items():
        other = es[key]
        assert type(message) is type(other), key
        if isinstance(message, dict):  # plural forms: Intl.PluralRules categories
            assert {"one", "other"} <= set(message) and {"one", "other"} <= set(other), key
        for text in forms(message) + forms(other):
            assert isinstance(text, str) and text.strip(), key
        # the same values go into both languages (a "one" form may leave the count out)
        names = [{n for t in forms(m) for n in PLACEHOLDER.findall(t)} for m in (message, other)]
        assert names[0] == names[1], (key, names)
    assert en["language.name"] == "English" and es["language.name"] == "Español"


def keys_used() -> tuple[set[str], set[str]]:
    """Catalog keys the pages name: whole ones, and the fixed starts of keys made from a
    value (`stat.${key}`)."""
    whole: set[str] = set()
    starts: set[str] = set()
    for page in PAGES:
        whole |= set(re.findall(r'data-i18n(?:-[a-z-]+)?="([^"]+)"', (WEB / page).read_text()))
    for script in SCRIPTS:
        text = (WEB / script).read_text()
        whole |= set(re.findall(r'\bt\(\s*"([^"]+)"', text))
        starts |= set(re.findall(r"\bt\(\s*`([^`$]+)\$\{", text))
        # keys chosen before the call: "x.y" literals that look like catalog keys
        whole |= {k for k in re.findall(r'"([a-z]+\.[a-zA-Z.]+)"', text) if k in catalog("en")}
    return whole, starts


def test_every_message_the_pages_name_is_in_the_catalog() -> None:
    en = catalog("en")
    whole, starts = keys_used()
    assert whole - en.keys() == set()
    for start in starts:
        assert any(key.startswith(start) for key in en), start


class PageText(HTMLParser):
    """Text and attributes of a page a person would read, with where they come from."""

    SPOKEN = ("aria-label", "title", "placeholder", "alt", "aria-valuetext")

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[dict[str, str | None]] = []
        self.literal: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        for name in self.SPOKEN:
            if attributes.get(name):
                self.literal.append(f"<{tag} {name}={attributes[name]!r}>")
        if tag not in {"meta", "link", "input", "br", "img"}:
            self.stack.append(attributes)

    def handle_endtag(self, tag: str) -> None:
        if self.stack and tag not in {"meta", "link", "input", "br", "img"}:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        if data.strip() and not (self.stack and "data-i18n" in self.stack[-1]):
            self.literal.append(data.strip())


@pytest.mark.parametrize("page", PAGES)
def test_no_words_in_the_pages_markup(page: str) -> None:
    """Every text and every spoken attribute of the HTML comes from the catalog (elements
    with data-i18n stay empty in the file)."""
    parser = PageText()
    parser.feed((WEB / page).read_text())
    assert parser.literal == []
    assert not re.search(r'data-i18n="[^"]+"[^>]*>[^<\s]', (WEB / page).read_text())


# Literals in the scripts that are not words for people: selectors, media queries, HTTP
# header names and key names (KeyboardEvent.key). Anything else with words in it belongs
# in the catalog.
TECHNICAL = {
    # the API's error names (`error` in a 4xx body), compared, never shown
    "Class not found",
    "Class closed",
    "Nickname taken",
    "Already guessed",
    "Round not open",
    "Round not found",
    "input, select, textarea, .wheel, [role=listbox]",
    "Content-Type",
    "Content-Disposition",
    "Retry-After",
    "Idempotency-Key",
    "Last-Event-ID",
    "Accept",
    "Authorization",
    "Bearer",
    "Enter",
    "Home",
    "End",
    "ArrowRight",
    "ArrowLeft",
    "ArrowUp",
    "ArrowDown",
    "PageUp",
    "PageDown",
    # event types of the teacher API's timeline
    "SessionCreated",
    "SetPrompt",
    "TokenAppended",
    "Undone",
    "SessionDeleted",
    "Server busy",  # the server's error name for a full queue, compared, never shown
}
WORDS = re.compile(r"[A-Za-z]{2,}[,:;.!?]?\s+[A-Za-z]{2,}|^[A-Z][a-z]+")


def string_literals(source: str) -> list[str]:
    """The fixed parts of a script's string and template literals, comments and regular
    expression literals left out (a small tokenizer: enough for these files)."""
    out: list[str] = []
    i, n = 0, len(source)
    last = ""  # the last significant character: a / after an operand divides
    while i < n:
        c = source[i]
        if source.startswith("//", i):
            i = source.find("\n", i)
            i = n if i < 0 else i
        elif source.startswith("/*", i):
            i = source.index("*/", i) + 2
        elif c in "\"'":
            j = i + 1
            while source[j] != c:
                j += 2 if source[j] == "\\" else 1
            out.append(source[i + 1 : j])
            i, last = j + 1, "a"
        elif c == "`":
            j, depth, piece, expression = i + 1, 0, "", ""
            while depth or source[j] != "`":
                if not depth and source.startswith("${", j):
                    out.append(piece)
                    piece, depth, j = "", 1, j + 2
                    continue
                if depth:
                    depth += {"{": 1, "}": -1}.get(source[j], 0)
                    if depth:
                        expression += source[j]
                    else:  # the expression ended: its own literals count too
                        out.extend(string_literals(expression))
                        expression = ""
                else:
                    piece += source[j]
                j += 1
            out.append(piece)
            i, last = j + 1, "a"
        elif c == "/" and last not in "a)]":
            j = i + 1
            in_class = False
            while in_class or source[j] != "/":
                if source[j] == "\\":
                    j += 1
                elif source[j] in "[]":
                    in_class = source[j] == "["
                j += 1
            i, last = j + 1, "a"
        else:
            if not c.isspace():
                last = "a" if (c.isalnum() or c in "_$") else c
            i += 1
    return out


def test_the_tokenizer_finds_strings_and_skips_comments_and_patterns() -> None:
    source = 'a = "One two"; // Not this\nb = /"x" y/g.test(`Hi ${c + "d"} there`) / 2;'
    assert string_literals(source) == ["One two", "Hi ", "d", " there"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_no_words_in_the_scripts(script: str) -> None:
    """A reasonable static check: no literal in the scripts reads like words for people
    (two words, or a capitalized word) unless it is technical (TECHNICAL)."""
    words = [
        text
        for text in string_literals((WEB / script).read_text())
        if WORDS.search(text) and text.strip() not in TECHNICAL and not text.startswith("(")
    ]
    assert words == []


@pytest.mark.parametrize("sheet", ["style.css", "lab.css"])
def test_every_rule_of_the_style_sheets_is_closed(sheet: str) -> None:
    """A rule left open (a merge once dropped two closing braces) nests every rule after
    it under its selector, where they match nothing, and no browser says so."""
    text = re.sub(r"/\*.*?\*/", "", (WEB / sheet).read_text(), flags=re.S)
    depth = 0
    for number, line in enumerate(text.splitlines(), start=1):
        opened = line.strip().endswith("{")
        if opened and depth and not line.startswith("  "):
            raise AssertionError(f"{sheet}:{number}: a rule starts inside another: {line}")
        depth += line.count("{") - line.count("}")
        assert depth >= 0, f"{sheet}:{number}: closes a rule never opened"
    assert depth == 0
