"""Run the purge job in a loop in its own process; print how much it purged."""

from __future__ import annotations

import json
import sys
import time

from tokenwheel.jobs import run_purge
from tokenwheel.service import SessionService
from tokenwheel.settings import Settings
from tokenwheel.store.database import make_engine
from tokenwheel.store.sql import SqlEventStore


def main() -> None:
    url, seconds = sys.argv[1], float(sys.argv[2])
    settings = Settings(database_url=url, session_ttl=60, retention=0, scheduler_enabled=False)
    engine = make_engine(url)
    service = SessionService(SqlEventStore(engine), models=None, settings=settings)  # type: ignore[arg-type]
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
    print(json.dumps(totals))


if __name__ == "__main__":
    main()
