"""A real app process whose APScheduler job purges every TOKENWHEEL_PURGE_INTERVAL.

Settings come from the environment, as in a server. Prints "ready", then on each line
"report" on stdin prints what its purge job did so far as JSON; any other line stops it,
and it prints the totals as JSON.
"""

from __future__ import annotations

import json
import logging
import sys

from tokenwheel import create_app


class PurgeTotals(logging.Handler):
    """Sums the purge job's own log lines (the job returns its counts to APScheduler)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.totals = {"runs": 0, "skipped": 0, "expired": 0, "purged": 0, "errors": 0}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.ERROR:
            self.totals["errors"] += 1
        elif message.startswith("purge skipped"):
            self.totals["skipped"] += 1
        elif message.startswith("purge ran"):
            self.totals["runs"] += 1
        elif message.startswith("purge:"):
            expired, purged = record.args[:2]  # type: ignore[index]
            self.totals["expired"] += int(expired)
            self.totals["purged"] += int(purged)


def main() -> None:
    totals = PurgeTotals()
    for name in ("tokenwheel", "apscheduler"):
        logger = logging.getLogger(name)
        logger.addHandler(totals)
        logger.setLevel(logging.DEBUG)
    logging.basicConfig(level=logging.WARNING)  # errors also reach stderr
    app = create_app()
    assert app.extensions["tokenwheel.scheduler"] is not None
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "report":
            break
        print(json.dumps(totals.totals), flush=True)
    app.extensions["tokenwheel.scheduler"].shutdown(wait=True)
    print(json.dumps(totals.totals), flush=True)


if __name__ == "__main__":
    main()
