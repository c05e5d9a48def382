"""Two processes of 16 threads each append to one session at once, on SQLite and on
PostgreSQL, through the Flask app. Nothing is lost or duplicated: the stored versions
are 1..n, every response is 200 or 409, each success got its own version, and replaying
the events gives the last state a client saw."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.fakes import FakeModels
from tests.integration.workers import Workers
from tokenwheel.domain import session as d
from tokenwheel.services import StudentSessions
from tokenwheel.settings import Settings
from tokenwheel.store import migrate
from tokenwheel.store.database import make_engine
from tokenwheel.store.sql import SqlEventStore

PROCESSES = 2
PER_THREAD = 8


@pytest.mark.processes
def test_two_processes_of_sixteen_threads_race_on_one_session(
    database_url: str, tmp_path: Path
) -> None:
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    store = SqlEventStore(engine)
    service = StudentSessions(store, FakeModels(), Settings(database_url=database_url))
    session_id = service.create_session().session_id
    service.set_prompt(session_id, "The cat")

    args = [database_url, session_id, str(PER_THREAD), str(tmp_path)]
    with Workers("tests.integration.race_worker", args, PROCESSES) as workers:
        results = workers.finish("go\n", timeout=240)
    statuses = Counter(s for r in results for s in r["statuses"])
    seen = [state for r in results for state in r["seen"]]
    appended = sorted(state["version"] for state in seen if state["appended"])

    events = store.load(session_id)
    versions = [e.version for e in events]
    n = versions[-1]
    assert versions == list(range(1, n + 1))  # no gap, no duplicate
    assert set(statuses) <= {200, 409}, statuses
    # without a version the service decides again on the latest state: never a 409
    assert {s for r in results for s in r["blind"]} == {200}
    assert appended == list(range(3, n + 1))  # every stored append answered 200, once
    last = max(seen, key=lambda state: state["version"])
    replayed = d.replay(events)
    assert replayed is not None and replayed.version == last["version"] == n
    assert list(replayed.generated_ids) == last["ids"]
    assert store.get_record(session_id).version == n
    print(
        f"race on {engine.dialect.name}: {sum(statuses.values())} requests, "
        f"{statuses[200]} ok, {statuses[409]} conflicts answered 409, "
        f"{sum(r['retries'] for r in results)} conflicts retried inside, "
        f"{len(appended)} appends stored, events lost 0"
    )
    engine.dispose()
