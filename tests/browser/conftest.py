"""A real server on 127.0.0.1 with the bundled model, and Debian's Chromium driven by
Playwright (headless). Outside CI a machine without Chromium (or without axe-core, which
`make test` installs with npm) skips these tests; under CI=true it fails, so a missing
browser is never a silent pass.

Every state a test reaches goes through :func:`check`: a screenshot in
``test-artifacts/screenshots/`` and axe-core, which must report no violation. Tests that
use ``desk`` (or ``lang``) run once per language the pages speak."""

from __future__ import annotations

import functools
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import IN_CI, MODEL_CACHE

CHROMIUM = Path(os.environ.get("TOKENWHEEL_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
BUNDLED = "smollm2-135m"
TEACHER_TOKEN = "browser-teacher-token-5f1c9e"
STRICT_CSP = "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
AXE_RESULTS = ROOT / "test-artifacts" / "axe"
# axe-core from npm (tests/browser/package.json, installed by `make test`)
NODE_MODULES = ROOT / "tests" / "browser" / "node_modules"
AXE = Path(os.environ.get("TOKENWHEEL_TEST_AXE", NODE_MODULES / "axe-core" / "axe.min.js"))
CATALOGS = ROOT / "tokenwheel" / "web" / "i18n"
LANGUAGES = ("en", "es")
LOCALES = {"en": "en-GB", "es": "es-ES"}  # the browser's language: the pages follow it
LAPTOP = {"width": 1366, "height": 768}
START_TIMEOUT = 240.0  # migrate, start gunicorn, load the model on 2 busy cores
STEP_TIMEOUT_MS = 30_000  # one page step (a request and a redraw) on a busy machine

expect.set_options(timeout=STEP_TIMEOUT_MS)  # Playwright's default is 5 s


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (required under CI)")
    pytest.skip(f"{reason} (skipped outside CI only)")


@dataclass
class Server:
    url: str
    log: Path

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        timeout: float = 60,
        headers: dict[str, str] | None = None,
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return json.load(response)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(server: Server, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {server.log.read_text()[-3000:]}")
        try:
            server.request("GET", "/api/models", timeout=5)
            break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    else:
        raise RuntimeError(f"the server did not start: {server.log.read_text()[-3000:]}")
    # load the model now, so page timeouts need not allow for it
    remaining = max(10.0, deadline - time.monotonic())
    created = server.request("POST", "/api/sessions", {}, timeout=remaining)
    server.request("DELETE", f"/api/sessions/{created['session_id']}")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    instance = tmp_path_factory.mktemp("browser-instance")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENWHEEL_")}
    env.update(
        TOKENWHEEL_INSTANCE_PATH=str(instance),
        TOKENWHEEL_OFFLINE="true",
        TOKENWHEEL_DEFAULT_MODEL=BUNDLED,
        TOKENWHEEL_MODEL_CACHE_DIR=str(MODEL_CACHE),
        TOKENWHEEL_SCHEDULER="false",
        TOKENWHEEL_TEACHER_TOKEN=TEACHER_TOKEN,
        HF_HUB_OFFLINE="1",
    )
    port = _free_port()
    log = instance / "server.log"
    # python -m: the server runs this checkout's code (PYTHONPATH), whatever is installed
    command = [sys.executable, "-m", "tokenwheel", "serve"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--threads", "4"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(url=f"http://127.0.0.1:{port}", log=log)
    try:
        _wait_until_up(server, process)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, timeout=60_000
        )
        yield browser
        browser.close()


@dataclass
class PageWatch:
    """What a page did that a test must look at: console errors, uncaught exceptions,
    requests for anything not on our server."""

    origin: str
    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)

    def expected_failures_only(self, statuses: set[int]) -> list[str]:
        """Console errors other than the browser's 'Failed to load resource' lines for
        responses a test provoked on purpose."""
        allowed = tuple(f"status of {s} " for s in statuses)

        def provoked(error: str) -> bool:
            return "Failed to load resource" in error and any(a in error for a in allowed)

        return [e for e in self.errors if not provoked(e)]


def open_page(
    browser: Browser,
    server: Server,
    *,
    reduced_motion: bool,
    lang: str = "en",
    policy: str | None = STRICT_CSP,
    **context: Any,
) -> tuple[Page, PageWatch]:
    """A new browser context's page; documents are served under ``policy`` (None: the
    server's own Content-Security-Policy)."""
    ctx = browser.new_context(service_workers="block", locale=LOCALES[lang], **context)
    page = ctx.new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    page.emulate_media(reduced_motion="reduce" if reduced_motion else "no-preference")
    watch = PageWatch(origin=server.url)
    page.on("console", lambda m: m.type == "error" and watch.errors.append(m.text))
    page.on("pageerror", lambda e: watch.errors.append(f"uncaught: {e}"))

    def guard(route: Any) -> None:
        if not route.request.url.startswith(server.url + "/"):
            # no CDN, no fonts, no telemetry: nothing leaves this machine
            watch.outside.append(route.request.url)
            route.abort()
        elif route.request.resource_type == "document" and policy is not None:
            # serve pages under a strict policy: an inline script or style, or anything
            # fetched from elsewhere, would be a console error
            response = route.fetch()
            headers = {**response.headers, "content-security-policy": policy}
            route.fulfill(response=response, headers=headers)
        else:
            route.continue_()

    page.route("**/*", guard)
    return page, watch


@pytest.fixture(params=LANGUAGES)
def lang(request: pytest.FixtureRequest) -> str:
    """The browser's language; the pages follow it."""
    return str(request.param)


@pytest.fixture
def desk(browser: Browser, server: Server, lang: str) -> Iterator[tuple[Page, PageWatch]]:
    """A 1366x768 laptop screen that prefers reduced motion (spins finish at once), in
    the browser language ``lang``."""
    page, watch = open_page(browser, server, reduced_motion=True, lang=lang, viewport=LAPTOP)
    yield page, watch
    page.context.close()


def screenshot(page: Page, name: str) -> Path:
    """The whole page as ``<name>.<language of the page>.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    language = page.evaluate("document.documentElement.lang") or "none"
    path = SCREENSHOTS / f"{name}.{language}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@functools.cache
def _axe_source() -> str:
    if not AXE.is_file():
        _unavailable(f"no axe-core at {AXE} (make test installs it: npm ci in tests/browser)")
    return AXE.read_text()


AXE_RUN = """async () => {
  const [x, y] = [window.scrollX, window.scrollY];  // axe scrolls to what it checks
  const result = await axe.run(document, {resultTypes: ["violations"]});
  window.scrollTo(x, y);
  return {
    violations: result.violations.map((v) => ({
      id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.slice(0, 6).map((n) => `${n.target.join(" ")}: ${n.failureSummary}`),
    })),
    passes: result.passes.length,
    incomplete: result.incomplete.map((v) => v.id),  // for a person to review: not failures
  };
}"""


def axe(page: Page, name: str) -> dict[str, Any]:
    """axe-core's verdict on the page as it is (every rule axe runs by default, best
    practices included); kept in ``test-artifacts/axe/<name>.<language>.json``."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(_axe_source())  # by the DevTools protocol: the page's CSP allows it
    result: dict[str, Any] = page.evaluate(AXE_RUN)
    AXE_RESULTS.mkdir(parents=True, exist_ok=True)
    language = page.evaluate("document.documentElement.lang") or "none"
    (AXE_RESULTS / f"{name}.{language}.json").write_text(json.dumps(result, indent=2))
    return result


def check(page: Page, name: str) -> Path:
    """A state a test reached: screenshot it and check it with axe-core (no violation)."""
    path = screenshot(page, name)
    result = axe(page, name)
    assert result["violations"] == [], json.dumps(result["violations"], indent=2)
    return path


@functools.cache
def catalog(lang: str) -> dict[str, Any]:
    return json.loads((CATALOGS / f"{lang}.json").read_text())  # type: ignore[no-any-return]


def say(lang: str, key: str, **params: Any) -> str:
    """A message of the pages' catalog, as the page shows it (``{name}`` filled in; a
    plural message picks "one" for a count of 1). Numbers are passed already formatted."""
    message = catalog(lang)[key]
    if isinstance(message, dict):
        message = message["one" if params.get("count") in (1, "1") else "other"]
    return re.sub(r"\{(\w+)\}", lambda m: str(params[m.group(1)]), str(message))


def start_session(page: Page, server: Server, prompt: str, class_code: str = "") -> str:
    """On the student page: type a prompt (and a class code), press Start, wait for the
    wheel; the new session's id."""
    page.goto(server.url + "/")
    expect(page.locator("#model")).to_have_value("smollm2-135m")
    if class_code:
        page.fill("#class-code", class_code)
    page.fill("#prompt", prompt)
    page.click("#start")
    expect(page.locator("#wheel .wedge").first).to_be_visible()
    expect(page.locator("body")).to_have_attribute("data-busy", "false")
    session = page.locator("body").get_attribute("data-session")
    assert session
    return session
