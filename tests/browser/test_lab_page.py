"""The lab page (/lab) in headless Chromium against a real server, in English and in
Spanish: two wheels side by side, each its own session (its own prompt, temperature and
model), picked by keyboard, mouse and touch; every state screenshotted and checked by
axe-core, no console errors, nothing fetched from outside."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import LAPTOP, PageWatch, Server, check, open_page, say

pytestmark = [pytest.mark.browser, pytest.mark.model]

PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}


def idle(page: Page, side: str) -> None:
    expect(page.locator(f"#{side}-side")).to_have_attribute("data-busy", "false")


def chosen(page: Page, side: str) -> Any:
    return page.locator(f"#{side}-chosen li")


def start_both(page: Page, server: Server) -> dict[str, str]:
    """Press Start both and wait for the two wheels; the two sessions' ids by side."""
    expect(page.locator("#a-model")).to_have_value("smollm2-135m")
    expect(page.locator("#b-model")).to_have_value("smollm2-135m")
    page.get_by_test_id("start-both").click()
    sessions = {}
    for side in ("a", "b"):
        expect(page.locator(f"#{side}-wheel .wedge").first).to_be_visible()
        idle(page, side)
        sessions[side] = str(page.locator(f"#{side}-play").get_attribute("data-session"))
    return sessions


def in_viewport(page: Page, selector: str) -> bool:
    box = page.locator(selector).bounding_box()
    size = page.viewport_size or LAPTOP
    return bool(
        box
        and box["x"] >= 0
        and box["y"] >= 0
        and box["x"] + box["width"] <= size["width"]
        and box["y"] + box["height"] <= size["height"]
    )


# What each side shows of its chosen tokens, with the words and colours the page's own
# format.js gives the probabilities the API recorded (the same module the page uses, so
# in the page's language).
SHOWN = """async ([side, recorded]) => {
  const f = await import("/static/format.js");
  const colour = (p) => {
    const probe = document.createElement("span");
    probe.style.backgroundColor = f.probabilityColour(p);
    return probe.style.backgroundColor;
  };
  const items = [...document.querySelectorAll(`#${side}-chosen li`)];
  return {
    shown: items.map((li) => ({
      token: li.dataset.tokenId,
      probability: Number(li.dataset.probability),
      share: li.querySelector(".lab-share").textContent,
      colour: li.querySelector(".lab-chip").style.backgroundColor,
      chip: document.querySelector(`#${side}-text .tok[data-index="${items.indexOf(li)}"]`)
        ?.style.backgroundColor,
    })),
    expected: recorded.map((p) => ({share: f.percent(p), colour: colour(p)})),
  };
}"""


def assert_shows_the_recorded_probabilities(
    page: Page, server: Server, side: str, session: str
) -> None:
    history = server.request("GET", f"/api/sessions/{session}")["token_history"]
    result = page.evaluate(SHOWN, [side, [t["probability"] for t in history]])
    shown, expected = result["shown"], result["expected"]
    assert len(shown) == len(history) == len(expected)
    for item, token, want in zip(shown, history, expected, strict=True):
        assert item["token"] == str(token["token_id"])
        assert math.isclose(item["probability"], token["probability"], rel_tol=1e-12)
        assert item["share"] == want["share"]
        assert item["colour"] == want["colour"] == item["chip"]


def test_two_wheels_side_by_side_each_its_own_session(
    desk: tuple[Page, PageWatch], server: Server, lang: str
) -> None:
    page, watch = desk
    page.goto(server.url + "/lab")
    expect(page.locator("html")).to_have_attribute("lang", lang)
    prompts = {side: say(lang, f"lab.compare.prompt{side.upper()}") for side in ("a", "b")}
    for side, prompt in prompts.items():
        expect(page.get_by_test_id(f"prompt-{side}")).to_have_value(prompt)
    expect(page.locator("#to-compare")).to_have_attribute("aria-current", "true")
    check(page, "lab-compare-start")

    sessions = start_both(page, server)
    assert sessions["a"] != sessions["b"]
    for side in ("a", "b"):
        state = server.request("GET", f"/api/sessions/{sessions[side]}")
        assert state["initial_prompt"] == prompts[side] and state["token_history"] == []
        expect(page.locator(f"#{side}-text .prompt")).to_have_text(prompts[side])
    # both wheels on one laptop screen, side by side
    assert page.evaluate("() => window.scrollY") == 0
    for side in ("a", "b"):
        assert in_viewport(page, f"#{side}-wheel"), f"wheel {side} is not on the screen"
        assert in_viewport(page, f"#{side}-spin"), f"Spin {side} is not on the screen"
    a, b = (page.locator(f"#{side}-wheel").bounding_box() for side in ("a", "b"))
    assert a and b and a["x"] + a["width"] <= b["x"] and abs(a["y"] - b["y"]) < 2
    check(page, "lab-compare-started")

    # Keyboard: from A's Start, Tab reaches A's wheel; an arrow and Enter pick a wedge.
    version_b = server.request("GET", f"/api/sessions/{sessions['b']}")["version"]
    page.focus("#a-start")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.closest('svg')?.id") == "a-wheel"
    page.keyboard.press("ArrowRight")
    wedge = page.evaluate("() => document.activeElement.dataset.tokenId ?? null")
    expect(page.locator("#a-wedge-info")).not_to_be_empty()
    check(page, "lab-compare-keyboard")
    with page.expect_response(re.compile(r"/append-token$")):
        page.keyboard.press("Enter")
    expect(chosen(page, "a")).to_have_count(1)
    idle(page, "a")
    if wedge is not None:
        assert chosen(page, "a").first.get_attribute("data-token-id") == wedge
    # only A's session changed
    expect(chosen(page, "b")).to_have_count(0)
    assert len(server.request("GET", f"/api/sessions/{sessions['a']}")["token_history"]) == 1
    b_now = server.request("GET", f"/api/sessions/{sessions['b']}")
    assert b_now["version"] == version_b and b_now["token_history"] == []

    # B spins (its own session), then picks its most likely wedge with the mouse
    with page.expect_response(re.compile(r"/spin$")) as spun:
        page.get_by_test_id("spin-b").click()
    assert sessions["b"] in spun.value.url
    expect(chosen(page, "b")).to_have_count(1)
    idle(page, "b")
    page.locator('#b-wheel .wedge[data-kind="token"]').first.click()
    expect(chosen(page, "b")).to_have_count(2)
    idle(page, "b")
    expect(chosen(page, "a")).to_have_count(1)
    for side in ("a", "b"):
        assert_shows_the_recorded_probabilities(page, server, side, sessions[side])
    # a chip of the text says its probability when focused
    page.locator("#b-text .tok").first.focus()
    expect(page.locator("#b-token-info")).not_to_be_empty()
    check(page, "lab-compare-chosen")

    # Undo in A leaves B alone
    page.get_by_test_id("undo-a").click()
    expect(chosen(page, "a")).to_have_count(0)
    idle(page, "a")
    assert server.request("GET", f"/api/sessions/{sessions['a']}")["token_history"] == []
    assert len(server.request("GET", f"/api/sessions/{sessions['b']}")["token_history"]) == 2
    check(page, "lab-compare-undone")
    assert watch.errors == []
    assert watch.outside == []


def test_two_temperatures_give_two_wheels(
    desk: tuple[Page, PageWatch], server: Server, lang: str
) -> None:
    """The same prompt at temperature 1 and 2: two different wheels, each the API's
    distribution at its own temperature."""
    page, watch = desk
    page.goto(server.url + "/lab")
    prompt = "The cat sat on the"
    for side in ("a", "b"):
        page.get_by_test_id(f"prompt-{side}").fill(prompt)
    sessions = start_both(page, server)
    page.focus("[data-testid=temperature-b]")
    for _ in range(10):
        page.keyboard.press("ArrowRight")
    expect(page.locator("#b-temperature-value")).to_have_text("2,0" if lang == "es" else "2.0")
    expect(page.locator("#a-wheel")).to_have_attribute("data-temperature", "1")
    expect(page.locator("#b-wheel")).to_have_attribute("data-temperature", "2")
    idle(page, "b")
    drawn = {}
    for side, temperature in (("a", 1), ("b", 2)):
        probs = server.request(
            "GET",
            f"/api/sessions/{sessions[side]}/next-token-probs?temperature={temperature}"
            "&threshold=0.01&other_top_k=100",
        )
        # every wedge of one token: above the threshold, then Other's own (at least 0.1%)
        listed = probs["above_threshold_tokens"] + [
            t for t in probs["other_category"]["sample_tokens"] if t["probability"] >= 0.001
        ]
        wedges = page.locator(f'#{side}-wheel .wedge:not([data-kind="rest"])')
        sizes = wedges.evaluate_all(
            "ws => ws.map(w => [w.dataset.tokenId, w.dataset.end - w.dataset.start])"
        )
        assert len(sizes) >= 1 and len(sizes) <= len(listed)
        for (token, size), want in zip(sizes, listed, strict=False):
            assert token == str(want["token_id"])
            # asked again: a batched forward pass may differ in float32's last digits
            assert math.isclose(size, want["probability"], rel_tol=1e-4, abs_tol=1e-7)
        drawn[side] = {"sizes": sizes, "heads": len(probs["above_threshold_tokens"])}
    assert drawn["a"]["sizes"][0][1] > drawn["b"]["sizes"][0][1], "2 flattens the favourite"
    assert drawn["a"]["heads"] > drawn["b"]["heads"]
    for side in ("a", "b"):
        expect(page.locator(f'#{side}-wheel .wedge[data-kind="token"]')).to_have_count(
            drawn[side]["heads"]
        )
    notes = [page.locator(f"#{side}-temperature-note").inner_text() for side in ("a", "b")]
    assert notes[0] != notes[1]
    check(page, "lab-compare-temperatures")
    assert watch.errors == []
    assert watch.outside == []


def tap_wedge(page: Page, side: str, nth: int) -> str:
    """Tap the nth token wedge of a side's wheel inside its slice; its token id."""
    wedge = page.locator(f'#{side}-wheel .wedge[data-kind="token"]').nth(nth)
    page.locator(f"#{side}-wheel").evaluate("w => w.scrollIntoView({block: 'center'})")
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


@pytest.mark.parametrize("phone_lang", ["en", "es"])
def test_the_phone_stacks_the_wheels_and_taps_to_read(
    browser: Browser, server: Server, phone_lang: str
) -> None:
    page, watch = open_page(browser, server, reduced_motion=True, lang=phone_lang, **PHONE)
    try:
        page.goto(server.url + "/lab")
        check(page, "lab-phone-start")
        start_both(page, server)
        width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], "no sideways scrolling on a phone"
        a, b = (page.locator(f"#{side}-wheel").bounding_box() for side in ("a", "b"))
        assert a and b and b["y"] >= a["y"] + a["height"], "stacked, A above B"
        assert a["width"] <= 390 and b["width"] <= 390
        check(page, "lab-phone")
        # a tap reads a wedge of B and picks nothing; a second tap picks it
        token = tap_wedge(page, "b", 0)
        expect(page.locator("#b-wedge-info")).to_contain_text(say(phone_lang, "wedge.tapAgain"))
        expect(page.locator("#b-pick")).to_be_visible()
        page.wait_for_timeout(300)
        expect(chosen(page, "b")).to_have_count(0)
        check(page, "lab-phone-tap-reads")
        assert tap_wedge(page, "b", 0) == token
        expect(chosen(page, "b")).to_have_count(1)
        idle(page, "b")
        assert chosen(page, "b").first.get_attribute("data-token-id") == token
        expect(chosen(page, "a")).to_have_count(0)
        width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1]
        check(page, "lab-phone-picked")
        assert watch.errors == []
        assert watch.outside == []
    finally:
        page.context.close()


def test_the_student_page_links_to_the_lab(
    desk: tuple[Page, PageWatch], server: Server, lang: str
) -> None:
    page, watch = desk
    page.goto(server.url + "/")
    link = page.locator('footer a[href="/lab"]')
    expect(link).to_have_text(say(lang, "lab.link"))
    link.click()
    expect(page).to_have_url(server.url + "/lab")
    expect(page.locator("h1")).to_have_text(say(lang, "lab.heading"))
    page.select_option("#language", "es" if lang == "en" else "en")
    other = "es" if lang == "en" else "en"
    expect(page.get_by_test_id("start-both")).to_have_text(say(other, "lab.compare.startBoth"))
    expect(page.get_by_test_id("prompt-a")).to_have_value(say(other, "lab.compare.promptA"))
    check(page, "lab-switched-language")
    assert watch.errors == []


# ---------------------------------------------------------------- a text, scored

TEXT = "The cat sat on the mat. It was happy there."

# What the page shows of each scored token, and what the page's own format.js makes of
# the API's answer (so in the page's language).
SCORED = """async (answer) => {
  const f = await import("/static/format.js");
  const colour = (p) => {
    const probe = document.createElement("span");
    probe.style.backgroundColor = f.probabilityColour(p);
    return probe.style.backgroundColor;
  };
  return {
    shown: [...document.querySelectorAll("#score-tokens .tok")].map((chip) => ({
      token: Number(chip.dataset.tokenId),
      colour: chip.style.backgroundColor,
      unpredicted: chip.classList.contains("unpredicted"),
      title: chip.title,
      text: chip.textContent,
    })),
    expected: answer.tokens.map((t) => ({
      colour: t.probability === null ? "" : colour(t.probability),
      share: t.probability === null ? null : f.percent(t.probability),
    })),
  };
}"""

# The details shown for a token, and the API's figures as the page's format.js writes them.
DETAIL = """async (token) => {
  const f = await import("/static/format.js");
  return {
    index: document.getElementById("score-detail").dataset.index,
    detail: document.getElementById("score-detail").textContent,
    alternatives: [...document.querySelectorAll("#score-alternatives li")].map((li) => ({
      token: Number(li.dataset.tokenId),
      share: li.querySelector(".lab-share").textContent,
      text: li.querySelector(".lab-chip").textContent,
    })),
    expected: {
      share: token.probability === null ? null : f.percent(token.probability),
      alternatives: token.alternatives.map((a) => f.percent(a.probability)),
    },
  };
}"""


def assert_detail_shows(page: Page, token: dict[str, Any], index: int) -> None:
    expect(page.locator("#score-detail")).to_have_attribute("data-index", str(index))
    shown = page.evaluate(DETAIL, token)
    assert token["display_text"] in shown["detail"]
    if token["probability"] is not None:
        assert shown["expected"]["share"] in shown["detail"]
    assert [a["token"] for a in shown["alternatives"]] == [
        a["token_id"] for a in token["alternatives"]
    ]
    assert [a["share"] for a in shown["alternatives"]] == shown["expected"]["alternatives"]
    assert [a["text"] for a in shown["alternatives"]] == [
        a["display_text"] for a in token["alternatives"]
    ]


def score(page: Page, text: str = TEXT) -> dict[str, Any]:
    page.get_by_test_id("score-text").fill(text)
    with page.expect_response(re.compile(r"/api/score$")) as scored:
        page.get_by_test_id("score-button").click()
    assert scored.value.status == 200, scored.value.text()
    answer: dict[str, Any] = scored.value.json()
    expect(page.locator("#score-tokens .tok")).to_have_count(answer["token_count"])
    expect(page.locator("#score")).to_have_attribute("data-busy", "false")
    return answer


def test_score_a_text(desk: tuple[Page, PageWatch], server: Server, lang: str) -> None:
    page, watch = desk
    page.goto(server.url + "/lab")
    page.locator("#to-score").click()  # the view is in the address: #score
    expect(page.locator("#score")).to_be_visible()
    expect(page.locator("#compare")).to_be_hidden()
    expect(page.locator("#to-score")).to_have_attribute("aria-current", "true")
    expect(page.get_by_test_id("score-text")).to_have_value(say(lang, "lab.score.defaultText"))
    expect(page.locator("#score-model")).to_have_value("smollm2-135m")
    check(page, "lab-score-start")

    # a blank text is refused here, with a clear message, and nothing is sent
    sent: list[str] = []
    page.on("request", lambda r: "/api/score" in r.url and sent.append(r.url))
    page.get_by_test_id("score-text").fill("  \n  ")
    page.get_by_test_id("score-button").click()
    expect(page.locator("#score-message")).to_be_visible()
    expect(page.locator("#score-message-title")).to_have_text(say(lang, "lab.score.blank.title"))
    expect(page.locator("#score-message-text")).to_have_text(say(lang, "lab.score.blank.text"))
    assert sent == []
    assert page.evaluate("() => document.activeElement.id") == "score-text"
    check(page, "lab-score-blank")
    # a text that only looks blank (a zero-width space) is the server's to refuse: its
    # 400 and its message are shown
    page.get_by_test_id("score-text").fill("\u200b")
    with page.expect_response(re.compile(r"/api/score$")) as refused:
        page.get_by_test_id("score-button").click()
    assert refused.value.status == 400
    message = refused.value.json()["message"]
    expect(page.locator("#score-message-title")).to_have_text(
        say(lang, "error.request.title", status=400)
    )
    expect(page.locator("#score-message-text")).to_have_text(message)
    expect(page.locator("#score-result")).to_be_hidden()
    check(page, "lab-score-refused")

    answer = score(page)
    expect(page.locator("#score-message")).to_be_hidden()
    assert answer["text"] == TEXT and answer["model_name"] == "smollm2-135m"
    assert answer["tokens"][0]["probability"] is None  # SmolLM2 adds no BOS
    # each token as the API scored it: its colour and, in its tooltip, its probability
    result = page.evaluate(SCORED, answer)
    assert len(result["shown"]) == len(answer["tokens"]) == answer["token_count"]
    for shown, token, want in zip(
        result["shown"], answer["tokens"], result["expected"], strict=True
    ):
        assert shown["token"] == token["token_id"]
        assert shown["text"] == token["display_text"]
        if token["probability"] is None:
            assert shown["unpredicted"] and shown["colour"] == ""
        else:
            assert shown["colour"] == want["colour"] and want["share"] in shown["title"]
    # the summary: the text's perplexity, as the page writes numbers
    perplexity = answer["perplexity"]
    written = page.evaluate(
        """p => new Intl.NumberFormat(document.documentElement.lang,
             p >= 100 ? {maximumFractionDigits: 0}
                      : {minimumFractionDigits: 1, maximumFractionDigits: 1}).format(p)""",
        perplexity,
    )
    expect(page.locator("#score-perplexity")).to_contain_text(written)
    expect(page.get_by_test_id("score-summary")).to_contain_text(
        say(lang, "lab.score.split", count=answer["token_count"], model="X").split("X")[1][:12]
    )
    check(page, "lab-score-scored")

    # Keyboard: one tab stop after Score; the arrows move between tokens, each shows its
    # probability, rank and the model's five most likely tokens there.
    page.get_by_test_id("score-button").focus()
    page.keyboard.press("Tab")
    focused = "() => document.activeElement.dataset.index ?? null"
    assert page.evaluate(focused) == "0"
    assert_detail_shows(page, answer["tokens"][0], 0)
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert page.evaluate(focused) == "2"
    token = answer["tokens"][2]
    assert len(token["alternatives"]) == 5
    assert_detail_shows(page, token, 2)
    check(page, "lab-score-focused")
    page.keyboard.press("End")
    last = len(answer["tokens"]) - 1
    assert page.evaluate(focused) == str(last)
    assert_detail_shows(page, answer["tokens"][last], last)
    page.keyboard.press("Tab")  # one tab stop: the next is past the tokens
    assert page.evaluate("() => document.activeElement.closest('#score-tokens')") is None

    # the mouse: pointing at a token shows its details
    page.locator("#score-tokens .tok").nth(3).hover()
    assert_detail_shows(page, answer["tokens"][3], 3)
    check(page, "lab-score-hovered")

    # the other language redraws the answer's words
    other = "es" if lang == "en" else "en"
    page.select_option("#language", other)
    expect(page.locator("#score-tokens-hint")).to_have_text(say(other, "lab.score.tokensHint"))
    check(page, "lab-score-switched-language")
    assert watch.expected_failures_only({400}) == []  # the refused text
    assert watch.outside == []


@pytest.mark.parametrize("phone_lang", ["en", "es"])
def test_score_on_a_phone_taps_a_token(browser: Browser, server: Server, phone_lang: str) -> None:
    page, watch = open_page(browser, server, reduced_motion=True, lang=phone_lang, **PHONE)
    try:
        page.goto(server.url + "/lab#score")
        expect(page.locator("#score")).to_be_visible()
        answer = score(page)
        width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], "no sideways scrolling on a phone"
        check(page, "lab-score-phone-scored")
        chip = page.locator("#score-tokens .tok").nth(1)
        chip.scroll_into_view_if_needed()
        chip.tap()
        assert_detail_shows(page, answer["tokens"][1], 1)
        check(page, "lab-score-phone")
        assert watch.errors == []
        assert watch.outside == []
    finally:
        page.context.close()
