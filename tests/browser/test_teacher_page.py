"""The teacher page in headless Chromium against a real server: a lesson built through the
student API, found by class code, stepped through version by version (text and wheel as
they were), an undone token marked, class statistics, a download; the token refused and
the API switched off explained; no console errors, nothing fetched from outside."""

from __future__ import annotations

import json
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
    screenshot,
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


def replay(server: Server, sid: str, version: int) -> dict[str, Any]:
    return server.request(  # type: ignore[no-any-return]
        "GET", f"/api/teacher/sessions/{sid}/replay?version={version}", headers=TEACHER
    )


def assert_step(page: Page, server: Server, sid: str, version: int, seen: dict[int, Any]) -> None:
    """The page shows the text the student saw at ``version``, as the replay API has it,
    and the wheel for that step."""
    expect(page.locator("#step-value")).to_have_text(f"Step {version} of 6")
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
    desk: tuple[Page, PageWatch], server: Server
) -> None:
    page, watch = desk
    class_code = f"tw-{uuid.uuid4().hex[:6]}"
    sid, seen = build_lesson(server, class_code)
    timeline = server.request("GET", f"/api/teacher/sessions/{sid}", headers=TEACHER)["timeline"]
    appended = {e["version"]: e["payload"] for e in timeline if e["type"] == "TokenAppended"}

    # the student page links here
    page.goto(server.url + "/")
    page.get_by_role("link", name="Teacher page").click()
    expect(page).to_have_url(server.url + "/teacher")
    expect(page.locator("#token")).to_have_attribute("type", "password")

    # a wrong token is refused and said so
    page.fill("#token", "not-the-token")
    page.click("#sign-in")
    expect(page.locator("#message")).to_be_visible()
    expect(page.locator("#message-title")).to_have_text("Wrong teacher token")
    expect(page.locator("#find")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0
    screenshot(page, "teacher-wrong-token")

    # the right one opens the list; it is kept in this tab only
    page.fill("#token", TEACHER_TOKEN)
    page.click("#sign-in")
    expect(page.locator("#find")).to_be_visible()
    expect(page.locator("#message")).to_be_hidden()
    assert page.evaluate("Object.values(sessionStorage)") == [TEACHER_TOKEN]
    assert page.evaluate("localStorage.length") == 0
    expect(page.locator("#token")).to_have_value("")

    page.fill("#filter-class", class_code)
    page.click("#search")
    rows = page.locator("#session-rows tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-session-id", sid)
    expect(page.locator("#page-info")).to_contain_text("1 sessions")
    expect(page.locator("#class-panel")).to_be_visible()
    expect(page.locator("#class-title")).to_have_text(f"Class {class_code}")
    stats = page.locator("#class-stats")
    expect(stats).to_contain_text("Sessions")
    expect(stats.locator("dd").first).to_have_text("1")  # sessions
    screenshot(page, "teacher-list")

    # open it: the last step first, as the student left it
    rows.first.get_by_role("button", name=f"Open session {sid[:8]}").click()
    expect(page.locator("#session-panel")).to_be_visible()
    expect(page.locator("#timeline li")).to_have_count(6)
    assert_step(page, server, sid, 6, seen)
    # version 6 drew from Other: the Other wedge of the wheel it came from is outlined
    expect(page.locator("#wheel .wedge.landed")).to_have_count(1)
    expect(page.locator("#wheel .wedge.landed")).to_have_class("wedge other landed")
    expect(page.locator("#wheel-caption")).to_contain_text("computed again by the model")
    # the undone token is struck through and says so
    undone = page.locator('#timeline li[data-version="4"]')
    expect(undone).to_have_class("undone")
    expect(undone.locator(".badge")).to_have_text("undone")
    decoration = undone.locator(".what").evaluate("e => getComputedStyle(e).textDecorationLine")
    assert decoration == "line-through"
    expect(page.locator('#timeline li[data-version="5"]')).to_contain_text("Undo: removed")
    screenshot(page, "teacher-session")

    # to the first version and back, by keyboard, buttons, slider and the timeline
    page.locator("#session-title").click()  # focus outside any input: arrows step
    page.keyboard.press("Home")
    assert_step(page, server, sid, 1, seen)
    expect(page.locator("#wheel-caption")).to_have_text("No prompt yet: no wheel.")
    expect(page.locator("#step-prev")).to_be_disabled()
    page.click("#step-next")
    assert_step(page, server, sid, 2, seen)
    expect(page.locator("#wheel .wedge").first).to_be_visible()
    page.keyboard.press("ArrowRight")
    assert_step(page, server, sid, 3, seen)
    landed = page.locator("#wheel .wedge.landed")
    expect(landed).to_have_attribute("data-token-id", str(appended[3]["token_id"]))
    page.locator("#step").fill("4")
    assert_step(page, server, sid, 4, seen)
    expect(landed).to_have_attribute("data-token-id", str(appended[4]["token_id"]))
    expect(page.locator("#wheel")).to_have_attribute("data-threshold", "0.001")
    screenshot(page, "teacher-step-undone-token")
    page.locator('#timeline li[data-version="5"] button').click()
    assert_step(page, server, sid, 5, seen)
    page.keyboard.press("End")
    assert_step(page, server, sid, 6, seen)
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
    desk: tuple[Page, PageWatch], server: Server
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
    expect(page.locator("#message-title")).to_have_text("The teacher API is off")
    expect(page.locator("#message-text")).to_contain_text("TOKENWHEEL_TEACHER_TOKEN")
    screenshot(page, "teacher-api-off")

    page.unroute("**/api/teacher/**")
    page.route("**/api/teacher/**", lambda route: route.abort())
    page.fill("#token", TEACHER_TOKEN)
    page.click("#sign-in")
    expect(page.locator("#message-title")).to_have_text("No connection")
    expect(page.locator("#find")).to_be_hidden()

    assert watch.outside == []
    errors = watch.expected_failures_only({403})
    assert all("ERR_FAILED" in e for e in errors), errors


def test_a_lesson_made_on_the_student_page_is_stepped_through_on_the_teacher_page(
    desk: tuple[Page, PageWatch], server: Server
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
    rows.first.get_by_role("button", name=f"Open session {sid[:8]}").click()
    timeline = page.locator("#timeline li")
    expect(timeline).to_have_count(5)  # created, prompt, spin, pick, undo
    assert timeline.evaluate_all("items => items.map(i => i.dataset.type)") == [
        "SessionCreated",
        "SetPrompt",
        "TokenAppended",
        "TokenAppended",
        "Undone",
    ]
    expect(page.locator('#timeline li[data-version="3"]')).to_contain_text("spun")
    expect(page.locator('#timeline li[data-version="4"]')).to_have_class("undone")
    page.locator('#timeline li[data-version="3"] button').click()
    expect(page.locator("#wheel")).to_have_attribute("data-version", "3")
    landed = page.locator("#wheel .wedge.landed")
    expect(landed).to_have_count(1)
    expect(landed).to_have_attribute("data-index", str(spin["landed"]["wedge_index"]))
    expect(page.locator("#replay-text .tok")).to_have_count(1)
    screenshot(page, "teacher-student-lesson")

    # the class: its statistics and its CSV, which reads back as the session's events
    expect(page.locator("#class-title")).to_have_text(f"Class {class_code}")
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
    expect(page.locator("#message-title")).to_have_text("Too many requests")
    expect(page.locator("#message-text")).to_contain_text("Try again in 9 s")

    assert watch.outside == []
    assert watch.expected_failures_only({429}) == []
