"""The API reference at /api/docs in headless Chromium: Swagger UI renders every operation
of our OpenAPI 3.1 document and "Try it out" runs a request against this server, with
nothing fetched from elsewhere, under the server's own Content-Security-Policy (no inline
script; Swagger UI's icons are data: images, which it allows)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import LAPTOP, Server, open_page, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.model]  # the server loads the bundled model

METHODS = {"get", "post", "put", "patch", "delete"}


def test_the_api_docs_show_every_operation_and_try_one_out(
    browser: Browser, server: Server
) -> None:
    spec = server.request("GET", "/api/openapi.json")
    assert spec["openapi"].startswith("3.1")
    operations = [(m, path) for path, item in spec["paths"].items() for m in item if m in METHODS]
    page, watch = open_page(browser, server, reduced_motion=True, viewport=LAPTOP, policy=None)
    try:
        page.goto(server.url + "/api/docs")
        blocks = page.locator(".opblock")
        expect(blocks).to_have_count(len(operations))
        expect(page.get_by_text("Unable to render this definition")).to_have_count(0)
        shown = blocks.evaluate_all(
            """bs => bs.map(b => [
                b.querySelector('.opblock-summary-method').textContent.toLowerCase(),
                b.querySelector('.opblock-summary-path').dataset.path])"""
        )
        assert sorted(map(tuple, shown)) == sorted(operations)
        screenshot(page, "api-docs")

        # Try it out: GET /api/models, run here, answered by this server
        models = page.locator(".opblock-get").filter(
            has=page.locator('.opblock-summary-path[data-path="/api/models"]')
        )
        models.locator(".opblock-summary-control").click()
        models.get_by_role("button", name="Try it out").click()
        with page.expect_response(re.compile(r"/api/models$")) as answered:
            models.get_by_role("button", name="Execute").click()
        assert answered.value.status == 200
        live = models.locator(".live-responses-table tbody .response-col_status").first
        expect(live).to_have_text("200")
        expect(models.locator(".live-responses-table .microlight").first).to_contain_text(
            "default_model"
        )
        screenshot(page, "api-docs-try-it-out")
        assert watch.errors == []
        assert watch.outside == []
    finally:
        page.context.close()
