"""``tokenwheel export-events``: the event table as CSV or JSON Lines, filtered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import export_readers
from tests.integration.test_views import store_streams
from tests.streams import A, B, D, E, build
from tokenwheel import cli
from tokenwheel.store import migrate
from tokenwheel.store.database import make_engine
from tokenwheel.store.records import EventFilter


@pytest.fixture
def seeded(database_url: str, monkeypatch: pytest.MonkeyPatch) -> list:  # type: ignore[type-arg]
    """Two sessions of class 7b (the second starts later) and one of 8c; returns them all."""
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    streams = [
        build(1, "The cat", A, B, None, class_code="7b"),
        build(2, "The dog", E, class_code="8c"),
        build(3, "Later", D, class_code="7b", start_minutes=60),
    ]
    store = store_streams(engine, *streams)
    rows = list(store.event_rows(EventFilter()))
    engine.dispose()
    monkeypatch.setenv("TOKENWHEEL_DATABASE_URL", database_url)
    return rows


def run(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert cli.main(["export-events", *args]) == 0
    return capsys.readouterr().out


def test_jsonl_to_stdout_reads_back_into_every_event(
    seeded: list, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[type-arg]
    lines = run(capsys, "--format", "jsonl").splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["event_id"] for r in records] == [row.id for row in seeded]
    assert export_readers.events_from_json(records) == [row.event for row in seeded]
    assert {r["class_code"] for r in records} == {"7b", "8c"}


def test_csv_filtered_by_class_and_time_to_a_file(
    seeded: list, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:  # type: ignore[type-arg]
    out = tmp_path / "events.csv"
    assert run(capsys, "--class", "7b", "--output", str(out)) == ""
    wanted = [row.event for row in seeded if row.class_code == "7b"]
    assert export_readers.events_from_csv(out.read_text(encoding="utf-8")) == wanted
    later = run(capsys, "--class", "7b", "--since", "2026-11-25T10:30")  # no zone: UTC
    assert [e.session_id[-1] for e in export_readers.events_from_csv(later)] == ["3"] * 3
    assert export_readers.events_from_csv(run(capsys, "--since", "2026-11-26")) == []
    everything = export_readers.events_from_csv(run(capsys, "--since", "2026-11-25"))
    assert everything == [row.event for row in seeded]


@pytest.mark.parametrize(
    "args", [["--since", "yesterday"], ["--class", "7 b"], ["--format", "xml"]]
)
def test_bad_arguments_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["export-events", *args])
    assert exc.value.code == 2
    assert args[0] in capsys.readouterr().err
