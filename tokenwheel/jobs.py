"""The purge job, run by APScheduler in every server process, elected by a lock."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import sqlalchemy as sa
from apscheduler.schedulers.background import BackgroundScheduler

from .store.locks import purge_lock

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
        log.debug("purge ran in this process")
        return maintenance.purge_expired()


def start_purge_scheduler(
    maintenance: Maintenance, engine: sa.Engine, settings: Settings
) -> BackgroundScheduler | None:
    if settings.purge_interval <= 0:
        return None
    scheduler = BackgroundScheduler(daemon=True, timezone="UTC")
    scheduler.add_job(
        run_purge,
        "interval",
        seconds=settings.purge_interval,
        args=(maintenance, engine),
        id="purge-expired-sessions",
        max_instances=1,
        coalesce=True,
    )
    scheduler.start()
    return scheduler
