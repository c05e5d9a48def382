"""The teacher page in headless Chromium against a real server, in English and in Spanish:
a lesson built through the student API, found by class code (each row says its prompt
and text), stepped through version by version (text and wheel as they were), an undone
token marked, class statistics explained in plain words, a long timeline that says there
is more, a download; the token refused and the API switched off explained; every state
screenshotted and checked by axe-core, no console errors, nothing fetched from outside."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests import export_readers
from tests.browser.conftest import (
    TEACHER_TOKEN,
    PageWatch,
    Server,
    catalog,
    check,
    say,
    start_session,
)

pytestmark = [pytest.mark.browser, pytest.mark.model]

PROMPT = "The cat sat on the"
TEACHER = {"Authorization": f"Bearer {TEACHER_TOKEN}"}


def build_lesson(server: Server, class_code: str) -> tuple[str, dict[int, dict[str, Any]]]:
    """Prompt, pick the top wedge, pick the second, undo, draw from Other: what the
    student saw (GET /api/sessions/{id}) after each version."""
    sid = server.request("POST", "/api/sessions", {"class_code": class_code})["session_id"]
    seen: dict[int, dict[str, Any]] = {}

    def record(version: int) -> None:
        seen[version] = server.request("GET", f"/api/sessions/{sid}")

    record(1)
    server.request("POST", f"/api/sessions/{sid}/set-prompt", {"prompt": PROMPT})
    record(2)
    wheel = server.request("GET", f"/api/sessions/{sid}/next-token-probs")
    server.request(
        "POST",
        f"/api/sessions/{sid}/append-token",
        {"token_id": wheel["above_threshold_tokens"][0]["token_id"]},
    )
    record(3)
    wheel = server.request("GET", f"/api/sessions/{sid}/next-token-probs?threshold=0.001")
    server.request(
        "POST",
        f"/api/sessions/{sid}/append-token",
        {"token_id": wheel["above_threshold_tokens"][1]["token_id"], "threshold": 0.001},
    )
    record(4)
    server.request("POST", f"/api/sessions/{sid}/undo")
    record(5)
    server.request("POST", f"/api/sessions/{sid}/append-token", {"category": "other"})
    record(6)
    return sid, seen


def fragment(lang: str, key: str) -> str:
    """The longest stretch of a catalog message without a placeholder: what the page
    shows of it whatever the values."""
    message = catalog(lang)[key]
    text = message["other"] if isinstance(message, dict) else message
    return max(re.split(r"\{\w+\}", text), key=len).strip()


def replay(server: Server, sid: str, version: int) -> dict[str, Any]:
    return server.request(  # type: ignore[no-any-return]
        "GET", f"/api/teacher/sessions/{sid}/replay?version={version}", headers=TEACHER
    )


def assert_step(
    page: Page, lang: str, server: Server, sid: str, version: int, seen: dict[int, Any]
) -> None:
    """The page shows the text the student saw at ``version``, as the replay API has it,
    and the wheel for that step."""
    expect(page.locator("#step-value")).to_have_text(say(lang, "step.of", step=version, count=6))
    expect(page.locator("#replay-text")).to_have_attribute("data-version", str(version))
    expect(page.locator("#wheel")).to_have_attribute("data-version", str(version))
    state = replay(server, sid, version)["state"]
    student = seen[version]
    assert state["current_text"] == student["current_text"]
    expect(page.locator("#replay-text .prompt")).to_have_text(student["initial_prompt"] or "")
    chips = page.locator("#replay-text .tok")
    ids = [t["token_id"] for t in student["token_history"]]
    assert [int(i) for i in chips.evaluate_all("cs => cs.map(c => c.dataset.tokenId)")] == ids
    current = page.locator(f'#timeline li[data-version="{version}"]')
    expect(current).to_have_attribute("aria-current", "step")


def test_a_teacher_finds_a_session_and_steps_through_it(
    desk: tuple[Page, PageWatch], server: Server, lang: str
) -> None:
    page, watch = desk
    class_code = f"tw-{uuid.uuid4().hex[:6]}"
    sid, seen = build_lesson(server, class_code)
    timeline = server.request("GET", f"/api/teacher/sessions/{sid}", headers=TEACHER)["timeline"]
    appended = {e["version"]: e["payload"] for e in timeline if e["type"] == "TokenAppended"}

    # the student page links here
    page.goto(server.url + "/")
    page.get_by_role("link", name=say(lang, "footer.teacher")).click()
    expect(page).to_have_url(server.url + "/teacher")
    expect(page.locator("#token")).to_have_attribute("type", "password")

    # a wrong token is refused and said so
    page.fill("#token", "not-the-token")
    page.click("#sign-in")
    expect(page.locator("#message")).to_be_visible()
    expect(page.locator("#message-title")).to_have_text(say(lang, "error.token.title"))
    expect(page.locator("#find")).to_be_hidden()
    assert page.evaluate("() => sessionStorage.length") == 0
    check(page, "teacher-wrong-token")

    # the right one opens the list; it is kept in this tab only
    page.fill("#token", TEACHER_TOKEN)
    page.click("#sign-in")
    expect(page.locator("#find")).to_be_visible()
    expect(page.locator("#message")).to_be_hidden()
    assert page.evaluate("() => Object.values(sessionStorage)") == [TEACHER_TOKEN]
    assert page.evaluate("() => localStorage.length") == 0
    expect(page.locator("#token")).to_have_value("")

    page.fill("#filter-class", class_code)
    page.click("#search")
    rows = page.locator("#session-rows tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-session-id", sid)
    expect(page.locator("#page-info")).to_have_text(
        say(lang, "list.page", page=1, pages=1, count=1)
    )
    # the row says who and what: the prompt and the text now
    last = seen[6]
    expect(rows.first.locator(".text-cell").first).to_have_text(last["initial_prompt"])
    text_cell = rows.first.locator(".text-cell .preview").nth(1)
    assert last["current_text"].endswith(text_cell.inner_text().lstrip("…"))
    expect(page.locator("#class-panel")).to_be_visible()
    expect(page.locator("#class-title")).to_have_text(say(lang, "class.title", code=class_code))
    stats = page.locator("#class-stats")
    expect(stats).to_contain_text(say(lang, "stat.sessions"))
    expect(stats.locator("dd").first).to_have_text("1")  # sessions
    # every statistic says what it means in plain words
    for pair in stats.locator(".stat").all():
        key = pair.get_attribute("data-stat")
        expect(pair.locator(".stat-help")).to_have_text(say(lang, f"stat.{key}.help"))
    expect(stats.locator(".stat-help")).to_have_count(10)
    check(page, "teacher-list")

    # open it: the last step first, as the student left it
    rows.first.locator(f'button[data-open="{sid}"]').click()
    expect(page.locator("#session-panel")).to_be_visible()
    expect(page.locator("#session-title")).to_contain_text(last["initial_prompt"])
    expect(page.locator("#timeline li")).to_have_count(6)
    assert_step(page, lang, server, sid, 6, seen)
    # version 6 drew from Other: in the wheel it came from, the drawn token's own thin
    # wedge inside Other is outlined, or the rest of Other when it is too unlikely to draw
    landed = page.locator("#wheel .wedge.landed")
    expect(landed).to_have_count(1)
    expect(landed).to_have_attribute("data-kind", re.compile(r"^(sample|rest)$"))
    if landed.get_attribute("data-kind") == "sample":
        expect(landed).to_have_attribute("data-token-id", str(appended[6]["token_id"]))
    expect(page.locator("#wheel-caption")).to_contain_text(fragment(lang, "replay.captionChosen"))
    # the undone token is struck through and says so
    undone = page.locator('#timeline li[data-version="4"]')
    expect(undone).to_have_class("undone")
    expect(undone.locator(".badge")).to_have_text(say(lang, "timeline.undone"))
    decoration = undone.locator(".what").evaluate("e => getComputedStyle(e).textDecorationLine")
    assert decoration == "line-through"
    expect(page.locator('#timeline li[data-version="5"]')).to_contain_text(
        say(lang, "event.undone", token="", step="").split(" ")[0]
    )
    check(page, "teacher-session")

    # to the first version and back, by keyboard, buttons, slider and the timeline
    page.locator("#session-title").click()  # focus outside any input: arrows step
    page.keyboard.press("Home")
    assert_step(page, lang, server, sid, 1, seen)
    expect(page.locator("#wheel-caption")).to_have_text(say(lang, "replay.noPrompt"))
    expect(page.locator("#step-prev")).to_be_disabled()
    page.click("#step-next")
    assert_step(page, lang, server, sid, 2, seen)
    expect(page.locator("#wheel .wedge").first).to_be_visible()
    page.keyboard.press("ArrowRight")
    assert_step(page, lang, server, sid, 3, seen)
    landed = page.locator("#wheel .wedge.landed")
    expect(landed).to_have_attribute("data-token-id", str(appended[3]["token_id"]))
    page.locator("#step").fill("4")
    assert_step(page, lang, server, sid, 4, seen)
    expect(landed).to_have_attribute("data-token-id", str(appended[4]["token_id"]))
    expect(page.locator("#wheel")).to_have_attribute("data-threshold", "0.001")
    check(page, "teacher-step-undone-token")
    page.locator('#timeline li[data-version="5"] button').click()
    assert_step(page, lang, server, sid, 5, seen)
    page.keyboard.press("End")
    assert_step(page, lang, server, sid, 6, seen)
    expect(page.locator("#step-next")).to_be_disabled()

    # a download carries the token: the session's events as JSON
    with page.expect_download() as info:
        page.locator('.download[data-scope="session"][data-format="json"]').click()
    download = info.value
    assert download.suggested_filename == f"session-{sid[:8]}.json"
    events = json.loads(Path(download.path()).read_text())
    assert [e["version"] for e in events] == [1, 2, 3, 4, 5, 6]
    assert {e["session_id"] for e in events} == {sid}

    assert watch.outside == []
    assert watch.expected_failures_only({401}) == []


def test_an_api_switched_off_and_a_lost_server_are_explained(
    desk: tuple[Page, PageWatch], server: Server, lang: str
) -> None:
    """What the page says when the server has no teacher token (403), and when it does
    not answer at all; both answers are faked at the network layer."""
    page, watch = desk
    page.route(
        "**/api/teacher/**",
        lambda route: route.fulfill(
            status=403,
            content_type="application/json",
            body=json.dumps({"error": "Forbidden", "message": "The teacher API is off."}),
        ),
    )
    page.goto(server.url + "/teacher")
    page.fill("#token", "anything")
    page.click("#sign-in")
    expect(page.locator("#message-title")).to_have_text(say(lang, "error.off.title"))
    expect(page.locator("#message-text")).to_contain_text("TOKENWHEEL_TEACHER_TOKEN")
    check(page, "teacher-api-off")

    page.unroute("**/api/teacher/**")
    page.route("**/api/teacher/**", lambda route: route.abort())
    page.fill("#token", TEACHER_TOKEN)
    page.click("#sign-in")
    expect(page.locator("#message-title")).to_have_text(say(lang, "error.network.title"))
    expect(page.locator("#find")).to_be_hidden()
    check(page, "teacher-no-connection")

    assert watch.outside == []
    errors = watch.expected_failures_only({403})
    assert all("ERR_FAILED" in e for e in errors), errors


def test_a_lesson_made_on_the_student_page_is_stepped_through_on_the_teacher_page(
    desk: tuple[Page, PageWatch], server: Server, lang: str
) -> None:
    """One flow, in one browser: a student joins a class on the student page, spins,
    picks a wedge by keyboard and undoes; the teacher page finds that very session by its
    class code, steps through it (the spin's wheel with its landed wedge outlined), shows
    the class and downloads the class as CSV; a rate limit is explained with its wait."""
    page, watch = desk
    class_code = f"st-{uuid.uuid4().hex[:6]}"
    sid = start_session(page, server, PROMPT, class_code)
    with page.expect_response("**/spin") as spun:
        page.click("#spin")
    spin = spun.value.json()
    expect(page.locator("#text .tok")).to_have_count(1)
    expect(page.locator("body")).to_have_attribute("data-busy", "false")
    page.locator("#wheel .wedge").first.focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")
    expect(page.locator("#text .tok")).to_have_count(2)
    expect(page.locator("body")).to_have_attribute("data-busy", "false")
    page.click("#undo")
    expect(page.locator("#text .tok")).to_have_count(1)
    expect(page.locator("body")).to_have_attribute("data-busy", "false")

    page.goto(server.url + "/teacher")
    page.fill("#token", TEACHER_TOKEN)
    page.click("#sign-in")
    page.fill("#filter-class", class_code)
    page.click("#search")
    rows = page.locator("#session-rows tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-session-id", sid)
    rows.first.locator(f'button[data-open="{sid}"]').click()
    timeline = page.locator("#timeline li")
    expect(timeline).to_have_count(5)  # created, prompt, spin, pick, undo
    assert timeline.evaluate_all("items => items.map(i => i.dataset.type)") == [
        "SessionCreated",
        "SetPrompt",
        "TokenAppended",
        "TokenAppended",
        "Undone",
    ]
    expect(page.locator('#timeline li[data-version="3"]')).to_contain_text(say(lang, "chosen.spin"))
    expect(page.locator('#timeline li[data-version="4"]')).to_have_class("undone")
    page.locator('#timeline li[data-version="3"] button').click()
    expect(page.locator("#wheel")).to_have_attribute("data-version", "3")
    landed = page.locator("#wheel .wedge.landed")
    expect(landed).to_have_count(1)
    expect(landed).to_have_attribute("data-wedge", str(spin["landed"]["wedge_index"]))
    expect(page.locator("#replay-text .tok")).to_have_count(1)
    check(page, "teacher-student-lesson")

    # the class: its statistics and its CSV, which reads back as the session's events
    expect(page.locator("#class-title")).to_have_text(say(lang, "class.title", code=class_code))
    with page.expect_download() as info:
        page.locator('.download[data-scope="class"][data-format="csv"]').click()
    assert info.value.suggested_filename == f"class-{class_code}.csv"
    events = export_readers.events_from_csv(Path(info.value.path()).read_text())
    assert [e.version for e in events] == [1, 2, 3, 4, 5]
    assert {e.session_id for e in events} == {sid}

    # a rate limit on the teacher page says how long to wait
    page.route(
        "**/api/teacher/sessions?**",
        lambda route: route.fulfill(
            status=429,
            headers={"Retry-After": "9"},
            json={"error": "Too many requests", "message": "Slow down."},
        ),
    )
    page.click("#search")
    expect(page.locator("#message-title")).to_have_text(say(lang, "error.rate.title"))
    expect(page.locator("#message-text")).to_contain_text(say(lang, "error.tryAgainIn", seconds=9))
    check(page, "teacher-rate-limited")

    assert watch.outside == []
    assert watch.expected_failures_only({429}) == []


def test_a_long_timeline_says_there_is_more(
    desk: tuple[Page, PageWatch], server: Server, lang: str
) -> None:
    """A session of 40 steps: the timeline's box scrolls, and a button under it says how
    many steps are further down and scrolls to them."""
    page, watch = desk
    class_code = f"long-{uuid.uuid4().hex[:6]}"
    sid = server.request("POST", "/api/sessions", {"class_code": class_code})["session_id"]
    server.request("POST", f"/api/sessions/{sid}/set-prompt", {"prompt": PROMPT})
    for _ in range(38):
        wheel = server.request("GET", f"/api/sessions/{sid}/next-token-probs")
        token_id = wheel["above_threshold_tokens"][0]["token_id"]
        server.request("POST", f"/api/sessions/{sid}/append-token", {"token_id": token_id})
    page.goto(server.url + "/teacher")
    page.fill("#token", TEACHER_TOKEN)
    page.click("#sign-in")
    page.fill("#filter-class", class_code)
    page.click("#search")
    page.locator(f'button[data-open="{sid}"]').click()
    expect(page.locator("#timeline li")).to_have_count(40)
    expect(page.locator("#timeline-title")).to_have_text(say(lang, "timeline.title", count=40))
    page.keyboard.press("Home")  # the first step: the rest of the timeline is below
    expect(page.locator("#step-value")).to_have_text(say(lang, "step.of", step=1, count=40))
    more = page.locator("#timeline-more")
    expect(more).to_be_visible()
    hidden = int(re.sub(r"\D", "", more.inner_text()))
    assert 0 < hidden < 40
    expect(page.locator("#timeline")).to_have_class(re.compile(r"has-more"))
    check(page, "teacher-long-timeline")
    more.click()
    page.wait_for_function(
        "n => Number(document.getElementById('timeline-more').textContent.replace(/\\D/g, '')) < n"
        " || document.getElementById('timeline-more').hidden",
        arg=hidden,
    )
    page.keyboard.press("End")  # the last step shows in the box, and nothing is below it
    expect(page.locator("#step-value")).to_have_text(say(lang, "step.of", step=40, count=40))
    expect(more).to_be_hidden()
    check(page, "teacher-long-timeline-end")
    assert watch.errors == []
    assert watch.outside == []
