"""The teacher page's live grid in headless Chromium, in English and Spanish: a teacher
watches a class; students working through the API (append, undo, a newcomer, one who
leaves) change their cards without a reload; an empty class says so; every state
screenshotted and checked by axe-core, no console errors, nothing fetched from outside."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import TEACHER_TOKEN, PageWatch, Server, check, say

pytestmark = [pytest.mark.browser, pytest.mark.model]

PROMPT = "The cat sat on the"


def sign_in_and_watch(page: Page, server: Server, class_code: str) -> None:
    page.goto(server.url + "/teacher")
    page.fill("#token", TEACHER_TOKEN)
    page.click("#sign-in")
    expect(page.locator("#find")).to_be_visible()
    page.fill("#filter-class", class_code)
    page.click("#watch-live")
    expect(page.locator("#live-panel")).to_be_visible()
    expect(page.locator("#live-panel")).to_have_attribute("data-state", "open")


def card(page: Page, session_id: str):  # type: ignore[no-untyped-def]
    return page.locator(f'#live-grid .live-card[data-session-id="{session_id}"]')


def test_the_live_grid_follows_the_class(
    desk: tuple[Page, PageWatch], server: Server, lang: str
) -> None:
    page, watch = desk
    class_code = f"live-{uuid.uuid4().hex[:6]}"
    sid = server.request("POST", "/api/sessions", {"class_code": class_code})["session_id"]
    server.request("POST", f"/api/sessions/{sid}/set-prompt", {"prompt": PROMPT})

    sign_in_and_watch(page, server, class_code)
    ours = card(page, sid)
    expect(ours).to_have_attribute("data-version", "2")
    expect(ours.locator(".live-name")).to_have_text(say(lang, "live.anonymous", id=sid[:4]))
    expect(ours.locator(".live-text")).to_have_text(PROMPT)
    expect(ours.locator(".live-last")).to_have_text(say(lang, "live.noToken"))
    expect(page.locator("#live-title")).to_have_text(say(lang, "live.title", code=class_code))
    expect(page.locator("#live-state")).to_have_text(say(lang, "live.open"))
    check(page, "teacher-live-grid")

    # a student appends: the card shows the new text and the token with its probability
    wheel = server.request("GET", f"/api/sessions/{sid}/next-token-probs")
    top = wheel["above_threshold_tokens"][0]
    appended = server.request(
        "POST", f"/api/sessions/{sid}/append-token", {"token_id": top["token_id"]}
    )
    expect(ours).to_have_attribute("data-version", "3")
    expect(ours.locator(".live-text")).to_have_text(appended["current_text"])
    last = ours.locator(".live-last")
    probability = float(last.get_attribute("data-probability") or "nan")
    assert probability == appended["appended_token"]["probability"]
    expect(last.locator(".token-text")).to_have_text(top["display_text"])
    expect(ours.locator(".live-meta")).to_have_text(say(lang, "live.tokens", count=1))
    check(page, "teacher-live-appended")

    # an undo takes it back, and says which token went
    server.request("POST", f"/api/sessions/{sid}/undo")
    expect(ours).to_have_attribute("data-version", "4")
    expect(ours.locator(".live-text")).to_have_text(PROMPT)
    action = say(lang, "live.did.undo", token=say(lang, "token.quoted", text=top["display_text"]))
    expect(ours.locator(".live-action")).to_have_text(action)
    expect(ours.locator(".live-last")).to_have_text(say(lang, "live.noToken"))

    # a newcomer gets a card; one who leaves is marked
    newcomer = server.request("POST", "/api/sessions", {"class_code": class_code})["session_id"]
    expect(card(page, newcomer)).to_have_attribute("data-version", "1")
    expect(card(page, newcomer).locator(".live-text")).to_have_text(say(lang, "live.noPrompt"))
    server.request("DELETE", f"/api/sessions/{newcomer}")
    expect(card(page, newcomer)).to_have_class("live-card left")
    expect(page.locator("#live-grid .live-card")).to_have_count(2)
    check(page, "teacher-live-undone")

    page.click("#live-stop")
    expect(page.locator("#live-panel")).to_be_hidden()
    assert watch.errors == [] and watch.outside == []


def test_an_empty_class_says_who_will_appear(
    desk: tuple[Page, PageWatch], server: Server, lang: str
) -> None:
    page, watch = desk
    class_code = f"empty-{uuid.uuid4().hex[:6]}"
    sign_in_and_watch(page, server, class_code)
    expect(page.locator("#live-state")).to_have_text(say(lang, "live.empty", code=class_code))
    expect(page.locator("#live-grid .live-card")).to_have_count(0)
    check(page, "teacher-live-empty")
    # the first student to join appears without a reload
    sid = server.request("POST", "/api/sessions", {"class_code": class_code})["session_id"]
    expect(card(page, sid)).to_be_visible()
    expect(page.locator("#live-state")).to_have_text(say(lang, "live.open"))
    assert watch.errors == [] and watch.outside == []
