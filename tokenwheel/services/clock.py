"""The services' clock: UTC, and injectable (every service takes ``clock=``)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
