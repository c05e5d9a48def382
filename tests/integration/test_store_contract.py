"""One contract, every store: in-memory, SQLite, PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.threads import at_once
from tokenwheel.domain import session as d
from tokenwheel.domain.errors import SessionNotFound, VersionConflict
from tokenwheel.domain.events import Event
from tokenwheel.store import migrate
from tokenwheel.store.database import make_engine
from tokenwheel.store.memory import InMemoryEventStore
from tokenwheel.store.records import EventFilter, IdempotencyRecord, SessionQuery
from tokenwheel.store.sql import SqlEventStore

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def sid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store(request: pytest.FixtureRequest) -> Iterator[InMemoryEventStore | SqlEventStore]:
    if request.param == "memory":
        yield InMemoryEventStore()
        return
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "migrated_pg_url")
    engine = make_engine(url)
    migrate.upgrade(engine)
    yield SqlEventStore(engine)
    engine.dispose()


def choice(token_id: int) -> d.TokenFacts:
    return d.TokenFacts(
        token_id=token_id,
        token_text=f"t{token_id}",
        probability=0.5,
        log_probability=-0.69,
        category="above_threshold",
        sampled_from_other=False,
        selection="explicit",
        threshold=0.01,
        temperature=1.0,
        rank=1,
    )


def new_session(store, n: int = 1, at: datetime = T0) -> d.SessionState:  # type: ignore[no-untyped-def]
    events = d.create_session(sid(n), "m", at, class_code="c1")
    events += d.set_prompt(d.replay(events), "The cat", (1, 2), at)  # type: ignore[arg-type]
    state = d.replay(events)
    assert state is not None
    store.append(events, 0, d.summarize(state))
    return state


def append(store, state: d.SessionState, events: list[Event]) -> d.SessionState:  # type: ignore[no-untyped-def]
    after = state
    for e in events:
        after = d.apply(after, e)
    store.append(events, state.version, d.summarize(after))
    return after


def test_append_and_load_round_trip(store) -> None:  # type: ignore[no-untyped-def]
    state = new_session(store)
    state = append(store, state, d.append_token(state, choice(5), T0 + timedelta(seconds=1), 9))
    loaded = store.load(sid(1))
    assert [e.version for e in loaded] == [1, 2, 3]
    assert d.replay(loaded) == state
    assert loaded[-1].occurred_at == T0 + timedelta(seconds=1)
    assert loaded[-1].occurred_at.tzinfo is not None
    record = store.get_record(sid(1))
    assert (record.version, record.generated_count, record.status, record.class_code) == (
        3,
        1,
        "active",
        "c1",
    )
    assert store.load(sid(1), up_to_version=2) == loaded[:2]
    assert store.load(sid(1), after_version=1) == loaded[1:]
    assert store.load(sid(1), after_version=1, up_to_version=2) == loaded[1:2]
    assert store.load(sid(1), after_version=3) == []
    assert store.load(sid(99)) == [] and store.get_record(sid(99)) is None


def test_stale_expected_version_is_a_conflict_and_stores_nothing(store) -> None:  # type: ignore[no-untyped-def]
    state = new_session(store)
    append(store, state, d.append_token(state, choice(5), T0, 9))
    stale = d.append_token(state, choice(6), T0, 9)  # decided on version 2
    with pytest.raises(VersionConflict):
        store.append(stale, state.version, d.summarize(d.apply(state, stale[0])))
    with pytest.raises(VersionConflict):  # a creation over an existing stream
        store.append(d.create_session(sid(1), "m", T0), 0, d.summarize(state))
    assert [e.version for e in store.load(sid(1))] == [1, 2, 3]
    assert store.get_record(sid(1)).version == 3


def test_multi_event_append_is_atomic(store) -> None:  # type: ignore[no-untyped-def]
    state = new_session(store)
    first = d.append_token(state, choice(5), T0, 9)
    mid = d.apply(state, first[0])
    second = d.append_token(mid, choice(6), T0, 9)
    # a batch whose second event collides (version 3 twice) is refused before any write
    clash = [first[0], second[0].__class__(**{**second[0].__dict__, "version": 3})]
    with pytest.raises((VersionConflict, ValueError)):
        store.append(clash, state.version, d.summarize(mid))
    assert [e.version for e in store.load(sid(1))] == [1, 2]
    both = append(store, state, first + second)
    assert [e.version for e in store.load(sid(1))] == [1, 2, 3, 4]
    assert store.get_record(sid(1)).generated_count == len(both.generated) == 2


def test_a_write_failing_late_rolls_back_the_whole_append(store) -> None:  # type: ignore[no-untyped-def]
    """The last write of an append (its idempotency key) fails after the events and the
    index row were written: the database must take all of it back."""
    state = new_session(store)
    key = IdempotencyRecord(
        session_id=sid(1),
        idempotency_key="k-1",
        method_path="POST /append-token",
        request_hash="h",
        result_session_id=sid(1),
        result_version=2,
        receipt={"ok": True},
        created_at=T0,
    )
    first = d.append_token(state, choice(5), T0, 9)
    after_first = d.apply(state, first[0])
    store.append(first, state.version, d.summarize(after_first), key)
    batch = d.append_token(after_first, choice(6), T0, 9)
    after = d.apply(after_first, batch[0])
    batch += d.undo(after, T0)
    after = d.apply(after, batch[-1])
    with pytest.raises(VersionConflict):  # the key is stored already
        store.append(batch, after_first.version, d.summarize(after), key)
    assert [e.version for e in store.load(sid(1))] == [1, 2, 3]
    record = store.get_record(sid(1))
    assert (record.version, record.generated_count, record.undo_count) == (3, 1, 0)
    assert store.get_idempotency(sid(1), "k-1").receipt == {"ok": True}
    store.drop_idempotency(sid(1), "k-1")  # a key past its window
    assert store.get_idempotency(sid(1), "k-1") is None
    store.append(batch, after_first.version, d.summarize(after), key)  # now it goes in
    assert [e.version for e in store.load(sid(1))] == [1, 2, 3, 4, 5]


def test_appends_to_an_expired_or_purged_session_are_refused(store) -> None:  # type: ignore[no-untyped-def]
    """The service checks a session is active before deciding, but the purge job may
    expire or delete it in between: the append itself must refuse, store nothing, and
    never leave an event whose session the index no longer knows."""
    state = new_session(store)
    late = d.append_token(state, choice(5), T0, 9)
    store.expire_idle(T0 + timedelta(hours=2), 60)  # expired while the request ran
    with pytest.raises(SessionNotFound):
        store.append(late, state.version, d.summarize(d.apply(state, late[0])))
    assert [e.version for e in store.load(sid(1))] == [1, 2]
    store.purge(T0 + timedelta(hours=3))  # and purged
    with pytest.raises(SessionNotFound):
        store.append(late, state.version, d.summarize(d.apply(state, late[0])))
    assert store.load(sid(1)) == [] and store.get_record(sid(1)) is None


def test_threads_racing_on_one_session_lose_and_duplicate_nothing(store) -> None:  # type: ignore[no-untyped-def]
    new_session(store)
    successes: list[int] = []
    conflicts = 0
    lock = threading.Lock()

    def worker(n: int) -> None:
        nonlocal conflicts
        for i in range(6):
            while True:
                state = d.replay(store.load(sid(1)))
                assert state is not None
                events = d.append_token(state, choice(n * 100 + i), T0, 10_000)
                try:
                    append(store, state, events)
                except VersionConflict:
                    with lock:
                        conflicts += 1
                    continue
                with lock:
                    successes.append(events[0].version)
                break

    at_once(8, worker, timeout=120)
    versions = [e.version for e in store.load(sid(1))]
    assert versions == list(range(1, 2 + 48 + 1))
    assert sorted(successes) == list(range(3, 51))
    final = d.replay(store.load(sid(1)))
    assert final is not None and len(final.generated) == 48
    assert store.get_record(sid(1)).version == 50


def test_expire_and_purge(store) -> None:  # type: ignore[no-untyped-def]
    old = new_session(store, 1, T0)
    new_session(store, 2, T0 + timedelta(minutes=50))
    deleted = new_session(store, 3, T0)
    append(store, deleted, d.delete_session(deleted, T0 + timedelta(minutes=1)))
    now = T0 + timedelta(hours=1, minutes=1)
    store.touch(sid(2), now)
    assert store.expire_idle(now, 3600) == 1  # only session 1
    assert store.get_record(sid(1)).status == "expired"
    assert store.get_record(sid(3)).status == "deleted"
    assert store.get_record(sid(2)).last_accessed == now
    # nothing expired before the cutoff yet
    assert store.purge(T0) == 0
    assert store.purge(now, batch_size=1) == 2  # 1 and 3, one per batch
    assert store.purge(now) == 0  # idempotent
    assert store.load(sid(1)) == [] and store.get_record(sid(3)) is None
    assert store.get_record(sid(2)) is not None and old.version == 2


def test_touch_ignores_expired_sessions(store) -> None:  # type: ignore[no-untyped-def]
    new_session(store, 1, T0)
    store.expire_idle(T0 + timedelta(hours=2), 3600)
    store.touch(sid(1), T0 + timedelta(hours=3))
    record = store.get_record(sid(1))
    assert record.status == "expired" and record.last_accessed == T0


def key_record(n: int, key: str, at: datetime = T0) -> IdempotencyRecord:
    return IdempotencyRecord(
        session_id=sid(n),
        idempotency_key=key,
        method_path=f"POST /api/sessions/{sid(n)}/append-token",
        request_hash="ab" * 32,
        result_session_id=sid(n),
        result_version=3,
        receipt={"draw": 0.25, "wedge": "token", "text": "The cat é", "list": [{"a": 1}]},
        created_at=at,
    )


def test_idempotency_record_is_stored_with_the_events(store) -> None:  # type: ignore[no-untyped-def]
    state = new_session(store)
    events = d.append_token(state, choice(5), T0, 9)
    after = d.apply(state, events[0])
    store.append(events, state.version, d.summarize(after), key_record(1, "k1"))
    assert store.get_idempotency(sid(1), "k1") == key_record(1, "k1")
    assert store.get_idempotency(sid(1), "k2") is None
    assert store.get_idempotency(sid(2), "k1") is None
    # the same key again, even at the right version, stores nothing: a retry can never
    # add a second event
    again = d.append_token(after, choice(6), T0, 9)
    with pytest.raises(VersionConflict):
        store.append(
            again, after.version, d.summarize(d.apply(after, again[0])), key_record(1, "k1")
        )
    # a stale append does not store its key either
    with pytest.raises(VersionConflict):
        store.append(events, state.version, d.summarize(after), key_record(1, "k3"))
    assert store.get_idempotency(sid(1), "k3") is None
    assert [e.version for e in store.load(sid(1))] == [1, 2, 3]
    assert store.get_record(sid(1)).version == 3


def test_purge_removes_idempotency_records(store) -> None:  # type: ignore[no-untyped-def]
    for n in (1, 2):
        at = T0 + timedelta(hours=n)
        state = new_session(store, n, at)
        events = d.append_token(state, choice(5), at, 9)
        store.append(
            events, state.version, d.summarize(d.apply(state, events[0])), key_record(n, "k", at)
        )
    assert store.expire_idle(T0 + timedelta(hours=2, minutes=30), 3600) == 1  # session 1
    assert store.purge(T0 + timedelta(hours=3)) == 1
    assert store.get_idempotency(sid(1), "k") is None
    assert store.get_idempotency(sid(2), "k") is not None
    assert store.purge_idempotency(T0 + timedelta(hours=2)) == 0  # created exactly then
    assert store.purge_idempotency(T0 + timedelta(hours=2, seconds=1)) == 1
    assert store.get_idempotency(sid(2), "k") is None
    store.ping()


def test_sqlite_runs_in_wal_mode(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    engine.dispose()


def test_sqlite_write_transactions_begin_immediate(sqlite_url: str) -> None:
    """A write transaction holds the write lock from its first statement: a second
    writer waits (busy timeout) instead of failing later with 'database is locked'."""
    engine = make_engine(sqlite_url)
    migrate.upgrade(engine)
    statements: list[str] = []
    sa.event.listen(
        engine, "before_cursor_execute", lambda conn, cur, stmt, *a: statements.append(stmt)
    )
    store = SqlEventStore(engine)
    new_session(store)
    assert "BEGIN IMMEDIATE" in statements
    engine.dispose()


def created(store, n: int, at: datetime, class_code: str | None, model: str = "m") -> None:  # type: ignore[no-untyped-def]
    events = d.create_session(sid(n), model, at, class_code=class_code)
    store.append(events, 0, d.summarize(d.replay(events)))  # type: ignore[arg-type]


def test_list_sessions_filters_pages_and_orders_newest_first(store) -> None:  # type: ignore[no-untyped-def]
    for n in range(1, 8):
        created(store, n, T0 + timedelta(minutes=n), "c1" if n % 2 else "c2", "m" if n < 6 else "x")
    gone = d.replay(store.load(sid(3)))
    append(store, gone, d.delete_session(gone, T0 + timedelta(minutes=10)))
    now = T0 + timedelta(minutes=62, seconds=30)  # TTL 1 h: sessions 1 and 2 idle too long
    store.expire_idle(T0 + timedelta(minutes=61, seconds=30), 3600)  # the job marked 1
    query = SessionQuery(idle_before=now - timedelta(hours=1))

    def ids(**kw) -> list[int]:  # type: ignore[no-untyped-def]
        page = store.list_sessions(replace(query, **kw))
        return [int(r.session_id[-3:]) for r in page.records]

    assert ids() == [7, 6, 5, 4, 3, 2, 1]
    assert ids(class_code="c1") == [7, 5, 3, 1]
    assert ids(model_name="x") == [7, 6]
    assert ids(status="deleted") == [3]
    assert ids(status="expired") == [2, 1]  # 2 is idle but not yet marked by the job
    assert ids(status="active") == [7, 6, 5, 4]
    assert ids(
        created_after=T0 + timedelta(minutes=2), created_before=T0 + timedelta(minutes=5)
    ) == [
        4,
        3,
        2,
    ]
    assert ids(limit=3) == [7, 6, 5] and ids(limit=3, offset=6) == [1]
    page = store.list_sessions(replace(query, class_code="c1", limit=2, offset=1))
    assert page.total == 4 and [r.session_id for r in page.records] == [sid(5), sid(3)]
    assert store.list_sessions(replace(query, class_code="none")).total == 0


def test_event_rows_in_writing_order_with_class_and_model(store) -> None:  # type: ignore[no-untyped-def]
    one = new_session(store, 1, T0)
    created(store, 2, T0 + timedelta(minutes=1), "c2", "x")
    append(store, one, d.append_token(one, choice(5), T0 + timedelta(minutes=2), 9))
    rows = list(store.event_rows(EventFilter()))
    assert [(r.event.session_id[-1], r.event.version) for r in rows] == [
        ("1", 1),
        ("1", 2),
        ("2", 1),
        ("1", 3),
    ]
    assert [r.id for r in rows] == sorted(r.id for r in rows) and len({r.id for r in rows}) == 4
    assert [r.event for r in rows if r.event.session_id == sid(1)] == store.load(sid(1))
    assert {(r.class_code, r.model_name) for r in rows if r.event.session_id == sid(2)} == {
        ("c2", "x")
    }
    assert [r.event.version for r in store.event_rows(EventFilter(session_id=sid(1)))] == [1, 2, 3]
    some = store.event_rows(EventFilter(session_ids=(sid(2), sid(7))))
    assert [(r.event.session_id, r.event.version) for r in some] == [(sid(2), 1)]
    assert list(store.event_rows(EventFilter(session_ids=()))) == []
    assert [r.event.session_id for r in store.event_rows(EventFilter(class_code="c2"))] == [sid(2)]
    since = store.event_rows(EventFilter(since=T0 + timedelta(minutes=1)))
    assert [(r.event.session_id, r.event.version) for r in since] == [(sid(2), 1), (sid(1), 3)]


def test_purged_sessions_leave_no_rows_or_listing(store) -> None:  # type: ignore[no-untyped-def]
    new_session(store, 1, T0)
    new_session(store, 2, T0)
    store.expire_idle(T0 + timedelta(hours=2), 3600)
    store.touch(sid(2), T0)  # expired sessions are not revived
    store.purge(T0 + timedelta(hours=2))
    assert list(store.event_rows(EventFilter())) == []
    assert store.list_sessions(SessionQuery(idle_before=T0)).total == 0


# Text PostgreSQL cannot hold (U+0000 in JSONB or a text column), text that starts with
# the store's marker (U+FDD0), and plain text around them: every store gives back what
# it was given.
AWKWARD_TEXTS = [
    "\x00",
    "a\x00b",
    "\x00\x00 \\u0000",
    "\ufdd0",
    '\ufdd0"a"',
    "\ufdd0\x00",
    "x\ufdd0",
    "\\u0000",
    "\U0001f600\x01\x1f\x7f",
]


@pytest.mark.parametrize("text", AWKWARD_TEXTS, ids=repr)
def test_any_text_round_trips_through_every_store(store, text: str) -> None:  # type: ignore[no-untyped-def]
    events = d.create_session(sid(1), "m", T0, class_code="c1")
    events += d.set_prompt(d.replay(events), f"The {text} cat", (1, 0, 2), T0)  # type: ignore[arg-type]
    state = d.replay(events)
    assert state is not None
    store.append(events, 0, d.summarize(state))
    token = replace(choice(0), token_text=text)
    state = append(store, state, d.append_token(state, token, T0 + timedelta(seconds=1), 9))
    record = IdempotencyRecord(
        session_id=sid(1),
        idempotency_key="k1",
        method_path="POST /x",
        request_hash="h",
        result_session_id=sid(1),
        result_version=3,
        receipt={"wedge": text, "draw": 0.5},
        created_at=T0,
    )
    state = append(store, state, d.undo(state, T0 + timedelta(seconds=2)))
    store.drop_idempotency(sid(1), "k1")
    loaded = store.load(sid(1))
    assert d.replay(loaded) == state
    assert loaded[1].prompt == f"The {text} cat"  # type: ignore[attr-defined]
    assert loaded[2].token_text == text  # type: ignore[attr-defined]
    exported = [row.event for row in store.event_rows(EventFilter(session_id=sid(1)))]
    assert exported == loaded
    after = d.apply(state, d.append_token(state, token, T0 + timedelta(seconds=3), 9)[0])
    store.append(
        d.append_token(state, token, T0 + timedelta(seconds=3), 9),
        state.version,
        d.summarize(after),
        replace(record, result_version=after.version),
    )
    stored = store.get_idempotency(sid(1), "k1")
    assert stored is not None and stored.receipt == {"wedge": text, "draw": 0.5}


@pytest.mark.parametrize("text", ["a\x00b", "\x00", "\ufdd0m"], ids=repr)
def test_lookups_with_awkward_text_find_nothing_and_never_fail(store, text: str) -> None:  # type: ignore[no-untyped-def]
    new_session(store)
    now = T0 + timedelta(seconds=5)
    for query in (
        SessionQuery(idle_before=now, model_name=text),
        SessionQuery(idle_before=now, class_code=text),
    ):
        page = store.list_sessions(query)
        assert page.records == [] and page.total == 0
    assert store.get_record(text) is None
    assert store.load(text) == []
    assert store.get_idempotency(text, text) is None
    assert list(store.event_rows(EventFilter(session_id=text))) == []
    assert list(store.event_rows(EventFilter(class_code=text))) == []
