"""A class on the teacher page and its projector view in headless Chromium against a real
server, in English and Spanish: the teacher opens a class (its join code shown large),
three students join it through the API with nicknames, the teacher starts a round on the
page, the students guess through the API, the page counts three guesses and names who
guessed, the teacher reveals on the page; the projector view at 1920x1080 shows the
round's prompt and count before the reveal and, after it, the wheel with exactly the
guess counts the API's reveal answer has. Every state screenshotted and checked by
axe-core, no console errors, nothing fetched from outside."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import TEACHER_TOKEN, Server, check, open_page, say

pytestmark = [pytest.mark.browser, pytest.mark.model]

PROMPT = "The cat sat on the"
TEACHER = {"Authorization": f"Bearer {TEACHER_TOKEN}"}
PROJECTOR = {"width": 1920, "height": 1080}
LAPTOP = {"width": 1366, "height": 768}


def counted(revealed: dict[str, Any]) -> dict[str, int]:
    """token id -> guess count of the wheel's tokens someone guessed."""
    wheel = revealed["wheel"]
    tokens = wheel["above_threshold_tokens"] + wheel["other_category"]["sample_tokens"]
    return {str(t["token_id"]): t["guess_count"] for t in tokens if t["guess_count"]}


def guesses_on_the_wheel(server: Server) -> list[str]:
    """Three guesses: the most likely next token after PROMPT twice, the second once (the
    round's wheel at temperature 1), as a student types them (a guess is trimmed)."""
    sid = server.request("POST", "/api/sessions", {})["session_id"]
    server.request("POST", f"/api/sessions/{sid}/set-prompt", {"prompt": PROMPT})
    wheel = server.request("GET", f"/api/sessions/{sid}/next-token-probs")
    server.request("DELETE", f"/api/sessions/{sid}")
    first, second = wheel["above_threshold_tokens"][:2]
    return [first["token_text"].strip(), first["token_text"].strip(), second["token_text"].strip()]


def assert_marks(page: Page, svg: str, revealed: dict[str, Any]) -> None:
    marks = page.locator(f"{svg} .guess-mark")
    expected = counted(revealed)
    expect(marks).to_have_count(len(expected))
    shown = marks.evaluate_all("ms => ms.map(m => [m.dataset.tokenId, m.dataset.count])")
    assert {token: int(n) for token, n in shown} == expected


def test_a_class_guesses_and_the_projector_shows_the_reveal(
    browser: Browser, server: Server, lang: str
) -> None:
    page, watch = open_page(browser, server, reduced_motion=True, lang=lang, viewport=LAPTOP)
    page.goto(server.url + "/teacher")
    page.fill("#token", TEACHER_TOKEN)
    page.click("#sign-in")
    expect(page.locator("#classes")).to_be_visible()

    # the teacher opens a class: its join code, large, and spelled out
    name = f"Period 3 {uuid.uuid4().hex[:4]}"
    page.fill("#class-name", name)
    page.click("#open-class-button")
    expect(page.locator("#join-box")).to_be_visible()
    code = page.locator("#join-code").inner_text().strip()
    assert len(code) == 6
    expect(page.locator("#join-spoken")).to_have_text(
        say(lang, "classes.spoken", letters=" · ".join(code))
    )
    row = page.locator(f'#class-rows tr[data-class-code="{code}"]')
    expect(row.locator("td").nth(0)).to_have_text(name)
    expect(row.locator("td").nth(2)).to_have_text(say(lang, "classes.status.open"))
    expect(page.locator("#class-room")).to_have_attribute("data-class-code", code)
    expect(page.locator("#room-projector")).to_have_attribute(
        "href", f"/teacher/projector?class={code}"
    )
    check(page, "teacher-class-opened")

    # three students join with nicknames
    nicknames = ["Ana", "Bo", "Chen"]
    sessions = [
        server.request("POST", "/api/sessions", {"class_code": code, "nickname": n})["session_id"]
        for n in nicknames
    ]

    # the teacher starts a round on the page: the students are listed by nickname
    page.fill("#round-prompt-input", PROMPT)
    page.click("#start-round-button")
    round_panel = page.locator("#round")
    expect(round_panel).to_have_attribute("data-status", "open")
    expect(page.locator("#room-students li .nickname")).to_have_text(nicknames)
    expect(row.locator("td").nth(3)).to_have_text("3")
    expect(page.locator("#round-count")).to_have_text(say(lang, "rounds.guesses", count=0))
    rid = round_panel.get_attribute("data-round-id")
    assert rid

    # the projector, in a tab of its own: the token typed there, the round before reveal
    projector, projector_watch = open_page(
        browser, server, reduced_motion=True, lang=lang, viewport=PROJECTOR
    )
    projector.goto(f"{server.url}/teacher/projector?class={code}")
    projector.fill("#token", TEACHER_TOKEN)
    projector.click("#sign-in")
    shown = projector.locator("#projector-round")
    expect(shown).to_have_attribute("data-round-id", rid)
    join = say(lang, "projector.join", code=code)
    expect(projector.locator("#projector-join")).to_have_text(join)

    # the students guess through the API (two the model's first wedge, one its second:
    # the marks must land on wedges); the page counts them and says who
    for sid, text in zip(sessions, guesses_on_the_wheel(server), strict=True):
        server.request("POST", f"/api/sessions/{sid}/guess", {"round_id": rid, "text": text})
    expect(round_panel).to_have_attribute("data-guesses", "3")
    expect(page.locator("#round-count")).to_have_text(say(lang, "rounds.guesses", count=3))
    expect(page.locator("#round-guessers li")).to_have_text(nicknames)
    check(page, "teacher-round-guesses")

    expect(shown).to_have_attribute("data-guesses", "3")
    expect(projector.locator("#projector-count")).to_have_text(
        say(lang, "projector.guesses", count=3)
    )
    expect(projector.locator("#projector-revealed")).to_be_hidden()
    check(projector, "projector-before-reveal")

    # the teacher reveals on the page: the wheel with the guesses marked
    page.click("#reveal")
    expect(round_panel).to_have_attribute("data-status", "revealed")
    expect(page.locator("#round-wheel .wedge").first).to_be_visible()
    revealed = server.request(
        "POST", f"/api/teacher/classes/{code}/rounds/{rid}/reveal", headers=TEACHER
    )
    assert (
        sum(counted(revealed).values()) + sum(g["count"] for g in revealed["unlisted_guesses"]) == 3
    )
    assert len(counted(revealed)) == 2  # both texts are one token of the wheel
    assert_marks(page, "#round-wheel", revealed)
    expect(page.locator("#round-unlisted li")).to_have_count(len(revealed["unlisted_guesses"]))
    check(page, "teacher-round-revealed")

    # the projector follows: the same counts as the API's reveal answer
    expect(shown).to_have_attribute("data-status", "revealed")
    expect(projector.locator("#projector-revealed")).to_be_visible()
    assert_marks(projector, "#projector-wheel", revealed)
    rows = projector.locator("#projector-tokens tbody tr[data-token-id]")
    shown_rows = rows.evaluate_all("rs => rs.map(r => [r.dataset.tokenId, r.dataset.count])")
    assert {token: int(n) for token, n in shown_rows} == counted(revealed)
    expect(projector.locator("#projector-unlisted li")).to_have_count(
        len(revealed["unlisted_guesses"])
    )
    check(projector, "projector-after-reveal")

    # one student's live wheel on the projector, from the link by their nickname
    server.request("POST", f"/api/sessions/{sessions[0]}/set-prompt", {"prompt": PROMPT})
    detail = server.request("GET", f"/api/teacher/sessions/{sessions[0]}", headers=TEACHER)
    link = page.locator(f'#room-students li[data-session-id="{sessions[0]}"] a')
    href = link.get_attribute("href")
    assert href == f"/teacher/projector?class={code}&session={sessions[0]}"
    projector.goto(server.url + href)  # this tab keeps the token typed before
    student = projector.locator("#projector-student")
    expect(student).to_have_attribute("data-version", str(detail["session"]["version"]))
    expect(projector.locator("#projector-class")).to_have_text("Ana")
    expect(projector.locator("#projector-text")).to_have_text(PROMPT)
    expect(projector.locator("#projector-student-wheel .wedge").first).to_be_visible()
    expect(projector.locator("#projector-round")).to_be_hidden()
    check(projector, "projector-student")

    # the class's live grid, from the class: a card per student, by nickname
    page.click("#room-live")
    expect(page.locator("#live-panel")).to_have_attribute("data-state", "open")
    expect(page.locator("#live-grid .live-name")).to_have_text(nicknames)

    # close and reopen the class from the list
    row.locator('button[data-action="close"]').click()
    expect(row.locator("td").nth(2)).to_have_text(say(lang, "classes.status.closed"))
    row.locator('button[data-action="reopen"]').click()
    expect(row.locator("td").nth(2)).to_have_text(say(lang, "classes.status.open"))

    assert watch.errors == [] and watch.outside == []
    assert projector_watch.errors == [] and projector_watch.outside == []
    projector.context.close()
    page.context.close()
