"""The analyst views on SQLite and PostgreSQL agree with the Python statistics and timeline."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from tests.streams import T0, A, B, C, D, E, F, build, extend, sid
from tokenwheel.domain import session as d
from tokenwheel.domain.events import Event, payload_of
from tokenwheel.domain.statistics import session_statistics, timeline
from tokenwheel.store import migrate
from tokenwheel.store.database import make_engine
from tokenwheel.store.sql import SqlEventStore

ROOT = Path(__file__).resolve().parents[2]


def docs_query(marker: str) -> str:
    """The SQL block of docs/events.md that contains ``marker``, verbatim."""
    blocks = re.findall(r"```sql\n(.*?)```", (ROOT / "docs" / "events.md").read_text(), re.S)
    (block,) = [b for b in blocks if marker in b]
    return block


# Run as written in docs/events.md, on both databases (the class there is 7b).
OTHER_IN_CLASS = docs_query("pick Other in class")


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


def store_streams(engine: sa.Engine, *streams: list[Event]) -> SqlEventStore:
    store = SqlEventStore(engine)
    for events in streams:
        state = d.replay(events)
        assert state is not None
        store.append(events, 0, d.summarize(state))
    return store


def rows(engine: sa.Engine, sql: str, **params: object) -> list[dict[str, object]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(sql), params).mappings()]


def test_views_exist_and_drop_with_a_downgrade(engine: sa.Engine) -> None:
    assert {"token_events", "session_summaries"} <= set(sa.inspect(engine).get_view_names())
    migrate.check(engine)  # views are not tables: no drift
    config = migrate.alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0001")
    assert not {"token_events", "session_summaries"} & set(sa.inspect(engine).get_view_names())
    migrate.upgrade(engine)
    assert {"token_events", "session_summaries"} <= set(sa.inspect(engine).get_view_names())


def test_token_events_match_the_timeline(engine: sa.Engine) -> None:
    one = build(1, "The cat", A, B, None, C, "The dog", D, E, F)
    two = build(2, "The cat", D, None, E, model="x", class_code=None)
    store_streams(engine, one, two)
    got = rows(engine, "SELECT * FROM token_events ORDER BY event_id")
    expected = [
        (events[0].session_id, entry)
        for events in (one, two)
        for entry in timeline(events)
        if entry.type == "TokenAppended"
    ]
    assert len(got) == len(expected) == 8
    for row, (session_id, entry) in zip(got, expected, strict=True):
        p = entry.payload
        assert row["session_id"] == session_id and row["version"] == entry.version
        assert row["class_code"] == ("c1" if session_id == sid(1) else None)
        assert row["model_name"] == ("m" if session_id == sid(1) else "x")
        for key in ("token_id", "token_text", "category", "selection", "rank"):
            assert row[key] == p[key], key
        for key in ("probability", "log_probability", "temperature", "threshold"):
            assert row[key] == p[key], key  # floats survive JSON exactly
        assert row["sampled_from_other"] == int(p["sampled_from_other"])
        for key in ("other_total_probability", "other_token_count", "selected_token_rank"):
            assert row[key] == p[key], key  # typed numbers for Other tokens, else null
        assert row["undone"] == int(bool(entry.undone))
        assert row["in_text"] == int(bool(entry.in_final_text))
        cleared = not entry.undone and not entry.in_final_text
        assert row["prompt_reset"] == int(cleared)
        assert row["undone"] + row["prompt_reset"] + row["in_text"] == 1  # one fate each
    assert [r["prompt_version"] for r in got[:6]] == [2, 2, 2, 7, 7, 7]
    # B (v4) was undone before the reset at v7: undone, not also counted as reset
    b = next(r for r in got if r["session_id"] == sid(1) and r["version"] == 4)
    assert (b["undone"], b["prompt_reset"], b["in_text"]) == (1, 0, 0)
    assert sum(r["prompt_reset"] for r in got) == 2  # A and C


def test_session_summaries_match_the_statistics(engine: sa.Engine) -> None:
    streams = (
        build(1, "The cat", A, B, None, C, "The dog", D, E, F),
        build(2, "The cat", D, None, E, model="x", class_code=None),
        build(3),  # no prompt, no tokens
    )
    store_streams(engine, *streams)
    got = {r["session_id"]: r for r in rows(engine, "SELECT * FROM session_summaries")}
    assert set(got) == {sid(1), sid(2), sid(3)}
    for events in streams:
        stats = session_statistics(events)
        row = got[stats.session_id]
        text = stats.text
        assert (row["class_code"], row["model_name"], row["status"], row["prompt"]) == (
            stats.class_code,
            stats.model_name,
            "active",
            stats.prompt,
        )
        assert row["event_count"] == len(events)
        assert (row["prompt_count"], row["tokens_appended"], row["undo_count"]) == (
            stats.prompt_count,
            stats.tokens_appended,
            stats.undo_count,
        )
        assert (row["tokens_generated"], row["other_count"], row["other_sampled_count"]) == (
            text.tokens_generated,
            text.other_count,
            text.other_sampled_count,
        )
        assert row["top_choice_count"] == text.top_choice_count
        assert row["other_picks"] == stats.other_picks
        if text.average_probability is None:
            assert row["average_probability"] is None
        else:
            assert math.isclose(row["average_probability"], text.average_probability)  # type: ignore[arg-type]
        assert math.isclose(row["log_probability"], text.log_probability, abs_tol=1e-12)  # type: ignore[arg-type]


def test_how_often_did_students_pick_other_in_a_class(engine: sa.Engine) -> None:
    third = build(3, "The cat", D, E, class_code="7b")
    state = d.replay(third)
    assert state is not None
    # a fork of the third copies D and E (picked there, not again) and picks B
    fork = extend(d.fork_session(state, state, sid(4), T0), B)
    store_streams(
        engine,
        build(1, "The cat", A, B, None, C, class_code="7b"),  # B undone: it still was picked
        build(2, "The cat", E, class_code="c2"),
        third,
        fork,
    )
    (row,) = rows(engine, OTHER_IN_CLASS)
    assert (row["picks"], row["other_picks"]) == (6, 4)  # A, B, C, D, E and the fork's B
    assert math.isclose(row["other_share"], 4 / 6)  # type: ignore[arg-type]


def test_purged_sessions_leave_the_views(engine: sa.Engine) -> None:
    store = store_streams(engine, build(1, "The cat", A), build(2, "The cat", D))
    store.expire_idle(T0 + timedelta(hours=1), 60)
    assert store.purge(T0 + timedelta(hours=1)) == 2
    assert rows(engine, "SELECT * FROM token_events") == []
    assert rows(engine, "SELECT * FROM session_summaries") == []


def test_text_with_nul_reads_the_same_in_the_views_of_both_databases(engine: sa.Engine) -> None:
    """PostgreSQL cannot hold U+0000, so the store writes such text (and text starting
    with the marker U+FDD0) as the marker plus its JSON text, on both databases: the
    views show that form, and docs/events.md says how to read it."""
    from dataclasses import replace

    from tokenwheel.store.text import MARKER, decode_text

    nul = replace(A, token_id=190, token_text="\x00")
    store_streams(engine, build(1, "The\x00cat", nul, B))
    tokens = rows(engine, "SELECT token_text FROM token_events ORDER BY event_id")
    assert [r["token_text"] for r in tokens] == [MARKER + '"\\u0000"', B.token_text]
    (summary,) = rows(engine, "SELECT prompt FROM session_summaries")
    assert summary["prompt"] == MARKER + '"The\\u0000cat"'
    assert decode_text(str(summary["prompt"])) == "The\x00cat"


def test_token_events_show_the_sampling_rules_and_old_events_read_as_off(
    engine: sa.Engine,
) -> None:
    ruled = dataclasses.replace(A, top_k=40, top_p=0.9, min_p=0.05, sampling_probability=0.625)
    events = build(1, "The cat", ruled, B)
    store_streams(engine, events)
    # B as stored before the rules existed: its payload has none of their fields
    old = {
        k: v
        for k, v in payload_of(events[-1]).items()
        if k not in ("top_k", "top_p", "min_p", "sampling_probability")
    }
    cast = "CAST(:p AS JSONB)" if engine.dialect.name == "postgresql" else ":p"
    with engine.begin() as conn:
        conn.execute(
            sa.text(f"UPDATE events SET payload = {cast} WHERE session_id = :s AND version = :v"),
            {"p": json.dumps(old), "s": sid(1), "v": events[-1].version},
        )
    got = rows(engine, "SELECT * FROM token_events ORDER BY event_id")
    assert [(r["top_k"], r["top_p"], r["min_p"], r["sampling_probability"]) for r in got] == [
        (40, 0.9, 0.05, 0.625),
        (0, 1.0, 0.0, None),
    ]
    assert [r["token_id"] for r in got] == [A.token_id, B.token_id]
    summary = rows(engine, "SELECT tokens_appended FROM session_summaries")
    assert summary == [{"tokens_appended": 2}]


def test_session_forks_name_each_forks_parent(engine: sa.Engine) -> None:
    """Migration 0006: a fork (a stream that starts with SessionForked) and its parent."""
    assert "session_forks" in set(sa.inspect(engine).get_view_names())
    parent = build(1, "The cat", A, D, class_code="7b")
    whole = d.replay(parent)
    at = d.replay(parent[:3])
    assert whole is not None and at is not None
    fork = d.fork_session(whole, at, sid(2), T0 + timedelta(minutes=5))
    store_streams(engine, parent, fork)
    (row,) = rows(engine, "SELECT * FROM session_forks")
    assert {k: v for k, v in row.items() if k != "forked_at"} == {
        "session_id": sid(2),
        "parent_session_id": sid(1),
        "parent_version": 3,
        "class_code": "7b",
        "model_name": "m",
        "copied_token_count": 1,
    }
    config = migrate.alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0005")
    assert "session_forks" not in set(sa.inspect(engine).get_view_names())
    migrate.upgrade(engine)
    assert len(rows(engine, "SELECT * FROM session_forks")) == 1


def test_forks_are_in_token_events_and_session_summaries(engine: sa.Engine) -> None:
    """Migration 0007: a fork's copied tokens and its own picks are rows of token_events
    (copied ones marked), and its summary equals the statistics API's numbers."""
    parent = build(1, "The cat", A, B, D, class_code="7b")  # versions 3, 4, 5
    whole = d.replay(parent)
    assert whole is not None
    later = T0 + timedelta(minutes=5)
    # the fork copies A, B, D; then undoes D (a copied token), appends E and C, undoes C
    fork = extend(d.fork_session(whole, whole, sid(2), later), None, E, C, None, start=later)
    # a second fork of the first fork's version 1, whose prompt is then replaced
    at_one = d.replay(fork[:1])
    fork_state = d.replay(fork)
    assert at_one is not None and fork_state is not None
    again = d.fork_session(fork_state, at_one, sid(3), later)
    again = extend(again, "The dog", F, start=later)
    store_streams(engine, parent, fork, again)

    got = rows(
        engine,
        "SELECT * FROM token_events WHERE session_id = :s ORDER BY version, copied_from_parent",
        s=sid(2),
    )
    fates = [
        (r["token_id"], r["version"], r["copied_from_parent"], r["undone"], r["in_text"])
        for r in got
    ]
    assert sorted(fates, key=lambda f: (f[1], f[0])) == [
        (A.token_id, 1, 1, 0, 1),
        (B.token_id, 1, 1, 0, 1),
        (D.token_id, 1, 1, 1, 0),  # the undo at version 2 took the last copied token
        (E.token_id, 3, 0, 0, 1),
        (C.token_id, 4, 0, 1, 0),
    ]
    assert {(r["class_code"], r["model_name"], r["prompt_version"]) for r in got} == {
        ("7b", "m", 1)
    }
    copied_b = next(r for r in got if r["token_id"] == B.token_id)
    for key in ("probability", "log_probability", "category", "selection", "rank", "top_k"):
        assert copied_b[key] == getattr(B, key), key
    assert copied_b["sampled_from_other"] == 1
    assert copied_b["other_token_count"] == B.other_token_count

    # the second fork's copied tokens (A, B, D) were cleared by its own SetPrompt
    cleared = rows(engine, "SELECT * FROM token_events WHERE session_id = :s", s=sid(3))
    assert sorted((r["token_id"], r["prompt_reset"], r["in_text"]) for r in cleared) == [
        (A.token_id, 1, 0),
        (B.token_id, 1, 0),
        (D.token_id, 1, 0),
        (F.token_id, 0, 1),
    ]

    summaries = {r["session_id"]: r for r in rows(engine, "SELECT * FROM session_summaries")}
    assert set(summaries) == {sid(1), sid(2), sid(3)}
    assert (summaries[sid(1)]["parent_session_id"], summaries[sid(1)]["parent_version"]) == (
        None,
        None,
    )
    assert (summaries[sid(2)]["parent_session_id"], summaries[sid(2)]["parent_version"]) == (
        sid(1),
        5,
    )
    assert summaries[sid(3)]["parent_session_id"] == sid(2)
    for events in (parent, fork, again):
        stats = session_statistics(events)
        row = summaries[stats.session_id]
        assert (row["prompt"], row["prompt_count"], row["undo_count"]) == (
            stats.prompt,
            stats.prompt_count,
            stats.undo_count,
        )
        assert (row["tokens_appended"], row["other_picks"]) == (
            stats.tokens_appended,
            stats.other_picks,
        )
        text = stats.text
        assert (row["tokens_generated"], row["other_count"], row["top_choice_count"]) == (
            text.tokens_generated,
            text.other_count,
            text.top_choice_count,
        )
        assert row["other_sampled_count"] == text.other_sampled_count
        assert math.isclose(row["log_probability"], text.log_probability, abs_tol=1e-12)  # type: ignore[arg-type]
