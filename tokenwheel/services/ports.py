"""The ports: what the services need from the outside world, as Protocols.

The event store (``tokenwheel.store``) and the language models
(``tokenwheel.inference.registry.ModelRegistry``) implement these structurally; tests hand
in fakes that do the same (``tests/fakes.py``), so the services never know which they got.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Protocol

from tokenwheel.domain.events import Event
from tokenwheel.domain.session import SessionSummary
from tokenwheel.inference.tokens import TokenInfo
from tokenwheel.inference.types import (
    NO_RULES,
    Distribution,
    ModelInfo,
    SamplingRules,
    ScoredPosition,
    ScoredToken,
    WheelLanding,
)
from tokenwheel.store.class_records import (
    ClassPage,
    ClassRecord,
    GuessRecord,
    Member,
    NicknameClaim,
    RoundRecord,
)
from tokenwheel.store.records import (
    EventFilter,
    EventRow,
    IdempotencyRecord,
    SessionPage,
    SessionQuery,
    SessionRecord,
)

Clock = Callable[[], datetime]


class LanguageModels(Protocol):
    """The model side. Every method may raise the inference errors of
    ``tokenwheel.inference.types``; the :class:`~.gateway.ModelGateway` turns them into
    domain errors."""

    def default_model(self) -> tuple[str, str | None]: ...
    def describe(self) -> list[ModelInfo]: ...
    def get(self, model_id: str) -> object: ...
    def loaded(self, model_id: str) -> bool: ...
    def encode_prompt(self, model_id: str, text: str) -> list[int]: ...
    def decode(self, model_id: str, ids: Sequence[int]) -> str: ...
    def token_id_for_text(self, model_id: str, text: str) -> int: ...
    def token_info(self, model_id: str, token_id: int) -> TokenInfo: ...
    def max_context(self, model_id: str) -> int: ...
    def distribution(
        self,
        model_id: str,
        ids: Sequence[int],
        temperature: float,
        threshold: float,
        other_top_k: int,
        rules: SamplingRules = NO_RULES,
    ) -> Distribution: ...
    def score(
        self,
        model_id: str,
        ids: Sequence[int],
        token_id: int,
        temperature: float,
        threshold: float,
        rules: SamplingRules = NO_RULES,
    ) -> ScoredToken: ...
    def other_token(
        self,
        model_id: str,
        ids: Sequence[int],
        temperature: float,
        threshold: float,
        draw: float,
        rules: SamplingRules = NO_RULES,
    ) -> int: ...
    def land_on_wheel(
        self,
        model_id: str,
        ids: Sequence[int],
        temperature: float,
        threshold: float,
        draw: float,
        rules: SamplingRules = NO_RULES,
    ) -> WheelLanding: ...
    def score_text(
        self, model_id: str, ids: Sequence[int], alternatives: int
    ) -> tuple[ScoredPosition, ...]: ...
    def prefetch(self, model_id: str, ids: Sequence[int], session: str) -> None:
        """Start the distribution after ``ids`` at low priority; returns at once."""


class EventStore(Protocol):
    """The contract ``tests/integration/test_store_contract.py`` holds every store to."""

    def append(
        self,
        events: Sequence[Event],
        expected_version: int,
        summary: SessionSummary,
        idempotency: IdempotencyRecord | None = None,
    ) -> None:
        """Append ``events`` atomically if the stream is at ``expected_version`` (0 = new);
        update the session index and store ``idempotency`` (if given) in the same
        transaction. Raises VersionConflict, also when the key is already stored."""

    def load(
        self, session_id: str, up_to_version: int | None = None, after_version: int = 0
    ) -> list[Event]:
        """The stream's events with ``after_version < version <= up_to_version``, in order
        (a caller holding the state at ``after_version`` reads only what came since)."""

    def get_record(self, session_id: str) -> SessionRecord | None: ...

    def get_idempotency(self, session_id: str, key: str) -> IdempotencyRecord | None:
        """The stored outcome of ``key`` in ``session_id``'s scope (a session id, or
        ``create:...`` for the keys of session creation)."""

    def drop_idempotency(self, session_id: str, key: str) -> None:
        """Forget one key (it outlived its window)."""

    def touch(self, session_id: str, now: datetime) -> None:
        """Record that a request touched an active session."""

    def expire_idle(self, now: datetime, ttl_seconds: float) -> int:
        """Mark active sessions idle longer than the TTL as expired; return how many."""

    def purge(self, cutoff: datetime, batch_size: int = 500) -> int:
        """Delete events, index rows and idempotency keys of sessions expired before
        ``cutoff``, a batch of whole sessions per transaction."""

    def purge_idempotency(self, cutoff: datetime) -> int:
        """Delete idempotency records created before ``cutoff``; return how many."""

    def ping(self) -> None:
        """Raise if the database does not answer."""

    def session_ids(self) -> list[str]: ...

    def list_sessions(self, query: SessionQuery) -> SessionPage:
        """Index rows matching ``query``, newest first (ties by id), one page of them."""

    def event_rows(self, where: EventFilter) -> Iterator[EventRow]:
        """Stored events matching ``where`` in the order they were written."""

    def rebuild_record(self, summary: SessionSummary, last_accessed: datetime) -> None: ...


class ClassFeed(Protocol):
    """The event log read by its global id, for live streams. Ids become visible in
    commit order (``tokenwheel/store/ordering.py``), so ``id > cursor`` misses nothing."""

    def latest_event_id(self) -> int:
        """The largest ``events.id`` committed (0 for an empty log)."""

    def class_events(
        self, class_code: str, after_id: int, up_to_id: int, limit: int
    ) -> list[EventRow]:
        """The class's events with ``after_id < id <= up_to_id``, in id order, at most
        ``limit``; event types this version does not know are left out."""


class Wakeups(Protocol):
    """When a live reader should look at the table again (never what it sends)."""

    def generation(self, class_code: str) -> int:
        """A number that changes when the class may have new events."""

    def wait(self, class_code: str, seen: int, timeout: float) -> int:
        """Block until the class's generation differs from ``seen`` or the store's own
        poll interval (at most ``timeout``) passes; the generation now."""


class ClassStore(Protocol):
    """Classes, nicknames, rounds and guesses (``tokenwheel.store.classes``). Every write
    appends events and updates the read models in one transaction, or raises."""

    def append_class(
        self,
        events: Sequence[Event],
        expected_version: int,
        record: ClassRecord,
        rounds: Sequence[RoundRecord] = (),
    ) -> None: ...

    def join(
        self,
        events: Sequence[Event],
        summary: SessionSummary,
        claim: NicknameClaim,
        idempotency: IdempotencyRecord | None = None,
    ) -> None:
        """ClassNotFound, ClassNotOpen, NicknameTaken, or VersionConflict."""

    def append_guess(
        self,
        events: Sequence[Event],
        expected_version: int,
        summary: SessionSummary,
        guess: GuessRecord,
    ) -> None:
        """RoundNotFound, RoundNotOpen (revealed before this committed), VersionConflict."""

    def purge_classes(self, closed_before: datetime, idle_before: datetime) -> int: ...
    def get_class(self, class_code: str) -> ClassRecord | None: ...
    def code_in_use(self, class_code: str) -> bool: ...
    def list_classes(self, status: str | None, limit: int, offset: int) -> ClassPage: ...
    def members(self, class_code: str) -> list[Member]: ...
    def get_round(self, round_id: str) -> RoundRecord | None: ...
    def list_rounds(self, class_code: str) -> list[RoundRecord]: ...
    def guesses(self, round_id: str) -> list[tuple[GuessRecord, str | None]]: ...


class ClassRebuild(Protocol):
    """The class read models written again from the events (``tokenwheel.store.class_rebuild``)."""

    def class_codes(self) -> list[str]:
        """The code of every class with a stream in the event log."""

    def rebuild_class(
        self,
        record: ClassRecord,
        rounds: Sequence[RoundRecord],
        claims: Sequence[NicknameClaim],
        guesses: Sequence[GuessRecord],
    ) -> None:
        """Replace the class's rows, its rounds, nicknames and guesses in one transaction."""
