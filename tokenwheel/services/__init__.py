"""The service layer: one module per job (DESIGN.md "Layers").

``ports`` (what the services need, as Protocols), ``gateway`` (the models in the domain's
words), ``repository`` (load with snapshots, save with the expected version, lock,
retries), ``idempotency``, ``choosing`` (how a token is chosen), ``views`` (how a session
is shown), ``sessions`` (the student's use cases), ``teaching`` (the teacher's), ``live`` (a
class's events as they are stored, for live streams), ``lab``
(forks, many spins, greedy against sampled: ``continuations``), ``scoring`` (a text's
tokens scored), ``classes`` (classes and joining them), ``rounds`` (guess-first
rounds), ``maintenance`` (purge, index, readiness, warm-up) and
``results``.
"""

from .classes import Classroom
from .idempotency import IdempotencyKey
from .lab import Lab
from .live import LiveFeeds
from .maintenance import Maintenance
from .ports import EventStore, LanguageModels
from .results import AppendRequest, SpinRequest
from .rounds import Rounds
from .scoring import TextScoring
from .sessions import StudentSessions
from .teaching import Teaching
from .views import SessionView

__all__ = [
    "AppendRequest",
    "Classroom",
    "EventStore",
    "IdempotencyKey",
    "Lab",
    "LanguageModels",
    "LiveFeeds",
    "Maintenance",
    "Rounds",
    "SessionView",
    "SpinRequest",
    "StudentSessions",
    "Teaching",
    "TextScoring",
]
