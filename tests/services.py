"""Building the services the way ``create_app`` does, for tests without an app."""

from __future__ import annotations

from tokenwheel.services import Maintenance, StudentSessions


def maintenance_of(sessions: StudentSessions) -> Maintenance:
    """The maintenance service over the same store, models, settings and clock."""
    return Maintenance(
        sessions.store, sessions.models.models, sessions.settings, clock=sessions.clock
    )
