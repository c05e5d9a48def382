"""Domain errors. The API maps each to one HTTP answer in a single table."""

from __future__ import annotations


class DomainError(Exception):
    """A rule of Token Wheel refused a command. ``message`` is for people."""

    error = "Bad request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidCommand(DomainError):
    error = "Invalid request"


class SessionNotFound(DomainError):
    error = "Session not found"


class ClassNotFound(DomainError):
    """No session (left) with this class code: classes exist only through sessions."""

    error = "Class not found"


class RoundNotFound(DomainError):
    error = "Round not found"


class NotInClass(DomainError):
    """A session (which exists) that is in no class a teacher opened: it has no rounds."""

    error = "Not in a class"


class Conflict(DomainError):
    """The command clashes with the current state of a class, a round or a nickname
    (409); unlike :class:`VersionConflict`, asking again will not help."""

    error = "Conflict"


class ClassNotOpen(Conflict):
    error = "Class closed"


class NicknameTaken(Conflict):
    error = "Nickname taken"


class RoundNotOpen(Conflict):
    error = "Round not open"


class RoundNotRevealed(Conflict):
    """Its wheel is read before the teacher revealed it."""

    error = "Round not revealed"


class AlreadyGuessed(Conflict):
    error = "Already guessed"


class PromptNotSet(DomainError):
    error = "No prompt set"


class NothingToUndo(DomainError):
    error = "Cannot undo"

    def __init__(self, message: str, current_text: str | None = None) -> None:
        super().__init__(message)
        self.current_text = current_text


class GenerationLimitReached(DomainError):
    error = "Generation limit reached"


class VersionConflict(DomainError):
    """Another writer appended to the stream first. ``actual`` is the version now stored
    (None when the store could not tell)."""

    error = "Version conflict"

    def __init__(
        self, session_id: str, expected: int, actual: int | None, message: str | None = None
    ) -> None:
        super().__init__(
            message
            or f"Session changed while this request ran (expected version {expected}, "
            f"found {actual})."
        )
        self.session_id = session_id
        self.expected = expected
        self.actual = actual


class IdempotencyKeyReused(DomainError):
    """An Idempotency-Key came back with a different request than the one it was first
    used for: answering the stored response would answer a question not asked."""

    error = "Idempotency key reused"


class UnknownModel(DomainError):
    error = "Invalid model name"


class _RetryLater(DomainError):
    """The service cannot answer now; asking again after ``retry_after`` seconds may do."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ModelUnavailable(_RetryLater):
    """The model cannot load here now. A failed load is tried again after a minute (the
    model registry remembers the failure that long), hence the default."""

    error = "Model unavailable"

    def __init__(self, message: str, retry_after: int = 60) -> None:
        super().__init__(message, retry_after)


class Overloaded(_RetryLater):
    """Too many requests are waiting for the model; retry after ``retry_after`` seconds."""

    error = "Server busy"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message, retry_after)
