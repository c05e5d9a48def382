"""The student page in headless Chromium against a real server: start, spin, pick by
keyboard, undo, sliders, error messages, a phone screen; no console errors, nothing
fetched from outside."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.browser.conftest import PageWatch, Server, open_page, screenshot, start_session

pytestmark = [pytest.mark.browser, pytest.mark.model]

PROMPT = "The cat sat on the"


def start(page: Page, server: Server, prompt: str = PROMPT) -> str:
    return start_session(page, server, prompt)


def chips(page: Page) -> Any:
    return page.locator("#text .tok")


# Animations that move: under reduced motion the page's CSS shortens every transition to
# 0.01 ms, and such a transition can still be listed in the frame it ends in.
MOTIONS = """() => document.getAnimations()
  .map(a => a.effect.getTiming().duration)
  .filter(duration => Number(duration) > 1)"""


def idle(page: Page) -> None:
    expect(page.locator("body")).to_have_attribute("data-busy", "false")


def assert_pointer_at(page: Page, angle: float) -> None:
    """The wheel stopped with the point ``angle`` degrees into it under the pointer."""
    stopped = float(page.locator("#wheel").get_attribute("data-stopped-rotation") or "nan")
    off = (stopped + angle + 180) % 360 - 180
    assert abs(off) < 1e-6, (stopped, angle)


# The wedge drawn just inside the rim under the pointer's tip, found by the browser's own
# hit test on the screen (labels and rings let the pointer through).
UNDER_THE_POINTER = """() => {
  const svg = document.getElementById("wheel");
  svg.scrollIntoView({block: "start"});  // hit tests see only what is on the screen
  const m = svg.getScreenCTM();
  const at = new DOMPoint(0, -88).matrixTransform(m);  // the pointer's tip is at (0, -95)
  const wedge = document.elementsFromPoint(at.x, at.y)
    .map((node) => node.closest && node.closest(".wedge")).find(Boolean);
  return wedge ? {index: Number(wedge.dataset.index), landed: wedge.classList.contains("landed"),
                  token: wedge.dataset.tokenId ?? null} : null;
}"""


def test_a_student_spins_picks_undoes_and_changes_the_temperature(
    desk: tuple[Page, PageWatch], server: Server
) -> None:
    page, watch = desk
    page.goto(server.url + "/")
    assert page.evaluate("matchMedia('(prefers-reduced-motion: reduce)').matches")
    expect(page.locator("html")).to_have_attribute("data-motion", "reduced")
    expect(page.locator("#model")).to_have_value("smollm2-135m")
    screenshot(page, "student-start")

    session = start(page, server)
    expect(page.locator("#text .prompt")).to_have_text(PROMPT)
    expect(chips(page)).to_have_count(0)
    picks = page.get_by_role("button", name=re.compile(r"^Pick "))
    assert picks.count() >= 3, "the wheel shows one button per above-threshold token"
    other = page.get_by_role("button", name=re.compile(r"^Other: [\d,]+ tokens"))
    expect(other).to_have_count(1)
    expect(page.locator("#other-summary")).to_contain_text("tokens")
    expect(page.locator("#other-list li")).to_have_count(10)
    expect(page.locator("#undo")).to_be_disabled()
    screenshot(page, "student-wheel")

    # Spin: the server draws; the wheel stops where the draw fell; the token joins the text.
    # The next wheel is held back, so the stopped wheel can be looked at on the screen.
    held: list[Route] = []
    page.route(re.compile(r"/next-token-probs"), lambda route: held.append(route))
    with page.expect_response(re.compile(r"/spin$")) as spun:
        page.click("#spin")
    body = spun.value.json()
    expect(chips(page)).to_have_count(1)
    page.wait_for_function("() => document.querySelector('#wheel .wedge.landed') !== null")
    under = page.evaluate(UNDER_THE_POINTER)
    assert under == {
        "index": body["landed"]["wedge_index"],
        "landed": True,
        "token": str(body["appended_token"]["token_id"])
        if body["landed"]["wedge"] == "token"
        else None,
    }, (under, body["landed"])
    screenshot(page, "student-stopped")
    page.unroute(re.compile(r"/next-token-probs"))
    for route in held:
        route.continue_()
    idle(page)
    token = body["appended_token"]
    assert chips(page).first.get_attribute("data-token-id") == str(token["token_id"])
    assert token["selection"] == "spin"
    wheel = page.locator("#wheel")
    assert_pointer_at(page, body["angle"])
    assert page.evaluate(MOTIONS) == []  # reduced motion: no spin
    expect(page.locator("#landing-text")).to_contain_text(f"{body['draw']:.4f}")
    chip_title = chips(page).first.get_attribute("title") or ""
    assert f"token id {token['token_id']}" in chip_title
    screenshot(page, "student-after-spin")

    # Keyboard only: from Spin, Shift+Tab reaches the wheel (one tab stop), an arrow moves
    # to the second wedge, Enter picks it.
    page.focus("#spin")
    page.keyboard.press("Shift+Tab")
    focused = page.evaluate("document.activeElement.closest('.wedge')?.dataset.index")
    assert focused == "0"
    page.keyboard.press("ArrowRight")
    wedge = page.evaluate(
        "({index: document.activeElement.dataset.index,"
        " token: document.activeElement.dataset.tokenId ?? null,"
        " name: document.activeElement.getAttribute('aria-label')})"
    )
    assert wedge["index"] == "1" and wedge["name"]
    expect(page.locator("#wedge-info")).to_have_text(re.compile(r".*number 2 on the wheel|^Other:"))
    screenshot(page, "student-keyboard")
    page.keyboard.press("Enter")
    expect(chips(page)).to_have_count(2)
    idle(page)
    if wedge["token"] is not None:
        assert chips(page).nth(1).get_attribute("data-token-id") == wedge["token"]
    # the wheel was redrawn for the next token, and the focus is still on a wedge
    assert page.evaluate("document.activeElement.classList.contains('wedge')")

    # Undo, by keyboard too; waiting for the server does not drop the focus.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "spin"
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(chips(page)).to_have_count(1)
    idle(page)
    assert page.evaluate("document.activeElement.id") == "undo"

    # Temperature and threshold redraw the wheel; the session and its text stay.
    first_name = page.locator("#wheel .wedge").first.get_attribute("aria-label")
    page.focus("#temperature")
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    expect(page.locator("#temperature-value")).to_have_text("1.5")
    expect(wheel).to_have_attribute("data-temperature", "1.5")
    idle(page)
    assert page.locator("#wheel .wedge").first.get_attribute("aria-label") != first_name
    page.focus("#threshold")
    page.keyboard.press("ArrowLeft")
    expect(wheel).to_have_attribute("data-threshold", "0.005")
    idle(page)
    expect(chips(page)).to_have_count(1)
    assert page.locator("body").get_attribute("data-session") == session
    state = server.request("GET", f"/api/sessions/{session}")
    assert [t["token_id"] for t in state["token_history"]] == [token["token_id"]]
    screenshot(page, "student-temperature")

    assert watch.errors == []
    assert watch.outside == []


def test_errors_are_explained(desk: tuple[Page, PageWatch], server: Server) -> None:
    page, watch = desk
    session = start(page, server)

    message = page.locator("#message")

    # An expired session: the page says so and starts a new one on request.
    server.request("DELETE", f"/api/sessions/{session}")
    page.focus("#temperature")
    page.keyboard.press("ArrowLeft")
    expect(message).to_be_visible()
    expect(message).to_contain_text("Session expired or deleted")
    screenshot(page, "student-error")
    page.click("#message-action")
    expect(message).to_be_hidden()
    expect(page.locator("#wheel .wedge").first).to_be_visible()
    idle(page)
    assert page.locator("body").get_attribute("data-session") not in ("", session)

    # A rate limit: the message says how long to wait, and Spin waits that long.
    page.route(
        re.compile(r"/spin$"),
        lambda route: route.fulfill(
            status=429,
            headers={"Retry-After": "7"},
            json={"error": "Too many requests", "message": "Slow down a little."},
        ),
    )
    page.click("#spin")
    expect(message).to_contain_text("Too many requests")
    expect(message).to_contain_text("Try again in 7 s")
    expect(page.locator("#spin")).to_be_disabled()

    # The model cannot load: 503 with the server's reason.
    page.route(
        re.compile(r"/api/sessions$"),
        lambda route: route.fulfill(
            status=503,
            json={"error": "Model unavailable", "message": "Model 'x' is still loading."},
        ),
    )
    page.fill("#class-code", "BIO-7")  # a new class code asks for a new session
    page.click("#start")
    expect(message).to_contain_text("Model loading or unavailable")
    expect(message).to_contain_text("still loading")

    assert watch.expected_failures_only({404, 429, 503}) == []
    assert watch.outside == []


def test_mouse_space_another_tab_and_failures(desk: tuple[Page, PageWatch], server: Server) -> None:
    """A wedge picked by mouse and by Space; the text's chips coloured by probability with
    visible spaces; a change from another tab while the student chose (409: the page
    shows the session as it is now); a 400 and a lost connection explained."""
    page, watch = desk
    session = start(page, server)
    message = page.locator("#message")

    # the mouse: the first wedge (the most likely token) joins the text
    first = page.locator("#wheel .wedge").first
    first_token = first.get_attribute("data-token-id")
    first.click()
    expect(chips(page)).to_have_count(1)
    idle(page)
    assert chips(page).first.get_attribute("data-token-id") == first_token
    # Space on a focused wedge picks too
    page.locator("#wheel .wedge").nth(1).focus()
    picked = page.evaluate("document.activeElement.dataset.tokenId ?? 'other'")
    page.keyboard.press(" ")
    expect(chips(page)).to_have_count(2)
    idle(page)
    if picked != "other":
        assert chips(page).nth(1).get_attribute("data-token-id") == picked

    # chips: coloured by probability (likelier is another colour), spaces made visible as
    # the server's display_text shows them (·)
    history = server.request("GET", f"/api/sessions/{session}")["token_history"]
    colours = [chips(page).nth(i).evaluate("c => c.style.backgroundColor") for i in range(2)]
    if history[0]["probability"] != history[1]["probability"]:
        assert colours[0] != colours[1]
    spaced = [i for i, t in enumerate(history) if t["token_text"].startswith(" ")]
    for i in spaced:
        assert chips(page).nth(i).inner_text().startswith("·")

    # another tab appends while this one shows the wheel: the choice here is refused and
    # the page shows the session as it is now
    other_tab = server.request(
        "POST", f"/api/sessions/{session}/append-token", {"category": "other"}
    )
    page.locator("#wheel .wedge").first.click()
    expect(message).to_contain_text("Changed elsewhere")
    expect(chips(page)).to_have_count(3)
    idle(page)
    assert chips(page).nth(2).get_attribute("data-token-id") == str(
        other_tab["appended_token"]["token_id"]
    )
    assert server.request("GET", f"/api/sessions/{session}")["version"] == other_tab["version"]
    screenshot(page, "student-conflict")

    # a refused request says what the server said; a lost connection says so
    page.route(
        re.compile(r"/append-token$"),
        lambda route: route.fulfill(
            status=400, json={"error": "Invalid request", "message": "token_id is not valid."}
        ),
    )
    page.locator("#wheel .wedge").first.click()
    expect(message).to_contain_text("token_id is not valid.")
    page.unroute(re.compile(r"/append-token$"))
    page.route(re.compile(r"/undo$"), lambda route: route.abort("connectionrefused"))
    page.click("#undo")
    expect(message).to_contain_text("No connection")
    expect(message).to_contain_text("does not answer")
    assert watch.expected_failures_only({400, 409}) == [
        e for e in watch.errors if "ERR_CONNECTION_REFUSED" in e
    ]
    assert watch.outside == []


BALANCER_502 = "<html><body><h1>502 Bad Gateway</h1>The server returned an invalid response.</body>"


def test_behind_a_balancer_a_lost_answer_is_retried_once_with_the_same_key(
    desk: tuple[Page, PageWatch], server: Server
) -> None:
    """On a campus (docs/operations.md) the server a request went to can die under it;
    the balancer then answers 502 in HTML. Every change the page sends carries its own
    Idempotency-Key; after a balancer's 502 (or no answer) the page sends the same
    request once more with the same key. Here the first attempt reaches the server and
    is applied, and only its answer is lost: the retry is answered from the stored
    first answer, so the token joins the text once and the student sees no error. A
    server's own 503 (JSON: busy) is shown, not retried."""
    page, watch = desk
    posts: list[tuple[str, str | None]] = []
    page.on(
        "request",
        lambda r: r.method == "POST" and posts.append((r.url, r.headers.get("idempotency-key"))),
    )
    session = start(page, server)
    assert [url.rsplit("/", 1)[-1] for url, _ in posts] == ["sessions", "set-prompt"]
    assert all(key for _, key in posts) and len({key for _, key in posts}) == 2

    replayed: list[str | None] = []

    def applied_but_answer_lost(route: Route) -> None:
        response = route.fetch()  # the server applies the change...
        if not replayed and response.status == 200:
            replayed.append(None)
            route.fulfill(status=502, content_type="text/html", body=BALANCER_502)  # ...lost
            return
        replayed.append(response.headers.get("idempotent-replayed"))
        route.fulfill(response=response)

    page.route(re.compile(r"/append-token$"), applied_but_answer_lost)
    page.locator("#wheel .wedge").first.click()
    expect(chips(page)).to_have_count(1)
    idle(page)
    page.unroute(re.compile(r"/append-token$"))
    appends = [key for url, key in posts if url.endswith("/append-token")]
    assert len(appends) == 2 and appends[0] == appends[1], posts  # one change, one key
    assert replayed == [None, "true"]  # the retry got the stored first answer
    state = server.request("GET", f"/api/sessions/{session}")
    assert len(state["token_history"]) == 1  # applied once
    expect(page.locator("#message")).to_be_hidden()

    busy: list[str] = []

    def server_busy(route: Route) -> None:
        busy.append(route.request.url)
        route.fulfill(
            status=503,
            headers={"Retry-After": "2"},
            json={"error": "Server busy", "message": "The model has too much to do."},
        )

    page.route(re.compile(r"/spin$"), server_busy)
    page.click("#spin")
    expect(page.locator("#message")).to_contain_text("Server busy")
    assert len(busy) == 1  # a server's own answer: shown, never sent again
    page.unroute(re.compile(r"/spin$"))
    screenshot(page, "student-server-busy")
    assert watch.expected_failures_only({502, 503}) == []
    assert watch.outside == []


def test_the_page_fits_a_phone_and_spins_with_motion(browser: Browser, server: Server) -> None:
    page, watch = open_page(
        browser,
        server,
        reduced_motion=False,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    try:
        start(page, server)
        width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], "no sideways scrolling on a phone"
        box = page.locator("#wheel").bounding_box()
        assert box and box["width"] <= 390
        screenshot(page, "student-phone")

        with page.expect_response(re.compile(r"/spin$")) as spun:
            page.locator("#spin").tap()
        page.wait_for_function("document.getAnimations().length > 0")  # the wheel turns
        expect(chips(page)).to_have_count(1)
        stopped = float(page.locator("#wheel").get_attribute("data-stopped-rotation") or "nan")
        assert stopped >= 360, "with motion allowed the wheel makes full turns"
        assert_pointer_at(page, spun.value.json()["angle"])
        idle(page)
        screenshot(page, "student-phone-after-spin")
        assert watch.errors == []
        assert watch.outside == []
    finally:
        page.context.close()
