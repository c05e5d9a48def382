"""The teacher's use cases on an in-memory store and a fake model."""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Iterator
from datetime import timedelta

import pytest

from tests import export_readers
from tests.fakes import FakeModels
from tests.services import maintenance_of
from tests.unit.test_service import Clock
from tokenwheel import exports
from tokenwheel.domain.errors import (
    ClassNotFound,
    InvalidCommand,
    ModelUnavailable,
    Overloaded,
    SessionNotFound,
)
from tokenwheel.domain.rules import LIST_TEXT_CHARS
from tokenwheel.inference.types import ModelUnavailableError, OverloadedError
from tokenwheel.services import AppendRequest, StudentSessions
from tokenwheel.services.teaching import SessionFilters, Teaching, TextPreview
from tokenwheel.settings import Settings
from tokenwheel.store.memory import InMemoryEventStore
from tokenwheel.store.records import EventFilter, EventRow


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def students(clock: Clock) -> StudentSessions:
    settings = Settings(session_ttl=3600, retention=86400, scheduler_enabled=False)
    return StudentSessions(
        InMemoryEventStore(), FakeModels(), settings, clock=clock, rng=random.Random(3)
    )


@pytest.fixture
def teacher(students: StudentSessions, clock: Clock) -> Teaching:
    return Teaching(students.store, students.models, students.settings, clock=clock)


def lesson(students: StudentSessions, clock: Clock, class_code: str | None = "7b") -> str:
    sid = students.create_session(class_code=class_code).session_id
    for step in (
        lambda: students.set_prompt(sid, "The cat"),
        lambda: students.append_token(sid, AppendRequest(token_text=" sat")),
        lambda: students.append_token(sid, AppendRequest(category="other", threshold=0.2)),
        lambda: students.undo(sid),
        lambda: students.set_prompt(sid, "The dog"),
        lambda: students.append_token(sid, AppendRequest(token_text=" ran")),
    ):
        clock.advance(1)
        step()
    return sid


def test_replay_reproduces_every_state_the_student_saw(
    students: StudentSessions, teacher: Teaching, clock: Clock
) -> None:
    sid = students.create_session(class_code="7b").session_id
    seen = {1: students.get_session(sid)}
    for step in (
        lambda: students.set_prompt(sid, "The cat"),
        lambda: students.append_token(sid, AppendRequest(token_text=" sat")),
        lambda: students.append_token(sid, AppendRequest(category="other")),
        lambda: students.undo(sid),
        lambda: students.set_prompt(sid, "The dog"),
        lambda: students.append_token(sid, AppendRequest(token_text=" ran")),
        lambda: students.delete_session(sid),
    ):
        clock.advance(1)
        step()
        if (record := students.store.get_record(sid)) and record.status == "active":
            view = students.get_session(sid)
            seen[view.state.version] = view
    assert sorted(seen) == [1, 2, 3, 4, 5, 6, 7]
    for version, view in seen.items():
        replayed = teacher.session_at(sid, version)
        assert replayed.view.state == view.state
        assert replayed.view.current_text == view.current_text
        assert replayed.event.version == version and replayed.latest_version == 8
    last = teacher.session_at(sid, 8)
    assert last.view.state.deleted and last.event.type == "SessionDeleted"
    for bad in (0, 9):
        with pytest.raises(InvalidCommand):
            teacher.session_at(sid, bad)


def test_detail_shows_the_whole_timeline_and_never_touches_the_session(
    students: StudentSessions, teacher: Teaching, clock: Clock
) -> None:
    sid = lesson(students, clock)
    before = students.store.get_record(sid)
    clock.advance(60)
    detail = teacher.session_detail(sid)
    assert students.store.get_record(sid) == before  # reading is not a student's request
    assert detail.view.current_text == "The dog ran"
    assert detail.record.session_id == sid and detail.record.class_code == "7b"
    types = [e.type for e in detail.timeline]
    assert types == [
        "SessionCreated",
        "SetPrompt",
        "TokenAppended",
        "TokenAppended",
        "Undone",
        "SetPrompt",
        "TokenAppended",
    ]
    sampled = detail.timeline[3]
    assert sampled.undone is True and sampled.payload["selection"] == "other"
    assert detail.timeline[2].undone is False and detail.timeline[2].in_final_text is False
    assert detail.timeline[6].in_final_text is True


def test_expired_and_deleted_sessions_stay_visible_until_purged(
    students: StudentSessions, teacher: Teaching, clock: Clock
) -> None:
    idle = lesson(students, clock)
    gone = lesson(students, clock)
    students.delete_session(gone)
    clock.advance(3601)  # idle past the TTL; the purge job has not run
    with pytest.raises(SessionNotFound):
        students.get_session(idle)
    assert teacher.session_detail(idle).record.status == "expired"
    assert teacher.session_detail(gone).record.status == "deleted"
    assert teacher.session_statistics(idle).text.tokens_generated == 1
    assert teacher.class_statistics("7b").statistics.session_count == 2
    assert maintenance_of(students).purge_expired() == (
        1,
        0,
    )  # marked expired, kept for the retention
    assert teacher.session_detail(idle).record.status == "expired"
    clock.advance(86400 + 1)
    assert maintenance_of(students).purge_expired() == (0, 2)
    for call in (
        lambda: teacher.session_detail(idle),
        lambda: teacher.session_at(gone, 1),
        lambda: teacher.session_statistics(idle),
        lambda: teacher.export_session(gone, "csv"),
    ):
        with pytest.raises(SessionNotFound):
            call()
    for call in (
        lambda: teacher.class_statistics("7b"),
        lambda: teacher.export_class("7b", "json"),
    ):
        with pytest.raises(ClassNotFound):
            call()
    assert teacher.list_sessions(SessionFilters()).total == 0


def test_list_filters_and_pages(students: StudentSessions, teacher: Teaching, clock: Clock) -> None:
    a = [lesson(students, clock, "7b") for _ in range(3)]
    b = lesson(students, clock, "8c")
    none = lesson(students, clock, None)
    students.delete_session(a[0])

    def ids(**kw: object) -> list[str]:
        return [r.session_id for r in teacher.list_sessions(SessionFilters(**kw)).sessions]  # type: ignore[arg-type]

    assert ids() == [none, b, a[2], a[1], a[0]]  # newest first
    assert ids(class_code="7b") == [a[2], a[1], a[0]]
    assert ids(class_code="7b", status="active") == [a[2], a[1]]
    assert ids(status="deleted") == [a[0]]
    assert ids(model_name="fake", page=2, page_size=2) == [a[2], a[1]]
    first = students.store.get_record(a[1])
    assert first is not None
    assert ids(created_before=first.created_at) == [a[0]]
    assert ids(created_after=first.created_at, class_code="7b") == [a[2], a[1]]
    result = teacher.list_sessions(SessionFilters(page_size=2, page=3))
    assert (result.total, len(result.sessions), result.page, result.page_size) == (5, 1, 3, 2)
    # each row says what the session is about: its prompt and its text now
    listed = teacher.list_sessions(SessionFilters(class_code="7b"))
    assert set(listed.previews) == {r.session_id for r in listed.sessions}
    for record in listed.sessions:
        preview = listed.previews[record.session_id]
        state = students.get_session(record.session_id) if record.status == "active" else None
        assert preview.prompt == "The dog"
        if state is not None:
            assert preview.current_text == state.current_text
    for bad in (
        SessionFilters(status="gone"),
        SessionFilters(page=0),
        SessionFilters(page_size=201),
        SessionFilters(class_code="7 b"),
    ):
        with pytest.raises(InvalidCommand):
            teacher.list_sessions(bad)


def test_statistics_agree_for_student_and_teacher(
    students: StudentSessions, teacher: Teaching, clock: Clock
) -> None:
    sid = lesson(students, clock)
    assert students.statistics(sid) == teacher.session_statistics(sid)
    stats = teacher.session_statistics(sid)
    assert (stats.tokens_appended, stats.undo_count, stats.prompt_count) == (3, 1, 2)
    assert stats.text.tokens_generated == 1


def test_first_tokens_of_a_class(
    students: StudentSessions, teacher: Teaching, clock: Clock
) -> None:
    for text in (" sat", " sat", " ran"):
        sid = students.create_session(class_code="7b").session_id
        students.set_prompt(sid, "The cat")
        students.append_token(sid, AppendRequest(token_text=text))
    (group,) = teacher.class_statistics("7b").statistics.first_tokens
    assert group.prompt == "The cat" and group.session_count == 3
    assert [(t.token_text, t.observed) for t in group.tokens] == [(" sat", 2), (" ran", 1)]
    for t in group.tokens:
        assert t.expected == pytest.approx(3 * t.probability)


def test_exports_read_back_into_the_same_events(
    students: StudentSessions, teacher: Teaching, clock: Clock
) -> None:
    sid = lesson(students, clock)
    other = lesson(students, clock, "8c")
    events = students.store.load(sid)
    as_csv = teacher.export_session(sid, "csv")
    assert as_csv.content_type == "text/csv; charset=utf-8"
    assert as_csv.filename == f"session-{sid[:8]}.csv"
    assert export_readers.events_from_csv(as_csv.content) == events
    as_json = teacher.export_session(sid, "json")
    assert as_json.content_type == "application/json" and as_json.filename.endswith(".json")
    records = json.loads(as_json.content)
    assert export_readers.events_from_json(records) == events
    assert {r["class_code"] for r in records} == {"7b"} and records[0]["model_name"] == "fake"
    whole = teacher.export_class("8c", "csv")
    assert whole.filename == "class-8c.csv"
    assert export_readers.events_from_csv(whole.content) == students.store.load(other)
    with pytest.raises(InvalidCommand):
        teacher.export_session(sid, "xml")


def test_text_falls_back_to_token_texts_when_the_model_is_gone(clock: Clock) -> None:
    settings = Settings(scheduler_enabled=False)
    store = InMemoryEventStore()
    students = StudentSessions(store, FakeModels(("fake", "retired")), settings, clock=clock)
    sid = students.create_session("retired").session_id
    students.set_prompt(sid, "The cat")
    students.append_token(sid, AppendRequest(token_text=" sat"))
    teacher = Teaching(store, FakeModels(("fake",)), settings, clock=clock)
    assert teacher.session_detail(sid).view.current_text == "The cat sat"


def test_reads_of_unknown_ids(teacher: Teaching) -> None:
    for sid in ("nope", "00000000-0000-4000-8000-000000000001"):
        with pytest.raises(SessionNotFound):
            teacher.session_detail(sid)
    with pytest.raises(ClassNotFound):
        teacher.class_statistics("nobody")
    with pytest.raises(InvalidCommand):
        teacher.export_class("no/such", "csv")
    empty = teacher.list_sessions(SessionFilters(created_after=teacher.clock() - timedelta(1)))
    assert empty.total == 0 and empty.sessions == []


def test_csv_survives_commas_quotes_newlines_and_unicode(
    students: StudentSessions, teacher: Teaching
) -> None:
    sid = students.create_session(class_code="7b").session_id
    students.set_prompt(sid, 'The cat, "quoted"\r\nsaid é;=1+1')
    students.append_token(sid, AppendRequest(token_text=" é"))
    content = teacher.export_session(sid, "csv").content
    assert export_readers.events_from_csv(content) == students.store.load(sid)
    header = content.splitlines()[0].split(",")
    assert header[:8] == list(exports.ENVELOPE_COLUMNS) and len(header) == len(set(header))


@pytest.mark.parametrize(
    "prompt",
    [
        '=HYPERLINK("http://x.example","click")',
        "+1+1",
        "-2",
        "@SUM(A1)",
        "\tTab",
        "\rCR",
        "'=quoted already",
        "''+twice",
        "'plain apostrophe",
        "plain",
    ],
)
def test_csv_cells_never_run_as_spreadsheet_formulas(
    students: StudentSessions, teacher: Teaching, prompt: str
) -> None:
    """A teacher opens the class CSV in a spreadsheet: a student's text that starts like
    a formula gets one leading apostrophe (shown as text, never run), and reading the
    file back removes it again, so the events come back exactly."""
    sid = students.create_session(class_code="7b").session_id
    prompt += " the cat"  # words the fake model knows
    students.set_prompt(sid, prompt)
    content = teacher.export_session(sid, "csv").content
    [row] = [r for r in csv.DictReader(io.StringIO(content, newline="")) if r["prompt"]]
    risky = prompt.lstrip("'")[:1] in ("=", "+", "-", "@", "\t", "\r")
    assert row["prompt"] == ("'" + prompt if risky else prompt)
    assert export_readers.events_from_csv(content) == students.store.load(sid)


class BusyModels(FakeModels):
    """A model side whose queue is full, and whose model can no longer load, on demand."""

    def __init__(self) -> None:
        super().__init__()
        self.busy = False
        self.gone = False

    def distribution(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.busy:
            raise OverloadedError("The model is busy.")
        return super().distribution(*args, **kwargs)

    def decode(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.gone:
            raise ModelUnavailableError("Model 'fake' is not available here.")
        return super().decode(*args, **kwargs)

    def score(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.gone:
            raise ModelUnavailableError("Model 'fake' is not available here.")
        return super().score(*args, **kwargs)


def test_model_side_errors_reach_every_use_case_as_domain_errors(clock: Clock) -> None:
    """No use case lets an inference error through (it would be a 500): a full queue is
    Overloaded (503 + Retry-After), a model that cannot load is ModelUnavailable (503)."""
    models = BusyModels()
    settings = Settings(session_ttl=3600, retention=86400, scheduler_enabled=False)
    students = StudentSessions(InMemoryEventStore(), models, settings, clock=clock)
    teacher = Teaching(students.store, models, settings, clock=clock)
    sid = students.create_session().session_id
    students.set_prompt(sid, "The cat")
    students.append_token(sid, AppendRequest(token_text=" sat"))
    models.busy = True
    with pytest.raises(Overloaded):
        students.next_token_probs(sid)
    with pytest.raises(Overloaded):
        teacher.wheel_at(sid, 2, 0.1, 1.0, 5)
    models.busy, models.gone = False, True
    with pytest.raises(ModelUnavailable):
        students.append_token(sid, AppendRequest(token_text=" on"))
    # one view builder for students and teachers: the stored token texts stand in
    assert students.get_session(sid).current_text == "The cat sat"
    assert teacher.session_detail(sid).view.current_text == "The cat sat"


def test_the_list_previews_prompts_and_texts_read_in_one_query(
    students: StudentSessions, teacher: Teaching, monkeypatch: pytest.MonkeyPatch
) -> None:
    long = "x" * 250 + "The cat"  # the fake model drops the x: a long prompt, two tokens
    sid = students.create_session(class_code="7b").session_id
    students.set_prompt(sid, long)
    students.append_token(sid, AppendRequest(token_text=" sat"))
    bare = students.create_session(class_code="7b").session_id
    reads: list[EventFilter] = []
    rows = teacher.store.event_rows

    def counted(where: EventFilter) -> Iterator[EventRow]:
        reads.append(where)
        return rows(where)

    monkeypatch.setattr(teacher.store, "event_rows", counted)

    listed = teacher.list_sessions(SessionFilters(class_code="7b"))
    assert len(reads) == 1 and set(reads[0].session_ids or ()) == {sid, bare}
    preview = listed.previews[sid]
    assert preview.prompt == long[: LIST_TEXT_CHARS - 1] + "…"
    text = students.get_session(sid).current_text
    assert preview.current_text == "…" + text[-(LIST_TEXT_CHARS - 1) :]
    assert preview.current_text.endswith(" sat") and len(preview.current_text) == LIST_TEXT_CHARS
    assert listed.previews[bare] == TextPreview(prompt=None, current_text="")
    assert teacher.list_sessions(SessionFilters(class_code="none")).previews == {}
