"""Run the purge job in a loop in its own process; print how much it purged and when.

Each run that wins the lock sleeps a little inside it (``hold`` seconds), so that two
processes without a working lock would be caught running at the same time.
"""

from __future__ import annotations

import json
import sys
import time

from tokenwheel.jobs import run_purge
from tokenwheel.services import Maintenance
from tokenwheel.settings import Settings
from tokenwheel.store.database import make_engine
from tokenwheel.store.sql import SqlEventStore


def main() -> None:
    url, seconds = sys.argv[1], float(sys.argv[2])
    hold = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    settings = Settings(database_url=url, session_ttl=60, retention=0, scheduler_enabled=False)
    engine = make_engine(url)
    service = Maintenance(SqlEventStore(engine), models=None, settings=settings)  # type: ignore[arg-type]
    runs: list[tuple[float, float]] = []
    purge = service.purge_expired

    def timed_purge() -> tuple[int, int]:
        started = time.time()
        result = purge()
        time.sleep(hold)
        runs.append((started, time.time()))
        return result

    service.purge_expired = timed_purge  # type: ignore[method-assign]
    totals = {"runs": 0, "skipped": 0, "expired": 0, "purged": 0}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = run_purge(service, engine)
        if result is None:
            totals["skipped"] += 1
        else:
            totals["runs"] += 1
            totals["expired"] += result[0]
            totals["purged"] += result[1]
        time.sleep(0.01)
    print(json.dumps({**totals, "intervals": runs}))


if __name__ == "__main__":
    main()
