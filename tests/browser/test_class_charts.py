"""The class charts on the teacher page (issue 15, item 5) in headless Chromium against a
real server, in English and Spanish: a teacher opens a class on the page and asks for its
charts before anyone joined (three empty states, each saying why); four students join
through the API, three of them choose tokens from the same wheel (one from Other), the
class guesses in a round and the teacher reveals it; the charts drawn again hold exactly
the API's numbers, on the bars and in the tables screen readers read. Screenshotted and
checked by axe-core, no console errors, nothing fetched from outside."""

from __future__ import annotations

import math
import uuid
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.browser.conftest import LAPTOP, TEACHER_TOKEN, Server, check, open_page, say

pytestmark = [pytest.mark.browser, pytest.mark.model]

PROMPT = "The cat sat on the"
TEACHER = {"Authorization": f"Bearer {TEACHER_TOKEN}"}
UNLIKELY = "hippopotamus"


def bars(page: Page, chart: str, series: str) -> dict[str, float]:
    """data-key -> data-value of one series' bars in a chart."""
    shown = page.locator(f'#charts-body [data-chart="{chart}"] rect[data-series="{series}"]')
    pairs = shown.evaluate_all("rs => rs.map(r => [r.dataset.key, r.dataset.value])")
    return {key: float(value) for key, value in pairs}


def cells(table: Locator, series: str) -> dict[str, float]:
    """The same numbers from the chart's table (the text alternative)."""
    pairs = table.locator(f'td[data-series="{series}"][data-value]').evaluate_all(
        "cs => cs.map(c => [c.closest('tr').dataset.key, c.dataset.value])"
    )
    return {key: float(value) for key, value in pairs}


def student_acts(server: Server, code: str, nickname: str, picks: list[Any]) -> str:
    """Join with a nickname, set the prompt, append each pick: a wheel index, or "other"."""
    body = {"class_code": code, "nickname": nickname}
    sid = str(server.request("POST", "/api/sessions", body)["session_id"])
    server.request("POST", f"/api/sessions/{sid}/set-prompt", {"prompt": PROMPT})
    for pick in picks:
        if pick == "other":
            server.request("POST", f"/api/sessions/{sid}/append-token", {"category": "other"})
            continue
        wheel = server.request("GET", f"/api/sessions/{sid}/next-token-probs")
        token_id = wheel["above_threshold_tokens"][pick]["token_id"]
        server.request("POST", f"/api/sessions/{sid}/append-token", {"token_id": token_id})
    return sid


def test_class_charts_show_the_apis_numbers(browser: Browser, server: Server, lang: str) -> None:
    page, watch = open_page(browser, server, reduced_motion=True, lang=lang, viewport=LAPTOP)
    page.goto(server.url + "/teacher")
    page.fill("#token", TEACHER_TOKEN)
    page.click("#sign-in")
    expect(page.locator("#classes")).to_be_visible()
    page.fill("#class-name", f"Charts {uuid.uuid4().hex[:4]}")
    page.click("#open-class-button")
    expect(page.locator("#join-box")).to_be_visible()
    code = page.locator("#join-code").inner_text().strip()
    expect(page.locator("#class-room")).to_have_attribute("data-class-code", code)

    # before anyone joined: every chart says why it has nothing to draw
    show = page.locator("#charts-show")
    expect(show).to_have_text(say(lang, "charts.show"))
    show.click()
    body = page.locator("#charts-body")
    expect(body).to_be_visible()
    expect(show).to_have_text(say(lang, "charts.refresh"))
    for chart in ("firstTokens", "students", "rounds"):
        block = body.locator(f'section[data-chart="{chart}"]')
        expect(block.locator("h4")).to_have_text(say(lang, f"charts.{chart}.title"))
        expect(block.locator(".chart-empty")).to_have_text(say(lang, f"charts.{chart}.empty"))
    expect(body.locator("svg")).to_have_count(0)
    check(page, "teacher-class-charts-empty")

    # four students: three choose first tokens on one wheel, one has no token yet
    sessions = {
        "Ana": student_acts(server, code, "Ana", [0, "other"]),
        "Bo": student_acts(server, code, "Bo", [0]),
        "Chen": student_acts(server, code, "Chen", [1, 0, 0]),
        "Dee": student_acts(server, code, "Dee", []),
    }
    # a round: two guess the model's favourite, one an unlikely word, then the reveal
    base = f"/api/teacher/classes/{code}"
    rid = server.request("POST", f"{base}/rounds", {"prompt": PROMPT}, headers=TEACHER)["round_id"]
    first = server.request("GET", f"/api/sessions/{sessions['Dee']}/next-token-probs")
    favourite = first["above_threshold_tokens"][0]["token_text"].strip()
    for name, text in (("Ana", favourite), ("Bo", favourite), ("Chen", UNLIKELY)):
        guess = {"round_id": rid, "text": text}
        server.request("POST", f"/api/sessions/{sessions[name]}/guess", guess)
    revealed = server.request("POST", f"{base}/rounds/{rid}/reveal", {}, headers=TEACHER)
    stats = server.request("GET", f"{base}/statistics", headers=TEACHER)

    # the teacher shows the class again (who joined), then refreshes its charts
    page.locator(f'#class-rows tr[data-class-code="{code}"] button').first.click()
    expect(page.locator("#room-students li .nickname")).to_have_text(list(sessions))
    show.click()
    plotted = body.locator("svg.chart-svg")
    expect(plotted).to_have_count(3)  # one wheel's first tokens, the students, one round
    for svg in plotted.all():
        assert svg.get_attribute("role") == "img"
        refs = [svg.get_attribute(a) or "" for a in ("aria-labelledby", "aria-describedby")]
        for ref in " ".join(refs).split():
            assert page.locator(f"#{ref}").inner_text().strip()

    # (a) first tokens: chosen and expected per token, as the statistics answer them
    (group,) = stats["first_tokens"]
    assert group["session_count"] == 3
    chosen = {str(t["token_id"]): float(t["observed"]) for t in group["tokens"]}
    expected = {str(t["token_id"]): t["expected"] for t in group["tokens"]}
    expected["unlisted"] = group["expected_unlisted"]
    assert bars(page, "firstTokens", "chosen") == {**chosen, "unlisted": 0.0}
    assert bars(page, "firstTokens", "expected") == expected
    first_table = body.locator('[data-chart="firstTokens"] table.chart-table')
    assert cells(first_table, "expected") == expected
    subtitle = say(
        lang,
        "charts.firstTokens.wheel",
        prompt=say(lang, "token.quoted", text=PROMPT),
        model=group["model_name"],
        temperature="1.0" if lang == "en" else "1,0",
        count=3,
    )
    expect(body.locator('[data-chart="firstTokens"] .chart-subtitle')).to_have_text(subtitle)

    # (b) each student: average probability and Other rate; Dee has no token yet
    students = {s["session_id"]: s for s in stats["students"]}
    assert [s["nickname"] for s in stats["students"]] == ["Ana", "Bo", "Chen", "Dee"]
    assert students[sessions["Ana"]]["other_count"] == 1
    with_tokens = {k: s for k, s in students.items() if s["tokens_generated"]}
    assert set(with_tokens) == {sessions[n] for n in ("Ana", "Bo", "Chen")}
    average = {k: s["average_probability"] for k, s in with_tokens.items()}
    other = {k: s["other_rate"] for k, s in with_tokens.items()}
    assert bars(page, "students", "average") == average
    assert bars(page, "students", "other") == other
    student_table = body.locator('[data-chart="students"] table.chart-table')
    expect(student_table.locator("tbody th")).to_have_text(["Ana", "Bo", "Chen", "Dee"])
    assert cells(student_table, "average") == average
    assert cells(student_table, "other") == other
    dee = student_table.locator(f'tr[data-key="{sessions["Dee"]}"] td').first
    expect(dee).to_have_text(say(lang, "charts.noTokens"))
    students_svg = body.locator('[data-chart="students"] svg')
    expect(students_svg.locator(".chart-axis-label")).to_have_text(
        [say(lang, "charts.percentAxis"), say(lang, "charts.students.category")]
    )
    ticks = students_svg.locator(".chart-tick").all_text_contents()
    assert ticks[-1].replace("\u00a0", " ") == ("100%" if lang == "en" else "100 %")

    # (c) the round: the model's probability of its top tokens against the guesses' share
    total = revealed["guess_count"]
    assert total == 3
    top = revealed["wheel"]["above_threshold_tokens"][:8]
    model = {str(t["token_id"]): t["probability"] for t in top}
    share = {str(t["token_id"]): t["guess_count"] / total for t in top}
    on_top = sum(t["guess_count"] for t in top)
    assert on_top == 2  # Ana and Bo: the favourite; Chen's word is several tokens
    shown_model = bars(page, "rounds", "model")
    shown_share = bars(page, "rounds", "guesses")
    assert math.isclose(shown_model.pop("outside"), 1 - sum(model.values()), abs_tol=1e-12)
    assert shown_share.pop("outside") == (total - on_top) / total
    assert shown_model == model and shown_share == share
    round_plot = body.locator(f'[data-chart="rounds"][data-key="{rid}"]')
    expect(round_plot.locator(".chart-subtitle")).to_have_text(
        say(lang, "charts.rounds.round", prompt=say(lang, "token.quoted", text=PROMPT), count=3)
    )
    expect(round_plot.locator("table.chart-table tbody tr")).to_have_count(len(top) + 1)
    check(page, "teacher-class-charts")

    assert watch.errors == []
    assert watch.outside == []
    page.context.close()
