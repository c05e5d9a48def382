"""Guess-first rounds on the student page, in English and in Spanish: a teacher opens a
class and starts a round through the API; three students (three browser contexts) join
with nicknames, one after a nickname already taken; each guesses before seeing the
wheel; the teacher reveals; every page draws the revealed wheel with the class's guess
counts as the API answered them; then a student goes on spinning in their own session.
Every state screenshotted and checked by axe-core."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import (
    LAPTOP,
    TEACHER_TOKEN,
    PageWatch,
    Server,
    check,
    open_page,
    say,
)

pytestmark = [pytest.mark.browser, pytest.mark.model]

PROMPT = "The cat sat on the"
TEACHER = {"Authorization": f"Bearer {TEACHER_TOKEN}"}
UNLIKELY = "hippopotamus"  # several tokens, and unlikely after the prompt


def idle(page: Page) -> None:
    expect(page.locator("body")).to_have_attribute("data-busy", "false")


def likely_word(server: Server) -> str:
    """The model's most likely next word after PROMPT (a whole word, one token)."""
    created = server.request("POST", "/api/sessions", {})
    sid = created["session_id"]
    server.request("POST", f"/api/sessions/{sid}/set-prompt", {"prompt": PROMPT})
    probs = server.request("GET", f"/api/sessions/{sid}/next-token-probs?threshold=0.01")
    server.request("DELETE", f"/api/sessions/{sid}")
    for token in probs["above_threshold_tokens"]:
        word = token["token_text"].strip()
        if token["token_text"].startswith(" ") and word.isalpha():
            return str(word)
    raise AssertionError(probs["above_threshold_tokens"])


def join(page: Page, server: Server, code: str, nickname: str) -> None:
    page.goto(server.url + "/")
    expect(page.locator("#model")).to_have_value("smollm2-135m")
    expect(page.get_by_test_id("nickname")).to_be_hidden()  # no class code yet
    page.fill("#class-code", code.lower())  # typed as a student might
    expect(page.get_by_test_id("nickname")).to_be_visible()
    page.fill("#nickname", nickname)
    page.click("#start")
    idle(page)


def guess(page: Page, lang: str, word: str) -> None:
    expect(page.get_by_test_id("lesson")).to_have_attribute("data-state", "guessing")
    expect(page.get_by_test_id("lesson-prompt")).to_contain_text(PROMPT)
    expect(page.get_by_test_id("wheel")).to_be_hidden()  # predict first, then see
    expect(page.get_by_test_id("guess")).to_be_focused()
    expect(page.locator("#status")).to_contain_text(say(lang, "status.guessFirst", code="X")[:8])
    page.keyboard.type(word)
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("lesson")).to_have_attribute("data-state", "waiting")
    expect(page.get_by_test_id("lesson-waiting")).to_contain_text(word)
    expect(page.get_by_test_id("wheel")).to_be_visible()  # the student's own wheel is back
    expect(page.locator("#status")).to_contain_text(say(lang, "status.readyClass", code="X")[:8])


def test_guess_first_round_with_three_students(browser: Browser, server: Server, lang: str) -> None:
    word = likely_word(server)
    opened = server.request("POST", "/api/teacher/classes", {"name": "7B"}, headers=TEACHER)
    code = opened["class_code"]
    base = f"/api/teacher/classes/{code}"
    rnd = server.request("POST", f"{base}/rounds", {"prompt": PROMPT}, headers=TEACHER)

    pages: list[tuple[Page, PageWatch]] = [
        open_page(browser, server, reduced_motion=True, lang=lang, viewport=LAPTOP)
        for _ in range(3)
    ]
    try:
        (ana, _), (ben, _), (cy, _) = pages
        join(ana, server, code, "Ana")
        guess(ana, lang, word)
        check(ana, "student-round-waiting")

        # a nickname taken (ignoring case): the server's message, the field to fix it
        join(ben, server, code, "ANA")
        message = ben.locator("#message")
        expect(message).to_be_visible()
        expect(message).to_contain_text(say(lang, "error.join.title"))
        expect(ben.get_by_test_id("nickname")).to_be_focused()
        expect(ben.get_by_test_id("lesson")).to_be_hidden()
        check(ben, "student-nickname-taken")
        ben.fill("#nickname", "Ben")
        ben.click("#start")
        idle(ben)
        expect(message).to_be_hidden()
        check(ben, "student-round-guessing")
        guess(ben, lang, UNLIKELY)

        join(cy, server, code, "Cy")
        guess(cy, lang, word)
        waiting = say(lang, "lesson.waiting", guess=say(lang, "token.quoted", text=word), count=3)
        expect(cy.get_by_test_id("lesson-waiting")).to_have_text(waiting)

        revealed = server.request(
            "POST", f"{base}/rounds/{rnd['round_id']}/reveal", {}, headers=TEACHER
        )
        wheel = revealed["wheel"]
        counted = {
            str(t["token_id"]): t["guess_count"]
            for t in wheel["above_threshold_tokens"] + wheel["other_category"]["sample_tokens"]
            if t["guess_count"] > 0
        }
        assert sum(counted.values()) == 2, counted  # Ana and Cy guessed the same word
        unlisted = revealed["unlisted_guesses"]
        assert [g["count"] for g in unlisted] == [1] and not unlisted[0]["single_token"]

        for page, name in ((ana, "ana"), (ben, "ben"), (cy, "cy")):
            lesson = page.get_by_test_id("lesson")
            expect(lesson).to_have_attribute("data-state", "revealed")  # by polling
            shown = page.evaluate(
                """() => Object.fromEntries([...document.querySelectorAll(
                  '#round-wheel .wedge[data-guess-count]')]
                  .filter((w) => w.dataset.guessCount !== '0')
                  .map((w) => [w.dataset.tokenId, Number(w.dataset.guessCount)]))"""
            )
            assert shown == counted, (name, shown, counted)
            badges = page.locator("#round-wheel .guess-badge").count()
            assert badges == len(counted)
            listed = page.locator("[data-testid=lesson-counts] li[data-token-id]")
            expect(listed).to_have_count(len(counted))
            expect(page.locator("[data-testid=lesson-unlisted] li")).to_have_count(1)
            expect(page.get_by_test_id("lesson-unlisted")).to_contain_text(UNLIKELY)

        own: dict[str, Any] = server.request("GET", f"/api/sessions/{session_of(ben)}/round")
        ben_guess = own["round"]["your_guess"]
        assert ben_guess["text"].strip() == UNLIKELY and len(ben_guess["token_ids"]) > 1
        pieces = say(
            lang,
            "lesson.yourGuess.pieces",
            guess=say(lang, "token.quoted", text=UNLIKELY),
            pieces=len(ben_guess["token_ids"]),
            share="X",
            rank="X",
            whole="X",
        ).split("X")[0]
        expect(ben.get_by_test_id("lesson-own")).to_contain_text(pieces)
        check(ben, "student-round-revealed-unlikely")
        ana_own = say(lang, "lesson.yourGuess.one", guess="G", share="X", rank="X")
        expect(ana.get_by_test_id("lesson-own")).to_contain_text(ana_own.split("G")[0])
        expect(ana.get_by_test_id("lesson-own")).to_contain_text(word)
        check(ana, "student-round-revealed")

        # then Ana goes on in her own session: her wheel, her spin
        ana.click("#spin")
        idle(ana)
        expect(ana.locator("#text .tok")).to_have_count(1)
        check(ana, "student-round-then-spin")

        # the teacher's next round covers Ana's wheel again (her page polls every 10 s
        # after a reveal), the focus taken from Spin to the guess
        server.request("POST", f"{base}/rounds", {"prompt": "Once upon a"}, headers=TEACHER)
        expect(ana.get_by_test_id("lesson")).to_have_attribute(
            "data-state", "guessing", timeout=20_000
        )
        expect(ana.get_by_test_id("lesson-prompt")).to_contain_text("Once upon a")
        expect(ana.get_by_test_id("wheel")).to_be_hidden()
        expect(ana.get_by_test_id("guess")).to_be_focused()
        expect(ana.locator("#status")).to_contain_text(say(lang, "status.guessFirst", code="X")[:8])
        check(ana, "student-round-second")
        ana.keyboard.type("time")
        ana.keyboard.press("Enter")
        expect(ana.get_by_test_id("lesson")).to_have_attribute("data-state", "waiting")
        expect(ana.locator("#text .tok")).to_have_count(1)  # her own text is as she left it

        # a session in no class: the page stops asking for rounds
        asked: list[str] = []
        ben.fill("#class-code", "")
        expect(ben.get_by_test_id("nickname")).to_be_hidden()
        ben.click("#start")
        idle(ben)
        expect(ben.get_by_test_id("lesson")).to_be_hidden()
        assert session_of(ben) != own["session_id"]
        # (from now on: a poll of the class session may have left before the new Start)
        ben.on("request", lambda r: r.url.endswith("/round") and asked.append(r.url))
        ben.wait_for_timeout(10_500)  # longer than a revealed round's poll (10 s)
        assert asked == []

        for _page, watch in pages:
            assert watch.expected_failures_only({409}) == [], watch.errors
            assert watch.outside == []
    finally:
        for page, _ in pages:
            page.context.close()


def session_of(page: Page) -> str:
    session = page.locator("body").get_attribute("data-session")
    assert session
    return session
