"""The purge job, run by APScheduler in every server process; the leader runs it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import sqlalchemy as sa
from apscheduler.schedulers.background import BackgroundScheduler

from .store.locks import Leadership, purge_lock

if TYPE_CHECKING:
    from .services import Maintenance
    from .settings import Settings

log = logging.getLogger(__name__)


def run_purge(maintenance: Maintenance, engine: sa.Engine) -> tuple[int, int] | None:
    """Expire and purge once, if this process wins the lock; None if another holds it."""
    with purge_lock(engine) as won:
        if not won:
            log.debug("purge skipped: another process holds the lock")
            return None
        return maintenance.purge_expired()


class ScheduledPurge:
    """The job every server process schedules. Only the process that leads (see
    ``Leadership``) runs it, so a campus of N servers purges once per interval, not N
    times; when the leader dies another process takes the lead at its next tick."""

    def __init__(self, maintenance: Maintenance, engine: sa.Engine) -> None:
        self.maintenance = maintenance
        self.engine = engine
        self.leadership = Leadership(engine)
        self.leading = False

    def __call__(self) -> tuple[int, int] | None:
        leading = self.leadership.held()
        if leading != self.leading:
            self.leading = leading
            if leading:
                log.info("this process now leads the purge (the others skip it)")
            else:
                log.warning("this process lost the lead of the purge (database connection)")
        if not leading:
            log.debug("purge skipped: another process leads it")
            return None
        result = run_purge(self.maintenance, self.engine)
        if result is not None:
            # one line per interval for the whole campus: which server purged, and that
            # it did (maintenance logs what it expired and purged when there was any)
            log.info("purge ran in this process: %d sessions expired, %d purged", *result)
        return result


def start_purge_scheduler(
    maintenance: Maintenance, engine: sa.Engine, settings: Settings
) -> BackgroundScheduler | None:
    if settings.purge_interval <= 0:
        return None
    scheduler = BackgroundScheduler(daemon=True, timezone="UTC")
    scheduler.add_job(
        ScheduledPurge(maintenance, engine),
        "interval",
        seconds=settings.purge_interval,
        id="purge-expired-sessions",
        name="purge expired sessions",
        max_instances=1,
        coalesce=True,
    )
    scheduler.start()
    return scheduler
