"""The live feed's reads on every store, and what appends do for them on PostgreSQL: ids
in commit order (an advisory lock) and a NOTIFY per append."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.integration.test_store_contract import T0, append, choice, sid
from tokenwheel.domain import session as d
from tokenwheel.store import migrate
from tokenwheel.store.database import make_engine
from tokenwheel.store.feed import SqlClassFeed
from tokenwheel.store.memory import InMemoryEventStore
from tokenwheel.store.ordering import EVENT_ORDER_LOCK_KEY, announce_append
from tokenwheel.store.records import EventFilter
from tokenwheel.store.sql import SqlEventStore
from tokenwheel.store.wakeups import PgNotifyWakeups


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def stores(request: pytest.FixtureRequest) -> Iterator[tuple[object, object]]:
    """(event store, class feed) over one database."""
    if request.param == "memory":
        memory = InMemoryEventStore()
        yield memory, memory
        return
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "migrated_pg_url")
    engine = make_engine(url)
    migrate.upgrade(engine)
    yield SqlEventStore(engine), SqlClassFeed(engine)
    engine.dispose()


def join(store, n: int, class_code: str | None) -> d.SessionState:  # type: ignore[no-untyped-def]
    events = d.create_session(sid(n), "m", T0, class_code=class_code)
    events += d.set_prompt(d.replay(events), "The cat", (1, 2), T0)  # type: ignore[arg-type]
    state = d.replay(events)
    assert state is not None
    store.append(events, 0, d.summarize(state))
    return state


def test_class_events_after_a_cursor_in_id_order(stores) -> None:  # type: ignore[no-untyped-def]
    store, feed = stores
    assert feed.latest_event_id() == 0
    a = join(store, 1, "7b")
    join(store, 2, "other")
    b = join(store, 3, "7b")
    join(store, 4, None)
    a = append(store, a, d.append_token(a, choice(5), T0 + timedelta(seconds=1), 9))
    b = append(store, b, d.append_token(b, choice(6), T0, 9))
    b = append(store, b, d.undo(b, T0))

    top = feed.latest_event_id()
    assert top == 11  # 4 sessions x 2 events, 2 appends and an undo
    rows = feed.class_events("7b", 0, top, 100)
    ids = [r.id for r in rows]
    assert ids == sorted(ids) and len(ids) == 7
    assert {r.event.session_id for r in rows} == {sid(1), sid(3)}
    assert [r.event.type for r in rows][-3:] == ["TokenAppended", "TokenAppended", "Undone"]
    assert all(r.class_code == "7b" and r.model_name == "m" for r in rows)

    # after a cursor, up to a top, at most a limit
    assert [r.id for r in feed.class_events("7b", ids[2], top, 100)] == ids[3:]
    assert [r.id for r in feed.class_events("7b", 0, ids[3], 100)] == ids[:4]
    assert [r.id for r in feed.class_events("7b", ids[0], top, 2)] == ids[1:3]
    assert feed.class_events("7b", top, top, 100) == []
    assert feed.class_events("nobody", 0, top, 100) == []


def test_event_rows_up_to_an_id(stores) -> None:  # type: ignore[no-untyped-def]
    store, feed = stores
    join(store, 1, "7b")
    middle = feed.latest_event_id()
    join(store, 2, "7b")
    rows = list(store.event_rows(EventFilter(class_code="7b", up_to_id=middle)))
    assert [r.event.session_id for r in rows] == [sid(1), sid(1)]
    assert max(r.id for r in rows) == middle


def test_an_unknown_event_type_is_left_out_not_a_failure(sqlite_url: str) -> None:
    """A newer server may store event types this one does not know: the feed skips them."""
    engine = make_engine(sqlite_url)
    migrate.upgrade(engine)
    store, feed = SqlEventStore(engine), SqlClassFeed(engine)
    join(store, 1, "7b")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO events (session_id, version, type, schema_version, payload,"
            " occurred_at) VALUES (?, 3, 'FromTheFuture', 1, '{}', '2026-11-25 10:00:00')",
            (sid(1),),
        )
    assert [r.event.type for r in feed.class_events("7b", 0, 10, 100)] == [
        "SessionCreated",
        "SetPrompt",
    ]
    engine.dispose()


# ---------------------------------------------------------------- PostgreSQL


@pytest.mark.postgres
def test_postgres_appends_commit_their_ids_in_order(pg_url: str) -> None:
    """While one append's transaction is open, another append waits for it, so an id is
    never visible before a smaller one that will still be committed."""
    engine = make_engine(pg_url)
    migrate.upgrade(engine)
    store = SqlEventStore(engine)
    first = engine.connect()
    first.begin()
    announce_append(first, "7b")  # holds the order lock, as an append in progress does
    done = threading.Event()
    worker = threading.Thread(target=lambda: (join(store, 1, "7b"), done.set()))
    worker.start()
    try:
        waiting = sa.text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND objid = :k"
        )
        with engine.connect() as probe:
            while not probe.execute(waiting, {"k": EVENT_ORDER_LOCK_KEY}).scalar():
                assert worker.is_alive() and not done.is_set()
                probe.rollback()
        assert not done.is_set()  # it waits on the lock, not yet written
    finally:
        first.rollback()
        first.close()
    worker.join(timeout=60)
    assert done.is_set()
    assert [e.version for e in store.load(sid(1))] == [1, 2]
    engine.dispose()


@pytest.mark.postgres
def test_postgres_appends_notify_their_class(pg_url: str) -> None:
    engine = make_engine(pg_url)
    migrate.upgrade(engine)
    store = SqlEventStore(engine)
    wakeups = PgNotifyWakeups(engine, fallback=1.0)
    try:
        seen = wakeups.generation("7b")
        other = wakeups.generation("8a")
        assert wakeups.listening.wait(timeout=30)
        seen = wakeups.generation("7b")
        join(store, 1, "7b")
        now = seen
        for _ in range(30):  # each wait returns after 1 s at the latest: until woken
            now = wakeups.wait("7b", seen, timeout=1.0)
            if now != seen:
                break
        assert now != seen  # only a notification changes it
        assert wakeups.generation("8a") == other  # another class was not woken
    finally:
        wakeups.close()
        engine.dispose()
