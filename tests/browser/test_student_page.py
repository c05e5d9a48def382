"""The student page in headless Chromium against a real server, in English and in Spanish:
one screen at 1366x768, start, spin, pick by keyboard, undo, sliders, the temperature
reshaping the wheel, a new prompt that asks first, the tab order, error messages, a phone
(pinned text, the pointer in view, tap to read and tap again to pick) and Gemma 3 writing
Spanish; every state screenshotted and checked by axe-core, no console errors, nothing
fetched from outside."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.browser.conftest import (
    LAPTOP,
    LOCALES,
    SCREENSHOTS,
    PageWatch,
    Server,
    check,
    open_page,
    say,
    start_session,
)

pytestmark = [pytest.mark.browser, pytest.mark.model]

PROMPT = "The cat sat on the"
# What must be on the screen after Start, without scrolling (data-testid)
ON_SCREEN = ("wheel", "pointer", "spin", "undo", "temperature", "threshold", "text")
GEMMA = "gemma-3-270m"
MEASURES = SCREENSHOTS.parent / "measures"


def start(page: Page, server: Server, prompt: str = PROMPT) -> str:
    return start_session(page, server, prompt)


def chips(page: Page) -> Any:
    return page.locator("#text .tok")


def measured(name: str, value: Any) -> None:
    """Keep a measured figure in test-artifacts/measures/ (page height, wedge counts)."""
    MEASURES.mkdir(parents=True, exist_ok=True)
    (MEASURES / f"{name}.json").write_text(json.dumps(value, indent=2))


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
  const m = svg.getScreenCTM();
  const at = new DOMPoint(0, -88).matrixTransform(m);  // the pointer's tip is at (0, -95)
  const wedge = document.elementsFromPoint(at.x, at.y)
    .map((node) => node.closest && node.closest(".wedge")).find(Boolean);
  return wedge ? {wedge: Number(wedge.dataset.wedge), kind: wedge.dataset.kind,
                  landed: wedge.classList.contains("landed"),
                  token: wedge.dataset.tokenId ?? null} : null;
}"""

# Each drawn wedge: kind, token, where it starts and ends (fractions of a turn)
DRAWN = """() => [...document.querySelectorAll("#wheel .wedge")].map((w) => ({
  kind: w.dataset.kind, wedge: Number(w.dataset.wedge), token: w.dataset.tokenId ?? null,
  start: Number(w.dataset.start), end: Number(w.dataset.end), name: w.getAttribute("aria-label"),
}))"""


def assert_landed_under_the_pointer(page: Page, spin: dict[str, Any]) -> None:
    """The wedge under the pointer is the one the server landed on: the token's wedge, or
    in the Other wedge the thin wedge of the token it drew, or the rest of Other when
    that token is too unlikely to have a wedge of its own."""
    under = page.evaluate(UNDER_THE_POINTER)
    landed = spin["landed"]
    token = str(spin["appended_token"]["token_id"])
    drawn = {w["token"] for w in page.evaluate(DRAWN) if w["kind"] == "sample"}
    assert under is not None and under["landed"], (under, landed)
    assert under["wedge"] == landed["wedge_index"], (under, landed)
    if landed["wedge"] == "token":
        assert (under["kind"], under["token"]) == ("token", token)
    elif token in drawn:
        assert (under["kind"], under["token"]) == ("sample", token)
    else:
        assert under["kind"] == "rest"


def in_viewport(page: Page, testid: str) -> bool:
    box = page.get_by_test_id(testid).bounding_box()
    size = page.viewport_size or LAPTOP
    return bool(
        box
        and box["x"] >= 0
        and box["y"] >= 0
        and box["x"] + box["width"] <= size["width"]
        and box["y"] + box["height"] <= size["height"]
    )


def test_one_screen_spin_pick_undo_and_sliders(
    desk: tuple[Page, PageWatch], server: Server, lang: str
) -> None:
    page, watch = desk
    page.goto(server.url + "/")
    assert page.evaluate("() => matchMedia('(prefers-reduced-motion: reduce)').matches")
    expect(page.locator("html")).to_have_attribute("data-motion", "reduced")
    expect(page.locator("html")).to_have_attribute("lang", lang)  # the browser's language
    expect(page.locator("#model")).to_have_value("smollm2-135m")
    expect(page.get_by_test_id("spin")).to_be_hidden()
    check(page, "student-start")

    session = start(page, server)
    # after Start, the focus is on Spin, and everything needed is on one screen
    assert page.evaluate("() => document.activeElement.id") == "spin"
    assert page.evaluate("() => window.scrollY") == 0
    outside = [testid for testid in ON_SCREEN if not in_viewport(page, testid)]
    assert outside == [], f"not on the 1366x768 screen: {outside}"
    height = page.evaluate("() => document.documentElement.scrollHeight")
    measured(f"page-height-1366x768.{lang}", {"after_start": height})
    expect(page.locator("#text .prompt")).to_have_text(PROMPT)
    expect(chips(page)).to_have_count(0)
    tokens = page.locator('#wheel .wedge[data-kind="token"][role="button"]')
    assert tokens.count() >= 3, "the wheel shows one button per above-threshold token"
    expect(page.locator('#wheel .wedge[data-kind="rest"]')).to_have_count(1)
    expect(page.locator("#other-list li")).to_have_count(10)
    expect(page.get_by_test_id("undo")).to_be_disabled()
    check(page, "student-wheel")

    # Spin: the server draws; the wheel stops where the draw fell; the token joins the text.
    # The next wheel is held back, so the stopped wheel can be looked at on the screen.
    held: list[Route] = []
    page.route(re.compile(r"/next-token-probs"), lambda route: held.append(route))
    with page.expect_response(re.compile(r"/spin$")) as spun:
        page.keyboard.press("Enter")  # the focus is on Spin
    body = spun.value.json()
    expect(chips(page)).to_have_count(1)
    page.wait_for_function("() => document.querySelector('#wheel .wedge.landed') !== null")
    assert_landed_under_the_pointer(page, body)
    check(page, "student-stopped")
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
    expect(page.locator("#landing-text")).to_contain_text(
        page.evaluate(
            "d => new Intl.NumberFormat(document.documentElement.lang, "
            "{minimumFractionDigits: 4, maximumFractionDigits: 4}).format(d)",
            body["draw"],
        )
    )
    assert f"{token['token_id']}" in (chips(page).first.get_attribute("title") or "")

    # Keyboard only: from Spin, Shift+Tab reaches the wheel (one tab stop), an arrow moves
    # to the second wedge, Enter picks it.
    page.focus("#spin")
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("() => document.activeElement.closest('.wedge')?.dataset.index") == "0"
    page.keyboard.press("ArrowRight")
    wedge = page.evaluate(
        "() => ({index: document.activeElement.dataset.index,"
        " kind: document.activeElement.dataset.kind,"
        " token: document.activeElement.dataset.tokenId ?? null,"
        " name: document.activeElement.getAttribute('aria-label')})"
    )
    assert wedge["index"] == "1" and wedge["name"]
    # the focus ring shows on the wedge (drawn in the focus colour, not black)
    ring = page.locator("#wheel .focus-outer")
    assert ring.get_attribute("d")
    assert ring.evaluate("p => getComputedStyle(p).stroke") != "rgb(17, 17, 17)"
    expect(page.locator("#wedge-info")).not_to_be_empty()
    check(page, "student-keyboard")
    page.keyboard.press("Enter")
    expect(chips(page)).to_have_count(2)
    idle(page)
    if wedge["kind"] != "rest":
        assert chips(page).nth(1).get_attribute("data-token-id") == wedge["token"]
    # the wheel was redrawn for the next token, and the focus is still on a wedge
    assert page.evaluate("() => document.activeElement.classList.contains('wedge')")

    # Undo, by keyboard too; waiting for the server does not drop the focus.
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "spin"
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(chips(page)).to_have_count(1)
    idle(page)
    assert page.evaluate("() => document.activeElement.id") == "undo"

    # Temperature and threshold redraw the wheel; the session and its text stay.
    first_name = page.locator("#wheel .wedge").first.get_attribute("aria-label")
    page.focus("#temperature")
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    expect(page.locator("#temperature-value")).to_have_text("1,5" if lang == "es" else "1.5")
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
    check(page, "student-sliders")

    assert watch.errors == []
    assert watch.outside == []


def test_temperature_reshapes_the_wheel(
    desk: tuple[Page, PageWatch], server: Server, lang: str
) -> None:
    """On the same text at T = 0.3, 1 and 2, the wheel shows at least 8 token wedges each
    time, each sized by its true probability (Other's most likely tokens as thin wedges
    inside it); the page says what the temperature did; a spin at T = 2, where Other holds
    everything, stops inside the wedge of the token it draws."""
    page, watch = desk
    start(page, server)
    counts = {}
    notes = {}
    # (arrow presses from the last temperature, the temperature as the page sends it)
    for steps, temperature in ((-7, "0.3"), (7, "1"), (10, "2")):
        page.focus("#temperature")
        asked = re.compile(rf"temperature={re.escape(temperature)}&")
        with page.expect_response(asked) as answer:
            for _ in range(abs(steps)):
                page.keyboard.press("ArrowRight" if steps > 0 else "ArrowLeft")
        probs = answer.value.json()
        idle(page)
        expect(page.locator("#wheel")).to_have_attribute("data-temperature", temperature)
        drawn = page.evaluate(DRAWN)
        token_wedges = [w for w in drawn if w["kind"] != "rest"]
        counts[temperature] = len(token_wedges)
        assert len(token_wedges) >= 8, (temperature, len(token_wedges))
        # sized by their true probabilities, in the server's order
        by_id = {t["token_id"]: t["probability"] for t in probs["above_threshold_tokens"]}
        by_id |= {t["token_id"]: t["probability"] for t in probs["other_category"]["sample_tokens"]}
        for w in token_wedges:
            assert math.isclose(w["end"] - w["start"], by_id[int(w["token"])], abs_tol=1e-9)
        ends = [w["start"] for w in drawn[1:]]
        assert ends == [w["end"] for w in drawn[:-1]], "the wedges tile the wheel"
        # Other is honest: its own tokens inside its span, the rest to the end of the turn
        other = probs["other_category"]
        parts = [w for w in drawn if w["kind"] in ("sample", "rest")]
        if other["token_count"]:
            head = sum(t["probability"] for t in probs["above_threshold_tokens"])
            assert math.isclose(parts[0]["start"], head, abs_tol=1e-9)
            assert parts[-1]["kind"] == "rest" and parts[-1]["end"] == 1
            rest = parts[-1]
            assert math.isclose(
                rest["end"] - rest["start"],
                other["total_probability"] - sum(w["end"] - w["start"] for w in parts[:-1]),
                abs_tol=1e-9,
            )
        notes[temperature] = page.locator("#temperature-note").inner_text()
        check(page, f"student-temperature-{temperature}")
    # the page says what the temperature did: sharpened, the model's own, flattened
    for temperature, key in (("0.3", "sharper"), ("1", "model"), ("2", "flatter")):
        said = say(lang, f"temperature.{key}", temperature="X", token="Y", share="Z")
        assert said.split("X")[1].split("Y")[0] in notes[temperature], notes
    measured(f"wedges-by-temperature.{lang}", {"prompt": PROMPT, "token_wedges": counts})

    # T = 2: the spin lands in Other; the pointer stops in the drawn token's own wedge
    with page.expect_response(re.compile(r"/spin$")) as spun:
        page.get_by_test_id("spin").click()
    body = spun.value.json()
    page.wait_for_function("() => document.querySelector('#wheel .wedge.landed') !== null")
    assert_landed_under_the_pointer(page, body)
    idle(page)
    assert watch.errors == []
    assert watch.outside == []


def test_start_never_discards_work_silently(
    desk: tuple[Page, PageWatch], server: Server, lang: str
) -> None:
    page, watch = desk
    page.goto(server.url + "/")
    expect(page.locator("#model")).to_have_value("smollm2-135m")
    # Shift+Enter adds a line to the prompt; Enter starts
    page.fill("#prompt", "")
    page.focus("#prompt")
    page.keyboard.type("Roses are red,")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("violets are")
    assert page.input_value("#prompt") == "Roses are red,\nviolets are"
    page.keyboard.press("Enter")
    expect(page.locator("#wheel .wedge").first).to_be_visible()
    idle(page)
    assert page.evaluate("() => document.activeElement.id") == "spin"
    page.keyboard.press("Enter")  # spin
    expect(chips(page)).to_have_count(1)
    idle(page)

    # Ctrl+Enter in the prompt with a text built: the page asks first; keeping is the default
    page.fill("#prompt", PROMPT)
    page.focus("#prompt")
    page.keyboard.press("Control+Enter")
    dialog = page.locator("#confirm")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(say(lang, "confirm.text", count=1))
    check(page, "student-confirm-new-prompt")
    page.keyboard.press("Enter")  # the default button keeps the text
    expect(dialog).to_be_hidden()
    expect(chips(page)).to_have_count(1)
    expect(page.locator("#status")).to_have_text(say(lang, "status.kept"))

    # Escape keeps it too; "Start again" replaces it, and the focus goes to Spin
    page.get_by_test_id("start").click()
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(chips(page)).to_have_count(1)
    page.get_by_test_id("start").click()
    dialog.get_by_role("button", name=say(lang, "confirm.reset")).click()
    expect(chips(page)).to_have_count(0)
    expect(page.locator("#text .prompt")).to_have_text(PROMPT)
    idle(page)
    assert page.evaluate("() => document.activeElement.id") == "spin"
    check(page, "student-new-prompt")
    assert watch.errors == []
    assert watch.outside == []


def test_tab_order_one_stop_text_and_visible_focus(
    desk: tuple[Page, PageWatch], server: Server
) -> None:
    """prompt, Start, wheel, Spin, Undo, Spin 10/100/1000, Greedy vs sampling, the sliders,
    the sampling rules (closed), the text (one stop: the arrows move between its tokens); a
    visible focus on each; tokens never break inside; a plain-text view without chips."""
    page, watch = desk
    start(page, server)
    for _ in range(14):  # a text long enough to wrap: pick the focused wedge again and again
        page.locator('#wheel .wedge[data-kind="token"]').first.click()
        idle(page)
    expect(chips(page)).to_have_count(14)

    page.focus("#prompt")
    stops = []
    for _ in range(13):
        stops.append(
            page.evaluate(
                """() => {
                  const e = document.activeElement;
                  const testid = e.closest('[data-testid]')?.dataset.testid ?? e.id;
                  const ring = e.closest('.wedge')
                    ? document.querySelector('#wheel .focus-outer').getAttribute('d') !== ''
                    : getComputedStyle(e).outlineStyle !== 'none'
                      && parseFloat(getComputedStyle(e).outlineWidth) >= 2;
                  return [testid, ring];
                }"""
            )
        )
        page.keyboard.press("Tab")
    order = [testid for testid, _ in stops]
    assert order == [
        "prompt",
        "start",
        "wheel",
        "spin",
        "undo",
        "spin-10",
        "spin-100",
        "spin-1000",
        "compare-open",
        "temperature",
        "threshold",
        "rules",
        "text",
    ], order
    assert all(ring for _, ring in stops[1:]), stops  # (the prompt shows its caret)

    # the text is one tab stop: the newest token; the arrows move between tokens
    page.keyboard.press("Shift+Tab")
    focused = "() => document.activeElement.dataset.index"
    assert page.evaluate(focused) == "13"
    page.keyboard.press("ArrowLeft")
    assert page.evaluate(focused) == "12"
    page.keyboard.press("Home")
    assert page.evaluate(focused) == "0"
    expect(page.locator("#token-info")).not_to_be_empty()
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "plain"

    # on a phone-wide screen the text wraps between tokens, never inside one
    page.set_viewport_size({"width": 390, "height": 844})
    lines = chips(page).evaluate_all("cs => cs.map(c => c.getClientRects().length)")
    assert set(lines) == {1}, lines
    tops = chips(page).evaluate_all("cs => new Set(cs.map(c => c.offsetTop)).size")
    assert tops > 1, "the text wraps"
    check(page, "student-text-wrapped")
    page.set_viewport_size(LAPTOP)

    # plain text: the text as the server has it, no chips
    page.check("#plain")
    expect(page.locator("#plain-text")).to_be_visible()
    expect(page.locator("#text")).to_be_hidden()
    session = page.locator("body").get_attribute("data-session")
    text = server.request("GET", f"/api/sessions/{session}")["current_text"]
    assert page.locator("#plain-text").text_content() == text
    check(page, "student-plain-text")
    assert watch.errors == []
    assert watch.outside == []


def test_errors_are_explained(desk: tuple[Page, PageWatch], server: Server, lang: str) -> None:
    page, watch = desk
    session = start(page, server)

    message = page.locator("#message")

    # An expired session: the page says so and starts a new one on request.
    server.request("DELETE", f"/api/sessions/{session}")
    page.focus("#temperature")
    page.keyboard.press("ArrowLeft")
    expect(message).to_be_visible()
    expect(message).to_contain_text(say(lang, "error.expired.title"))
    check(page, "student-error-expired")
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
    expect(message).to_contain_text(say(lang, "error.rate.title"))
    expect(message).to_contain_text(say(lang, "error.tryAgainIn", seconds=7))
    expect(page.get_by_test_id("spin")).to_be_disabled()
    check(page, "student-error-rate")

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
    expect(message).to_contain_text(say(lang, "error.unavailable.title"))
    expect(message).to_contain_text("still loading")
    check(page, "student-error-model")

    assert watch.expected_failures_only({404, 429, 503}) == []
    assert watch.outside == []


def test_mouse_space_another_tab_and_failures(
    desk: tuple[Page, PageWatch], server: Server, lang: str
) -> None:
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
    picked = page.evaluate("() => document.activeElement.dataset.tokenId ?? 'other'")
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
    expect(message).to_contain_text(say(lang, "error.conflict.title"))
    expect(chips(page)).to_have_count(3)
    idle(page)
    assert chips(page).nth(2).get_attribute("data-token-id") == str(
        other_tab["appended_token"]["token_id"]
    )
    assert server.request("GET", f"/api/sessions/{session}")["version"] == other_tab["version"]
    check(page, "student-conflict")

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
    expect(message).to_contain_text(say(lang, "error.network.title"))
    expect(message).to_contain_text(say(lang, "error.network.text"))
    check(page, "student-error-network")
    assert watch.expected_failures_only({400, 409}) == [
        e for e in watch.errors if "ERR_CONNECTION_REFUSED" in e
    ]
    assert watch.outside == []


SAID = """async () => {
  const f = await import("/static/format.js");
  const {t} = await import("/static/i18n.js");
  return {
    tiny: f.percent(9.4e-6), small: f.percent(0.00094), zero: f.percent(0),
    near: f.percent(0.99971), share: f.percent(0.0713), count: f.count(49152),
    one: t("summary.head", {count: 1, threshold: "1%", share: "7%"}),
    two: t("summary.head", {count: 2, threshold: "1%", share: "7%"}),
  };
}"""


def test_numbers_and_plurals_are_said_right(
    desk: tuple[Page, PageWatch], server: Server, lang: str
) -> None:
    """Probabilities never in scientific notation; plurals and digits as the language
    writes them."""
    page, watch = desk
    page.goto(server.url + "/")
    expect(page.locator("html")).to_have_attribute("lang", lang)
    said = page.evaluate(SAID)
    assert "e" not in said["tiny"].lower() and "e" not in said["small"].lower(), said
    expected = {
        "en": {
            "tiny": "< 0.001%",
            "small": "0.094%",
            "zero": "0%",
            "near": "> 99.9%",
            "share": "7.13%",
            "count": "49,152",
        },
        "es": {
            "tiny": "< 0,001 %",
            "small": "0,094 %",
            "zero": "0 %",
            "near": "> 99,9 %",
            "share": "7,13 %",
            "count": "49.152",
        },
    }[lang]
    assert {k: said[k].replace("\u00a0", " ") for k in expected} == expected
    assert said["one"] == say(lang, "summary.head", count=1, threshold="1%", share="7%")
    assert said["two"] == say(lang, "summary.head", count=2, threshold="1%", share="7%")
    assert said["one"] != said["two"]
    assert watch.errors == []


def test_the_language_switch_redraws_the_page(
    desk: tuple[Page, PageWatch], server: Server, lang: str
) -> None:
    page, watch = desk
    start(page, server)
    other = "es" if lang == "en" else "en"
    page.select_option("#language", other)
    expect(page.locator("html")).to_have_attribute("lang", other)
    expect(page.get_by_test_id("spin")).to_have_text(say(other, "controls.spin"))
    expect(page.locator("#status")).to_have_text(say(other, "status.ready"))
    check(page, "student-switched-language")
    page.reload()  # remembered
    expect(page.locator("html")).to_have_attribute("lang", other)
    assert watch.errors == []


PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}


def tap_wedge(page: Page, nth: int) -> str:
    """Tap the nth token wedge inside its slice (a wedge's box may hold other wedges);
    its token id."""
    wedge = page.locator('#wheel .wedge[data-kind="token"]').nth(nth)
    page.get_by_test_id("wheel").evaluate("w => w.scrollIntoView({block: 'center'})")
    x, y = wedge.evaluate(
        """g => {
          const mid = 2 * Math.PI * (Number(g.dataset.start) + Number(g.dataset.end)) / 2;
          const p = new DOMPoint(70 * Math.sin(mid), -70 * Math.cos(mid))
            .matrixTransform(g.getScreenCTM());
          return [p.x, p.y];
        }"""
    )
    page.touchscreen.tap(x, y)
    return str(wedge.get_attribute("data-token-id"))


POINTER_AND_STRIP = """() => {
  const pointer = document.querySelector('[data-testid=pointer]').getBoundingClientRect();
  const strip = document.getElementById('text-panel').getBoundingClientRect();
  return {pointerTop: pointer.top, pointerBottom: pointer.bottom, stripTop: strip.top,
          stripBottom: strip.bottom, height: innerHeight};
}"""


@pytest.mark.parametrize("phone_lang", ["en", "es"])
def test_the_phone_pins_the_text_keeps_the_pointer_in_view_and_taps_to_read(
    browser: Browser, server: Server, phone_lang: str
) -> None:
    page, watch = open_page(browser, server, reduced_motion=False, lang=phone_lang, **PHONE)
    try:
        start(page, server)
        width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], "no sideways scrolling on a phone"
        box = page.get_by_test_id("wheel").bounding_box()
        assert box and box["width"] <= 390
        expect(page.locator("#wedge-info")).to_have_text(say(phone_lang, "wedge.hintTouch"))
        check(page, "student-phone")

        # scrolled down to the sliders, the text stays pinned on the screen
        page.get_by_test_id("threshold").scroll_into_view_if_needed()
        at = page.evaluate(POINTER_AND_STRIP)
        assert at["stripTop"] >= 0 and at["stripBottom"] <= at["height"], at

        # while the wheel turns, the pointer is on the screen, below the pinned text
        with page.expect_response(re.compile(r"/spin$")) as spun:
            page.get_by_test_id("spin").tap()
        page.wait_for_function("() => document.getElementById('wheel').dataset.spinning")
        at = page.evaluate(POINTER_AND_STRIP)
        assert at["pointerTop"] >= at["stripBottom"] and at["pointerBottom"] <= at["height"], at
        assert page.evaluate("() => document.getAnimations().length > 0")  # the wheel turns
        check(page, "student-phone-spinning")
        expect(chips(page)).to_have_count(1)
        stopped = float(page.locator("#wheel").get_attribute("data-stopped-rotation") or "nan")
        assert stopped >= 360, "with motion allowed the wheel makes full turns"
        assert_pointer_at(page, spun.value.json()["angle"])
        idle(page)
        check(page, "student-phone-after-spin")

        # a tap reads a wedge (token, probability, rank) and picks nothing ...
        token = tap_wedge(page, 0)
        info = page.locator("#wedge-info")
        expect(info).to_contain_text(say(phone_lang, "wedge.tapAgain"))
        rank = say(phone_lang, "wedge.token", token="", share="", rank=1, id="").split(",")[1]
        expect(info).to_contain_text(rank.strip().split(" ")[0])
        expect(page.locator("#wedge-pick")).to_be_visible()
        page.wait_for_timeout(300)
        expect(chips(page)).to_have_count(1)
        check(page, "student-phone-tap-reads")
        # ... a second tap on it picks it
        assert tap_wedge(page, 0) == token
        expect(chips(page)).to_have_count(2)
        idle(page)
        assert chips(page).nth(1).get_attribute("data-token-id") == token
        # the Pick button is the other second action (the first wedge: after a random spin
        # the wheel may hold a single token wedge)
        tap_wedge(page, 0)
        expect(page.locator("#wedge-pick")).to_be_visible()
        page.locator("#wedge-pick").tap()
        expect(chips(page)).to_have_count(3)
        idle(page)
        check(page, "student-phone-picked")
        assert watch.errors == []
        assert watch.outside == []
    finally:
        page.context.close()


def test_a_student_writes_spanish_on_gemma(browser: Browser, server: Server) -> None:
    """The student flow in Spanish on the bundled Gemma 3 model: the page speaks Spanish,
    formats numbers the Spanish way, and Gemma continues a Spanish prompt."""
    # load Gemma first (assembled on first use, then about 40 s on two cores)
    created = server.request("POST", "/api/sessions", {"model_name": GEMMA}, timeout=900)
    server.request("DELETE", f"/api/sessions/{created['session_id']}")
    page, watch = open_page(browser, server, reduced_motion=True, lang="es", viewport=LAPTOP)
    try:
        page.goto(server.url + "/")
        assert page.evaluate("() => navigator.language") == LOCALES["es"]
        expect(page.locator("html")).to_have_attribute("lang", "es")
        expect(page.locator("#prompt")).to_have_value(say("es", "setup.defaultPrompt"))
        expect(page.locator(f'#model option[value="{GEMMA}"]')).to_be_enabled()
        page.select_option("#model", GEMMA)
        page.fill("#prompt", "El gato se sentó en la")
        page.keyboard.press("Tab")
        page.focus("#prompt")
        page.keyboard.press("Enter")
        expect(page.locator("#wheel .wedge").first).to_be_visible(timeout=120_000)
        idle(page)
        expect(page.get_by_test_id("spin")).to_have_text("Girar")
        expect(page.locator("#temperature-value")).to_have_text("1,0")
        expect(page.locator("#session-info")).to_contain_text("Gemma")
        # Spanish continuations: the most likely tokens are Spanish words
        words = page.locator('#wheel .wedge[data-kind="token"]').evaluate_all(
            "ws => ws.map(w => w.getAttribute('aria-label'))"
        )
        spanish = r"\b(cama|mesa|silla|sala|puerta|cocina|habitación|ventana|casa)\b"
        assert any(re.search(spanish, w) for w in words), words
        check(page, "student-gemma-spanish")
        page.keyboard.press("Enter")  # the focus is on Girar
        expect(chips(page)).to_have_count(1)
        idle(page)
        # Spanish numbers: a decimal comma in every percentage shown
        shares = page.locator("#other-list .other-p").all_inner_texts()
        assert shares and all("%" in s and "." not in s for s in shares), shares
        check(page, "student-gemma-spanish-spun")
        page.get_by_test_id("undo").click()
        expect(chips(page)).to_have_count(0)
        idle(page)
        assert watch.errors == []
        assert watch.outside == []
    finally:
        page.context.close()


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
    expect(page.locator("#message")).to_contain_text("The model has too much to do.")
    assert len(busy) == 1  # a server's own answer: shown, never sent again
    page.unroute(re.compile(r"/spin$"))
    check(page, "student-server-busy")
    assert watch.expected_failures_only({502, 503}) == []
    assert watch.outside == []


# ---------------------------------------------------------------- the lab on the page

FORMAT = """([fn, value]) => import("/static/format.js").then((f) => f[fn](value))"""


def formatted(page: Page, fn: str, value: float) -> str:
    """A number as the page's format.js writes it (percent, count...)."""
    return str(page.evaluate(FORMAT, [fn, value]))


KEPT = """() => [...document.querySelectorAll("#wheel .wedge")].map((w) => ({
  kind: w.dataset.kind, token: w.dataset.tokenId ?? null, kept: w.dataset.kept === "true",
  cut: w.classList.contains("cut"), name: w.getAttribute("aria-label"),
}))"""


def test_sampling_rules_grey_the_cut_wedges_and_spins_land_on_kept_ones(
    desk: tuple[Page, PageWatch], server: Server, lang: str
) -> None:
    """Top-k 2, set by keyboard in the closed-by-default Sampling rules: every wedge but the
    two the API keeps is greyed, the kept ones show their share of spins, a line says how
    many tokens the rules keep; a spin (its request carries the rules) lands on a kept
    token, under the pointer; back to off, nothing is cut."""
    page, watch = desk
    session = start(page, server)
    rules = page.get_by_test_id("rules")
    expect(page.locator("#rules-state")).to_have_text(say(lang, "rules.stateOff"))
    assert rules.get_attribute("open") is None  # the main screen stays one screen
    # keyboard: the summary opens the rules, the arrows move the top-k slider to 2
    page.focus("#rules summary")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("top-k")).to_be_visible()
    expect(page.locator("#top-k-value")).to_have_text(say(lang, "rules.off"))
    page.focus("#top-k")
    with page.expect_response(re.compile(r"next-token-probs\?.*top_k=2&")) as answer:
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowRight")
    probs = answer.value.json()
    idle(page)
    expect(page.locator("#top-k-value")).to_have_text("2")
    expect(page.locator("#top-k-note")).to_have_text(say(lang, "rules.topK.on", count=2))
    expect(page.locator("#wheel")).to_have_attribute("data-rules", "true")
    assert probs["sampling"]["top_k"] == 2 and probs["sampling"]["kept_token_count"] == 2

    # the wedges the API keeps are the two not greyed; every other wedge is greyed
    kept_by_api = {
        str(t["token_id"]): t
        for t in probs["above_threshold_tokens"] + probs["other_category"]["sample_tokens"]
        if t["kept"]
    }
    assert len(kept_by_api) == 2
    drawn = page.evaluate(KEPT)
    assert {w["token"] for w in drawn if w["kept"]} == set(kept_by_api)
    assert all(w["cut"] for w in drawn if not w["kept"])
    assert sum(1 for w in drawn if w["cut"]) == len(drawn) - 2
    # a kept wedge names its probability and its share of spins; a cut one says it is cut
    for w in drawn:
        if w["kept"]:
            share = formatted(page, "percent", kept_by_api[w["token"]]["sampling_probability"])
            assert share in w["name"], w
        else:
            assert say(lang, "wheel.cutName", name="").strip("{} ;:")[:12] in w["name"], w
    kept_share = formatted(page, "percent", probs["sampling"]["kept_probability"])
    expect(page.locator("#rules-kept")).to_have_text(
        say(lang, "rules.kept", count="2", share=kept_share)
    )
    expect(page.locator("#rules-state")).to_have_text(say(lang, "rules.stateOn", count="2"))
    check(page, "student-rules-top-k-2")

    # a spin: sent with the rules, lands on a kept token, under the pointer
    held: list[Route] = []
    page.route(re.compile(r"/next-token-probs"), lambda route: held.append(route))
    page.focus("#spin")
    with page.expect_response(re.compile(r"/spin$")) as spun:
        page.keyboard.press("Enter")
    body = spun.value.json()
    assert spun.value.request.post_data_json["top_k"] == 2
    token = body["appended_token"]
    assert str(token["token_id"]) in kept_by_api
    assert body["token_history"][-1]["top_k"] == 2
    page.wait_for_function("() => document.querySelector('#wheel .wedge.landed') !== null")
    assert_landed_under_the_pointer(page, body)
    expect(page.locator("#landing-text")).to_contain_text(
        formatted(page, "percent", body["token_history"][-1]["sampling_probability"])
    )
    check(page, "student-rules-spun")
    page.unroute(re.compile(r"/next-token-probs"))
    for route in held:
        route.continue_()
    idle(page)
    expect(chips(page)).to_have_count(1)

    # Home: top-k off again; nothing is cut, the line says so
    page.focus("#top-k")
    with page.expect_response(re.compile(r"next-token-probs\?.*top_k=0&")):
        page.keyboard.press("Home")
    idle(page)
    expect(page.locator("#wheel")).to_have_attribute("data-rules", "false")
    assert all(w["kept"] and not w["cut"] for w in page.evaluate(KEPT))
    expect(page.locator("#rules-state")).to_have_text(say(lang, "rules.stateOff"))
    assert server.request("GET", f"/api/sessions/{session}")["version"] == 3
    assert watch.errors == []
    assert watch.outside == []


INTL = "([lang, n, options]) => new Intl.NumberFormat(lang, options).format(n)"


def intl(page: Page, lang: str, n: float, **options: Any) -> str:
    """``n`` written by the browser's Intl for ``lang`` (the page's own formats, checked
    independently of its scripts)."""
    return str(page.evaluate(INTL, [lang, n, options]))


def one_decimal(page: Page, lang: str, x: float) -> str:
    return intl(page, lang, x, minimumFractionDigits=1, maximumFractionDigits=1)


def one_in(page: Page, lang: str, nats: float) -> str:
    """ "1 in N" for a surprise of ``nats``: one decimal below 10, three significant digits
    up to 10^15, then the number of digits."""
    n = math.exp(nats)
    if n < 9.95:
        return say(lang, "surprise.oneIn", n=one_decimal(page, lang, n))
    if n < 1e15:
        return say(lang, "surprise.oneIn", n=intl(page, lang, n, maximumSignificantDigits=3))
    return say(lang, "surprise.oneInDigits", digits=int(nats / math.log(10)) + 1)


def test_surprise_in_plain_words(desk: tuple[Page, PageWatch], server: Server, lang: str) -> None:
    """The wheel says how unsure the model is (its effective_choices); each token of the
    text, focused or pointed at, says how surprising it was (surprisal_bits); the text
    says how likely the model found it (log_probability): all as the API has them."""
    page, watch = desk
    session = start(page, server)
    query = "temperature=1&threshold=0.01&other_top_k=100"
    probs = server.request("GET", f"/api/sessions/{session}/next-token-probs?{query}")
    n = probs["effective_choices"]
    assert math.isclose(n, 2 ** probs["entropy_bits"], rel_tol=1e-9)
    choices = (
        one_decimal(page, lang, n) if n < 9.95 else intl(page, lang, n, maximumSignificantDigits=3)
    )
    bits = one_decimal(page, lang, probs["entropy_bits"])
    expect(page.get_by_test_id("uncertainty")).to_have_text(
        say(lang, "surprise.choices", count=2, choices=choices, bits=bits)
    )
    expect(page.get_by_test_id("text-chance")).to_be_empty()

    for count in (1, 2):
        page.get_by_test_id("spin").click()
        expect(chips(page)).to_have_count(count)
        idle(page)
    state = server.request("GET", f"/api/sessions/{session}")
    history = state["token_history"]
    nats = -state["log_probability"]
    expect(page.get_by_test_id("text-chance")).to_have_text(
        say(
            lang,
            "surprise.text",
            count=2,
            chance=one_in(page, lang, nats),
            bits=one_decimal(page, lang, nats / math.log(2)),
        )
    )
    # a token's surprise: on focus (the keyboard), and on pointing at it
    for i, how in ((0, "focus"), (1, "hover")):
        chip = chips(page).nth(i)
        chip.focus() if how == "focus" else chip.hover()
        token = history[i]
        surprise = say(
            lang,
            "surprise.token",
            chance=one_in(page, lang, token["surprisal_bits"] * math.log(2)),
            bits=one_decimal(page, lang, token["surprisal_bits"]),
        )
        expect(page.locator("#token-info")).to_contain_text(surprise)
        check(page, f"student-surprise-{how}")
    assert watch.errors == []
    assert watch.outside == []


def test_branch_here_forks_at_the_token_and_goes_on_in_the_fork(
    desk: tuple[Page, PageWatch], server: Server, lang: str
) -> None:
    """Four tokens with an undo among them (so versions are not positions); the second
    token chosen by keyboard, "Branch here": the fork keeps the text up to that token
    (token_count 2 of the session now: forked_from names it and its version), the page
    goes on in the fork with two tokens, and the session it came from still has its four.
    A branch of the fork at a token it copied (all of them share its version 1) works
    the same way."""
    page, watch = desk
    old = start(page, server)
    expect(page.get_by_test_id("branch")).to_be_hidden()  # no token yet
    for count in (1, 2, 3):
        page.get_by_test_id("spin").click()
        expect(chips(page)).to_have_count(count)
        idle(page)
    page.get_by_test_id("undo").click()
    expect(chips(page)).to_have_count(2)
    idle(page)
    for count in (3, 4):
        page.get_by_test_id("spin").click()
        expect(chips(page)).to_have_count(count)
        idle(page)
    before = server.request("GET", f"/api/sessions/{old}")
    # created 1, prompt 2, tokens 3 4 5, undo 6, tokens 7 8: the second token came at 4
    assert before["version"] == 8 and len(before["token_history"]) == 4
    ids = [t["token_id"] for t in before["token_history"]]

    # the newest token is selected; the keyboard moves to the second
    branch = page.get_by_test_id("branch")
    expect(branch).to_have_attribute("data-index", "3")
    chips(page).nth(3).focus()
    page.keyboard.press("Home")
    page.keyboard.press("ArrowRight")
    expect(branch).to_have_attribute("data-index", "1")
    second = before["token_history"][1]
    expect(branch).to_contain_text(second["display_text"])
    check(page, "student-branch-chosen")
    page.keyboard.press("Tab")  # the plain-text switch
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "branch"
    with page.expect_response(re.compile(r"/fork$")) as forked:
        page.keyboard.press("Enter")
    fork = forked.value.json()
    assert forked.value.status == 201
    assert forked.value.request.post_data_json == {"version": 8, "token_count": 2}
    assert fork["forked_from"] == {"session_id": old, "version": 8}
    expect(chips(page)).to_have_count(2)
    idle(page)
    new = fork["session_id"]
    expect(page.locator("body")).to_have_attribute("data-session", new)
    expect(page.locator("#session-info")).to_contain_text(new[:8])
    expect(page.locator("#status")).to_have_text(
        say(lang, "branch.done", count="2", id=new[:8], **{"from": old[:8]})
    )
    assert [c.get_attribute("data-token-id") for c in chips(page).all()] == [
        str(i) for i in ids[:2]
    ]
    state = server.request("GET", f"/api/sessions/{new}")
    assert [t["token_id"] for t in state["token_history"]] == ids[:2]
    assert len(server.request("GET", f"/api/sessions/{old}")["token_history"]) == 4
    check(page, "student-branched")

    # the page goes on in the fork; the old session is left as it was
    page.get_by_test_id("spin").click()
    expect(chips(page)).to_have_count(3)
    idle(page)
    assert len(server.request("GET", f"/api/sessions/{new}")["token_history"]) == 3
    assert server.request("GET", f"/api/sessions/{old}")["version"] == 8

    # a branch of the fork at its first token, one it copied from the old session
    chips(page).nth(2).focus()
    page.keyboard.press("Home")
    expect(branch).to_have_attribute("data-index", "0")
    with page.expect_response(re.compile(r"/fork$")) as forked:
        branch.click()
    again = forked.value.json()
    assert forked.value.status == 201
    assert again["forked_from"] == {"session_id": new, "version": 2}
    expect(chips(page)).to_have_count(1)
    idle(page)
    assert [t["token_id"] for t in again["token_history"]] == ids[:1]
    assert watch.errors == []
    assert watch.outside == []


def test_spin_many_counts_the_spins_and_adds_nothing(
    desk: tuple[Page, PageWatch], server: Server, lang: str
) -> None:
    """Spin 100, by keyboard: a dialog shows, for each wedge and Other, its probability,
    the spins that landed on it and their share, exactly as the API counted them for the
    seed it returned (asked again with that seed, the API counts the same); the session's
    version and text are unchanged; Escape closes and gives the focus back."""
    page, watch = desk
    session = start(page, server)
    version = server.request("GET", f"/api/sessions/{session}")["version"]
    expect(page.get_by_test_id("spin-100")).to_have_text(say(lang, "many.button", n="100"))
    page.get_by_test_id("spin-100").focus()
    with page.expect_response(re.compile(r"/sample$")) as sampled:
        page.keyboard.press("Enter")
    body = sampled.value.json()
    sent = sampled.value.request.post_data_json
    assert sent["n"] == 100 and body["seed"] == sent["seed"] and body["n"] == 100
    dialog = page.get_by_test_id("many")
    expect(dialog).to_be_visible()
    expect(dialog).to_have_attribute("data-seed", str(body["seed"]))
    rows = dialog.locator("tbody tr")
    expect(rows).to_have_count(len(body["tokens"]) + 1)
    expected = [(str(t["token_id"]), t["count"]) for t in body["tokens"]]
    expected.append(("other", body["other"]["count"]))
    shown = rows.evaluate_all("rs => rs.map(r => [r.dataset.tokenId, Number(r.dataset.count)])")
    assert [tuple(r) for r in shown] == expected
    assert sum(c for _, c in expected) == 100
    # the numbers are the table's text: the count, and its share of the spins (after the
    # "with the rules" cell, hidden with every rule off)
    expect(page.locator("#many-kept")).to_be_hidden()
    for i, (_, hits) in enumerate(expected):
        cells = rows.nth(i).locator("td")
        expect(cells.nth(1)).to_be_hidden()
        expect(cells.nth(2)).to_have_text(intl(page, lang, hits))
        share = formatted(page, "percent", hits / 100)
        expect(cells.nth(3)).to_have_text(share)
    # the same seed and settings: the same counts
    again = server.request(
        "POST",
        f"/api/sessions/{session}/sample",
        {"n": 100, "seed": body["seed"], "temperature": 1, "threshold": 0.01},
    )
    assert [t["count"] for t in again["tokens"]] == [t["count"] for t in body["tokens"]]
    assert again["other"]["count"] == body["other"]["count"]
    # nothing was appended
    assert server.request("GET", f"/api/sessions/{session}")["version"] == version
    expect(chips(page)).to_have_count(0)
    check(page, "student-spin-many-100")

    # again: a new seed, still 100 spins
    with page.expect_response(re.compile(r"/sample$")) as resampled:
        page.locator("#many-again").click()
    assert resampled.value.json()["seed"] != body["seed"]
    expect(dialog).to_have_attribute("data-seed", str(resampled.value.json()["seed"]))
    idle(page)
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert page.evaluate("() => document.activeElement.dataset.testid") == "spin-100"
    assert server.request("GET", f"/api/sessions/{session}")["version"] == version

    # on a phone-wide screen: Spin 1000, the table fits without sideways scrolling
    page.set_viewport_size({"width": 390, "height": 844})
    with page.expect_response(re.compile(r"/sample$")) as many:
        page.get_by_test_id("spin-1000").click()
    assert many.value.json()["n"] == 1000
    expect(dialog).to_have_attribute("data-n", "1000")
    fits = page.evaluate(
        """() => {
          const frame = document.querySelector("#many .table-frame");
          return [document.documentElement.scrollWidth <= innerWidth,
                  frame.scrollWidth <= frame.clientWidth];
        }"""
    )
    assert fits == [True, True]
    check(page, "student-spin-many-1000-phone")
    page.keyboard.press("Escape")
    assert watch.errors == []
    assert watch.outside == []


def test_spin_many_follows_the_sampling_rules(
    desk: tuple[Page, PageWatch], server: Server, lang: str
) -> None:
    """With top-k 2, Spin 100 sends the rules: the counts are the API's for the seed it
    returned and the same rules, every cut wedge (and Other) has 0 spins and a grey row that
    says it is cut, each kept one shows the share the rules give it; nothing is appended;
    on a phone the wider table still fits."""
    page, watch = desk
    session = start(page, server)
    version = server.request("GET", f"/api/sessions/{session}")["version"]
    page.locator("#rules summary").click()
    page.focus("#top-k")
    with page.expect_response(re.compile(r"next-token-probs\?.*top_k=2&")):
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowRight")
    idle(page)
    page.get_by_test_id("spin-100").focus()
    with page.expect_response(re.compile(r"/sample$")) as sampled:
        page.keyboard.press("Enter")
    body = sampled.value.json()
    sent = sampled.value.request.post_data_json
    assert (sent["top_k"], sent["top_p"], sent["min_p"]) == (2, 1, 0)
    assert body["sampling"]["top_k"] == 2 and body["seed"] == sent["seed"]
    dialog = page.get_by_test_id("many")
    expect(dialog).to_be_visible()
    expect(dialog).to_have_attribute("data-rules", "true")
    expect(page.locator("#many-note")).to_have_text(say(lang, "many.rules"))
    expect(page.locator("#many-legend")).to_have_text(say(lang, "many.legendRules"))
    expect(page.locator("#many-kept")).to_have_text(say(lang, "many.kept"))

    # the API, asked again with the returned seed and the same rules, counts the same
    again = server.request(
        "POST",
        f"/api/sessions/{session}/sample",
        {"n": 100, "seed": body["seed"], "temperature": 1, "threshold": 0.01, "top_k": 2},
    )
    expected = [(str(t["token_id"]), t["count"], t["kept"]) for t in again["tokens"]]
    other = again["other"]
    expected.append(("other", other["count"], other["kept_token_count"] > 0))
    rows = dialog.locator("tbody tr")
    expect(rows).to_have_count(len(expected))
    shown = rows.evaluate_all(
        """rs => rs.map(r => [r.dataset.tokenId, Number(r.dataset.count),
                              r.dataset.kept === "true", r.classList.contains("cut")])"""
    )
    assert [tuple(r[:3]) for r in shown] == expected
    assert sum(1 for _, _, kept in expected if kept) == 2
    assert sum(c for _, c, _ in expected) == 100
    for i, ((_, hits, kept), row) in enumerate(zip(expected, shown, strict=True)):
        cells = rows.nth(i).locator("td")
        expect(cells.nth(2)).to_have_text(intl(page, lang, hits))
        assert row[3] is (not kept)  # a cut wedge's row is greyed...
        if kept:
            token = again["tokens"][i]
            share = formatted(page, "percent", token["sampling_probability"])
            expect(cells.nth(1)).to_have_text(share)
        else:
            assert hits == 0  # ...no spin lands on it...
            expect(cells.nth(1)).to_have_text(say(lang, "many.cut"))  # ...and it says so
    assert server.request("GET", f"/api/sessions/{session}")["version"] == version
    expect(chips(page)).to_have_count(0)
    check(page, "student-spin-many-rules")

    # on a phone-wide screen the table with its extra column fits
    page.set_viewport_size({"width": 390, "height": 844})
    with page.expect_response(re.compile(r"/sample$")) as resampled:
        page.locator("#many-again").click()
    assert resampled.value.request.post_data_json["top_k"] == 2
    expect(dialog).to_have_attribute("data-seed", str(resampled.value.json()["seed"]))
    idle(page)
    fits = page.evaluate(
        """() => {
          const frame = document.querySelector("#many .table-frame");
          return [document.documentElement.scrollWidth <= innerWidth,
                  frame.scrollWidth <= frame.clientWidth];
        }"""
    )
    assert fits == [True, True]
    check(page, "student-spin-many-rules-phone")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert watch.errors == []
    assert watch.outside == []


# The tokens a path of the Greedy vs sampling dialog shows: id, chip text, probability text
PATH = """(id) => [...document.querySelectorAll(`#${id}-tokens .path-token`)].map((li) => ({
  id: li.dataset.tokenId, text: li.querySelector(".path-chip").textContent,
  p: li.querySelector(".path-p").textContent,
}))"""

NO_SIDEWAYS_SCROLL = """() => {
  const dialog = document.getElementById("compare");
  return [document.documentElement.scrollWidth <= innerWidth,
          dialog.scrollWidth <= dialog.clientWidth];
}"""


def chance_words(page: Page, lang: str, log_probability: float) -> dict[str, str]:
    nats = -log_probability
    return {
        "chance": one_in(page, lang, nats),
        "bits": one_decimal(page, lang, max(nats, 0) / math.log(2)),
    }


def assert_path_shown(page: Page, lang: str, name: str, path: dict[str, Any]) -> None:
    """The dialog's path ``name`` shows exactly the API's tokens, each with its
    display_text and its probability in words, and the path's chance."""
    shown = page.evaluate(PATH, name)
    assert [s["id"] for s in shown] == [str(t["token_id"]) for t in path["tokens"]]
    for s, token in zip(shown, path["tokens"], strict=True):
        assert s["text"] == (token["display_text"] or "∅")
        assert s["p"] == formatted(page, "percent", token["probability"])
    said = say(
        lang,
        "compare.chance",
        count=len(path["tokens"]),
        **chance_words(page, lang, path["log_probability"]),
    )
    expect(page.locator(f"#{name}-chance")).to_have_text(said)


def test_greedy_vs_sampling_continues_the_text_both_ways_and_adds_nothing(
    desk: tuple[Page, PageWatch], server: Server, lang: str
) -> None:
    """After a spin and with top-k 3: Greedy vs sampling, by keyboard, asks compare with the
    page's temperature and rules and a seed below 2**53; the dialog shows the greedy path
    and the sampled one side by side exactly as the API answers the same body (asked again
    with the returned seed), each path's chance and the student's own text's in words;
    5 tokens by keyboard keeps the seed (the sampled path's start); Sample again draws a
    new path and greedy stays; nothing joins the text; Escape gives the focus back; on a
    phone the paths stack with no sideways scroll."""
    page, watch = desk
    session = start(page, server)
    page.get_by_test_id("spin").click()
    expect(chips(page)).to_have_count(1)
    idle(page)
    page.locator("#rules summary").click()
    page.focus("#top-k")
    with page.expect_response(re.compile(r"next-token-probs\?.*top_k=3&")):
        for _ in range(3):
            page.keyboard.press("ArrowRight")
    idle(page)
    before = server.request("GET", f"/api/sessions/{session}")
    expect(page.get_by_test_id("compare-open")).to_have_text(say(lang, "compare.button"))

    page.get_by_test_id("compare-open").focus()
    with page.expect_response(re.compile(r"/compare$")) as compared:
        page.keyboard.press("Enter")
    body = compared.value.json()
    sent = compared.value.request.post_data_json
    assert sent["steps"] == 10 and sent["temperature"] == 1
    assert (sent["top_k"], sent["top_p"], sent["min_p"]) == (3, 1, 0)
    assert 0 <= sent["seed"] < 2**53 and body["seed"] == sent["seed"]
    dialog = page.get_by_test_id("compare")
    expect(dialog).to_be_visible()
    expect(dialog).to_have_attribute("data-seed", str(body["seed"]))
    expect(page.locator("#compare-explain")).to_have_text(say(lang, "compare.explain"))
    expect(page.locator("#compare-rules")).to_have_text(say(lang, "compare.rules"))
    expect(page.locator('input[name="compare-steps"][value="10"]')).to_be_checked()

    # the API, asked the same body with the returned seed, answers the same two paths
    again = server.request("POST", f"/api/sessions/{session}/compare", sent)
    assert again["greedy"]["tokens"] == body["greedy"]["tokens"]
    assert again["sampled"]["tokens"] == body["sampled"]["tokens"]
    assert_path_shown(page, lang, "greedy", again["greedy"])
    assert_path_shown(page, lang, "sampled", again["sampled"])
    expect(page.locator("#sampled-title")).to_have_text(
        say(lang, "compare.sampled", seed=str(body["seed"]))
    )
    # the side-by-side layout on a laptop: the two paths share a row
    boxes = [page.get_by_test_id(name).bounding_box() for name in ("greedy", "sampled")]
    assert boxes[0] and boxes[1] and boxes[0]["y"] == boxes[1]["y"]
    # the student's own text, and how likely it was (as recorded)
    current = body["current"]
    assert current["text"] == before["current_text"][len(before["initial_prompt"]) :]
    expect(page.get_by_test_id("compare-current")).to_have_text(
        say(
            lang,
            "compare.current",
            count=1,
            text=say(lang, "token.quoted", text=current["text"]),
            **chance_words(page, lang, current["log_probability"]),
        )
    )
    check(page, "student-compare")

    # 5 tokens, by keyboard: the same seed, so the sampled path is the first 5 of the 10
    page.focus('input[name="compare-steps"][value="10"]')
    with page.expect_response(re.compile(r"/compare$")) as shorter:
        page.keyboard.press("ArrowLeft")
    five = shorter.value.json()
    assert shorter.value.request.post_data_json["steps"] == 5 and five["seed"] == body["seed"]
    idle(page)
    expect(dialog).to_have_attribute("data-steps", "5")
    assert five["greedy"]["tokens"] == body["greedy"]["tokens"][:5]
    assert five["sampled"]["tokens"] == body["sampled"]["tokens"][:5]
    assert_path_shown(page, lang, "sampled", five["sampled"])
    check(page, "student-compare-5")

    # Sample again: a new seed, a new sampled path as the API draws it; greedy stays
    with page.expect_response(re.compile(r"/compare$")) as resampled:
        page.locator("#compare-again").click()
    other = resampled.value.json()
    assert other["seed"] != body["seed"]
    idle(page)
    expect(dialog).to_have_attribute("data-seed", str(other["seed"]))
    replay = server.request(
        "POST",
        f"/api/sessions/{session}/compare",
        {**resampled.value.request.post_data_json, "seed": other["seed"]},
    )
    assert replay["sampled"]["tokens"] == other["sampled"]["tokens"]
    assert other["greedy"]["tokens"] == five["greedy"]["tokens"]
    assert_path_shown(page, lang, "greedy", replay["greedy"])
    assert_path_shown(page, lang, "sampled", replay["sampled"])
    check(page, "student-compare-again")

    # nothing joined the text; Escape closes and gives the focus back
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert page.evaluate("() => document.activeElement.dataset.testid") == "compare-open"
    after = server.request("GET", f"/api/sessions/{session}")
    assert after["version"] == before["version"]
    assert after["token_history"] == before["token_history"]
    expect(chips(page)).to_have_count(1)

    # a phone: the paths stack, nothing scrolls sideways
    page.set_viewport_size({"width": 390, "height": 844})
    with page.expect_response(re.compile(r"/compare$")):
        page.get_by_test_id("compare-open").click()
    expect(dialog).to_be_visible()
    idle(page)
    boxes = [page.get_by_test_id(name).bounding_box() for name in ("greedy", "sampled")]
    assert boxes[0] and boxes[1] and boxes[1]["y"] >= boxes[0]["y"] + boxes[0]["height"]
    assert page.evaluate(NO_SIDEWAYS_SCROLL) == [True, True]
    check(page, "student-compare-phone")
    page.keyboard.press("Escape")
    assert server.request("GET", f"/api/sessions/{session}")["version"] == before["version"]
    assert watch.errors == []
    assert watch.outside == []
