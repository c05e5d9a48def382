"""The service layer: one module per job (DESIGN.md "Layers").

``ports`` (what the services need, as Protocols), ``gateway`` (the models in the domain's
words), ``repository`` (load with snapshots, save with the expected version, lock,
retries), ``idempotency``, ``choosing`` (how a token is chosen), ``views`` (how a session
is shown), ``sessions`` (the student's use cases), ``teaching`` (the teacher's), ``lab``
(forks and many spins), ``classes`` (classes and joining them), ``rounds`` (guess-first
rounds), ``maintenance`` (purge, index, readiness, warm-up) and
``results``.
"""

from .classes import Classroom
from .idempotency import IdempotencyKey
from .lab import Lab
from .maintenance import Maintenance
from .ports import EventStore, LanguageModels
from .results import AppendRequest, SpinRequest
from .rounds import Rounds
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
    "Maintenance",
    "Rounds",
    "SessionView",
    "SpinRequest",
    "StudentSessions",
    "Teaching",
]
