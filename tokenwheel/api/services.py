"""The services this app was built with (``create_app`` puts them in ``app.extensions``)."""

from __future__ import annotations

from typing import cast

from flask import current_app

from tokenwheel.services import (
    Classroom,
    Lab,
    Maintenance,
    Rounds,
    StudentSessions,
    Teaching,
    TextScoring,
)


def student_sessions() -> StudentSessions:
    return cast(StudentSessions, current_app.extensions["tokenwheel.sessions"])


def teaching() -> Teaching:
    return cast(Teaching, current_app.extensions["tokenwheel.teaching"])


def maintenance() -> Maintenance:
    return cast(Maintenance, current_app.extensions["tokenwheel.maintenance"])


def lab() -> Lab:
    return cast(Lab, current_app.extensions["tokenwheel.lab"])


def scoring() -> TextScoring:
    return cast(TextScoring, current_app.extensions["tokenwheel.scoring"])


def classroom() -> Classroom:
    return cast(Classroom, current_app.extensions["tokenwheel.classroom"])


def rounds() -> Rounds:
    return cast(Rounds, current_app.extensions["tokenwheel.rounds"])
