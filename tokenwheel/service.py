"""The use cases: load a session, ask the model, decide, append events.

Every mutation follows one path (:meth:`SessionService._mutate`): replay the stream,
let a domain decision produce events, append them with the version we read as the
expected version. If another request appended first, the store raises VersionConflict
and we decide again on the new state (commands here are decided by the server, so a
retry is always safe) — unless the client named the version it decided on, in which
case the conflict is the client's to resolve. Within one process, writes to one session
take turns (a lock per session), so conflicts come only from other processes.
"""

from __future__ import annotations

import functools
import logging
import math
import random
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from tokenwheel.domain import session as domain
from tokenwheel.domain.errors import (
    IdempotencyKeyReused,
    InvalidCommand,
    ModelUnavailable,
    NothingToUndo,
    Overloaded,
    SessionNotFound,
    UnknownModel,
    VersionConflict,
)
from tokenwheel.domain.events import Event
from tokenwheel.domain.session import GeneratedToken, SessionState, TokenChoice
from tokenwheel.domain.statistics import SessionStatistics, session_statistics
from tokenwheel.inference.tokens import TokenInfo
from tokenwheel.inference.types import (
    Distribution,
    EmptyOtherError,
    InvalidTokenError,
    ModelInfo,
    ModelUnavailableError,
    OverloadedError,
    ScoredToken,
    UnknownModelError,
    WheelLanding,
)
from tokenwheel.settings import Settings
from tokenwheel.store.records import ACTIVE, EventStore, IdempotencyRecord, SessionRecord

log = logging.getLogger(__name__)

# A conflict means another process wrote first; each attempt wins about half the time
# against one busy rival, so 25 attempts make a 409 for a request without a version
# practically impossible, while a pause capped at 50 ms bounds the wait.
MAX_ATTEMPTS = 25
RETRY_PAUSE = 0.002  # seconds before the second attempt; doubles, jittered, capped
MAX_RETRY_PAUSE = 0.05
DEFAULT_THRESHOLD = 0.01
DEFAULT_TEMPERATURE = 1.0
DEFAULT_OTHER_TOP_K = 10
# Any temperature above zero works (the distribution subtracts the largest logit before
# dividing); above 10 every wheel is flat and nothing more is learned.
MAX_TEMPERATURE = 10.0
TOUCH_RESOLUTION = timedelta(seconds=1)


class LanguageModels(Protocol):
    """What the service needs from the model side (``inference.registry.ModelRegistry``;
    tests may hand in a small fake)."""

    def default_model(self) -> tuple[str, str | None]: ...
    def describe(self) -> list[ModelInfo]: ...
    def get(self, model_id: str) -> object: ...
    def loaded(self, model_id: str) -> bool: ...
    def encode_prompt(self, model_id: str, text: str) -> list[int]: ...
    def decode(self, model_id: str, ids: list[int] | tuple[int, ...]) -> str: ...
    def token_id_for_text(self, model_id: str, text: str) -> int: ...
    def token_info(self, model_id: str, token_id: int) -> TokenInfo: ...
    def max_context(self, model_id: str) -> int: ...
    def distribution(
        self,
        model_id: str,
        ids: tuple[int, ...],
        temperature: float,
        threshold: float,
        other_top_k: int,
    ) -> Distribution: ...
    def score(
        self,
        model_id: str,
        ids: tuple[int, ...],
        token_id: int,
        temperature: float,
        threshold: float,
    ) -> ScoredToken: ...
    def other_token(
        self,
        model_id: str,
        ids: tuple[int, ...],
        temperature: float,
        threshold: float,
        draw: float,
    ) -> int: ...
    def land_on_wheel(
        self,
        model_id: str,
        ids: tuple[int, ...],
        temperature: float,
        threshold: float,
        draw: float,
    ) -> WheelLanding: ...


@contextmanager
def model_work() -> Iterator[None]:
    """The model side's errors in the domain's words: a full model queue is Overloaded
    (503 with Retry-After), a model that cannot load is ModelUnavailable (503), an unknown
    name UnknownModel (400), a bad token or an empty Other wedge InvalidCommand (400)."""
    try:
        yield
    except OverloadedError as exc:
        raise Overloaded(str(exc)) from exc
    except ModelUnavailableError as exc:
        raise ModelUnavailable(str(exc)) from exc
    except UnknownModelError as exc:
        raise UnknownModel(str(exc)) from exc
    except (InvalidTokenError, EmptyOtherError) as exc:
        raise InvalidCommand(str(exc)) from exc


class DomainModels:
    """The model side seen through :func:`model_work`: every call that may load a model,
    wait for the model thread or look up a token raises domain errors only, so no use
    case can let an inference error through as a 500. Attributes pass through."""

    def __init__(self, models: LanguageModels) -> None:
        self._models = models

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._models, name)
        if not callable(value):
            return value

        models = self._models

        @functools.wraps(value)
        def call(*args: Any, **kwargs: Any) -> Any:
            with model_work():
                # looked up on each call: a method replaced later (a test's fault) is used
                return getattr(models, name)(*args, **kwargs)

        # made once per method (a session's view asks token_info for every token)
        self.__dict__[name] = call
        return call


def utcnow() -> datetime:
    return datetime.now(UTC)


R = TypeVar("R")


@dataclass(frozen=True)
class StoredResponse:
    """The first answer to a request that carried an Idempotency-Key."""

    status: int
    body: dict[str, Any]


class AlreadyApplied(Exception):
    """The request was applied before under the same Idempotency-Key: answer ``response``
    again instead of applying the request twice."""

    def __init__(self, response: StoredResponse) -> None:
        super().__init__("request already applied")
        self.response = response


@dataclass(frozen=True)
class Idempotency:
    """A client's Idempotency-Key for one request. ``request_hash`` identifies the request
    (method, path, body); ``render`` turns the use case's result into the (status, JSON
    body) the API answers, stored in the transaction that appends the events."""

    key: str
    method_path: str
    request_hash: str
    render: Callable[[Any], tuple[int, dict[str, Any]]]
    # Where the key lives: a session's keys live with the session. Creating a session has
    # no session yet: the API scopes those keys by client (``create:<hash of address>``),
    # so one client can never replay another's new session id.
    scope: str | None = None


@dataclass(frozen=True)
class Readiness:
    """``checks`` maps each check (database, model) to "ok" or what is wrong."""

    checks: dict[str, str]
    default_model: str | None

    @property
    def ready(self) -> bool:
        return all(value == "ok" for value in self.checks.values())


class SessionStates:
    """The latest replayed state of recently used sessions: a snapshot cache.

    Replaying a whole stream on every request costs time linear in its events; with the
    state at version v in memory, a request reads only the events after v (usually
    none: the index row's version says so). The events stay the truth: a state here is
    always the fold of a prefix of its stream, and a newer version in the index (another
    process wrote) is caught up by folding the events since. Bounded by count, least
    recently used out first."""

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._states: OrderedDict[str, SessionState] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session_id: str) -> SessionState | None:
        with self._lock:
            state = self._states.get(session_id)
            if state is not None:
                self._states.move_to_end(session_id)
            return state

    def put(self, state: SessionState) -> None:
        """Keep ``state`` unless a newer version of the session is kept already."""
        if self.capacity <= 0:
            return
        with self._lock:
            held = self._states.get(state.session_id)
            if held is not None and held.version > state.version:
                return
            self._states[state.session_id] = state
            self._states.move_to_end(state.session_id)
            while len(self._states) > self.capacity:
                self._states.popitem(last=False)

    def drop(self, session_id: str) -> None:
        with self._lock:
            self._states.pop(session_id, None)


class _SessionLock:
    """A lock that can be weakly referenced (``threading.Lock`` cannot), so the table of
    per-session locks forgets a session once no request holds its lock."""

    __slots__ = ("lock", "__weakref__")

    def __init__(self) -> None:
        self.lock = threading.Lock()


class TokenInfos(Mapping[int, TokenInfo]):
    """How each of a session's generated tokens is shown, looked up when an answer asks
    (the model keeps every token's description): a wheel's answer shows no history, and
    asked for none of the session's tokens."""

    def __init__(self, token_ids: tuple[int, ...], lookup: Callable[[int], TokenInfo]) -> None:
        self._ids = frozenset(token_ids)
        self._lookup = lookup

    def __getitem__(self, token_id: int) -> TokenInfo:
        if token_id not in self._ids:
            raise KeyError(token_id)
        return self._lookup(token_id)

    def __iter__(self) -> Iterator[int]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)


@dataclass(frozen=True)
class SessionView:
    """A session as the student sees it. ``token_infos`` describes each generated token
    (display text with visible whitespace, partial UTF-8, special, end of sequence)."""

    state: SessionState
    current_text: str
    last_accessed: datetime
    token_infos: Mapping[int, TokenInfo] = field(default_factory=dict)

    @property
    def session_id(self) -> str:
        return self.state.session_id


@dataclass(frozen=True)
class PromptResult:
    view: SessionView
    token_count: int


@dataclass(frozen=True)
class DistributionResult:
    view: SessionView
    distribution: Distribution


@dataclass(frozen=True)
class AppendResult:
    view: SessionView
    previous_text: str
    token: GeneratedToken


@dataclass(frozen=True)
class SpinResult(AppendResult):
    landing: WheelLanding


@dataclass(frozen=True)
class UndoResult:
    view: SessionView
    previous_text: str
    removed: GeneratedToken
    removed_info: TokenInfo


@dataclass(frozen=True)
class DeleteResult:
    session_id: str
    version: int


@dataclass(frozen=True)
class ModelsResult:
    models: list[ModelInfo]
    default_model: str
    configured_default_model: str
    default_reason: str | None


@dataclass(frozen=True)
class AppendRequest:
    """One of: ``token_id`` (optionally with agreeing ``token_text``), ``token_text``
    alone, or ``category="other"``; plus the settings that decide the recorded facts."""

    token_id: int | None = None
    token_text: str | None = None
    category: str | None = None
    threshold: float = DEFAULT_THRESHOLD
    temperature: float = DEFAULT_TEMPERATURE


@dataclass(frozen=True)
class SpinRequest:
    """The wheel's settings, and a seed that overrides the session's for this draw."""

    threshold: float = DEFAULT_THRESHOLD
    temperature: float = DEFAULT_TEMPERATURE
    seed: int | None = None


MAX_SEED = 2**63 - 1


def check_seed(seed: object) -> None:
    if seed is not None and not (
        isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= MAX_SEED
    ):
        raise InvalidCommand(f"seed must be a whole number from 0 to {MAX_SEED}.")


def parse_session_id(raw: str) -> str:
    """Session ids are canonical UUID strings; anything else is a session that does not
    exist (404), never a 500 or a database lookup with garbage."""
    try:
        parsed = uuid.UUID(raw)
    except (ValueError, AttributeError, TypeError):
        raise SessionNotFound("Session does not exist.") from None
    if str(parsed) != raw.lower():
        raise SessionNotFound("Session does not exist.")
    return str(parsed)


def check_sampling(threshold: float, temperature: float, other_top_k: int = 0) -> None:
    """The service's own guard (the API validates first; other callers may not)."""
    if not (
        isinstance(threshold, int | float) and math.isfinite(threshold) and 0 <= threshold <= 1
    ):
        raise InvalidCommand("threshold must be a number from 0 to 1.")
    if not (
        isinstance(temperature, int | float)
        and math.isfinite(temperature)
        and 0 < temperature <= MAX_TEMPERATURE
    ):
        raise InvalidCommand("temperature must be a number above 0 and at most 10.")
    if not (isinstance(other_top_k, int) and 0 <= other_top_k <= 100):
        raise InvalidCommand("other_top_k must be a whole number from 0 to 100.")


def check_context(models: LanguageModels, state: SessionState) -> None:
    """The model cannot look at more tokens than its context window holds."""
    limit = models.max_context(state.model_name)
    if len(state.token_ids) >= limit:
        raise InvalidCommand(
            f"The text has reached {state.model_name}'s context window of {limit} tokens. "
            "Undo or set a shorter prompt."
        )


class SessionService:
    def __init__(
        self,
        store: EventStore,
        models: LanguageModels,
        settings: Settings,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.models: Any = DomainModels(models)
        self.settings = settings
        self.clock = clock
        self.rng = rng or random.SystemRandom()
        self._locks: weakref.WeakValueDictionary[str, _SessionLock] = weakref.WeakValueDictionary()
        self._locks_guard = threading.Lock()
        self.states = SessionStates()

    # ------------------------------------------------------------ models

    def list_models(self) -> ModelsResult:
        default_id, reason = self.models.default_model()
        return ModelsResult(
            models=self.models.describe(),
            default_model=default_id,
            configured_default_model=self.settings.default_model,
            default_reason=reason,
        )

    def _require_model(self, model_id: str) -> None:
        self.models.get(model_id)

    # ------------------------------------------------------------ reading

    def _load(self, session_id: str) -> tuple[SessionState, SessionRecord]:
        session_id = parse_session_id(session_id)
        record = self.store.get_record(session_id)
        if record is None:
            raise SessionNotFound("Session does not exist.")
        if record.status != ACTIVE or self._idle_too_long(record):
            raise SessionNotFound("Session does not exist or has expired.")
        state = self._state_at_least(session_id, record.version)
        if state is None or state.deleted:
            raise SessionNotFound("Session does not exist.")
        return state, record

    def _state_at_least(self, session_id: str, version: int) -> SessionState | None:
        """The session's state at ``version`` or later: from the snapshot cache, caught up
        with the events since if another process wrote, else replayed from the start. (A
        cached state newer than ``version`` was appended here after the index row was
        read: it is the fold of committed events, so it stands.)"""
        state = self.states.get(session_id)
        if state is None:
            state = domain.replay(self.store.load(session_id))
        elif state.version < version:
            for event in self.store.load(session_id, after_version=state.version):
                state = domain.apply(state, event)
        if state is not None:
            self.states.put(state)
        return state

    def _idle_too_long(self, record: SessionRecord) -> bool:
        return self.clock() - record.last_accessed > timedelta(seconds=self.settings.session_ttl)

    def _text(self, state: SessionState) -> str:
        """The prompt verbatim + all generated ids decoded at once ("" before a prompt)."""
        if state.prompt is None:
            return ""
        return state.prompt + self.models.decode(state.model_name, state.generated_ids)

    def _view(self, state: SessionState, last_accessed: datetime) -> SessionView:
        return SessionView(
            state=state,
            current_text=self._text(state),
            last_accessed=last_accessed,
            token_infos=TokenInfos(
                state.generated_ids,
                functools.partial(self.models.token_info, state.model_name),
            ),
        )

    def _touch(self, record: SessionRecord) -> datetime:
        """A read moves ``last_accessed``. The index row is written only when it is a
        second or more behind (TOUCH_RESOLUTION): a class's rapid reads then cost no write
        transaction each (on SQLite every write takes the database's one write lock), and
        idle expiry stays exact to the second. The answer always carries this moment."""
        now = self.clock()
        if now - record.last_accessed >= TOUCH_RESOLUTION:
            self.store.touch(record.session_id, now)
        return now

    def get_session(self, session_id: str) -> SessionView:
        state, record = self._load(session_id)
        return self._view(state, self._touch(record))

    def statistics(self, session_id: str) -> SessionStatistics:
        """The student's own session only; the same numbers a teacher sees."""
        state, record = self._load(session_id)
        self._touch(record)
        return session_statistics(self.store.load(state.session_id, state.version))

    # ------------------------------------------------------------ writing

    def _session_lock(self, session_id: str) -> _SessionLock:
        with self._locks_guard:
            holder = self._locks.get(session_id)
            if holder is None:
                holder = self._locks[session_id] = _SessionLock()
            return holder

    def _mutate(
        self,
        session_id: str,
        decide: Callable[[SessionState], list[Event]],
        build: Callable[[SessionState, SessionState], R],
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> R:
        """Decide and append; ``build(before, after)`` makes the result.

        Without ``expected_version``, a version conflict means another process wrote
        first: decide again on the new state. With it, the client decided on that
        version, so any other version is a conflict for the client (409 with the
        current version). A request whose Idempotency-Key was applied before raises
        AlreadyApplied with the first response; the key is checked after loading, so a
        racing request with the same key either is seen here or moves the version and
        makes our append conflict.
        """
        session_id = parse_session_id(session_id)
        holder = self._session_lock(session_id)
        with holder.lock:
            for attempt in range(1, MAX_ATTEMPTS + 1):
                before, _ = self._load(session_id)
                if idempotency is not None:
                    self._check_replay(session_id, idempotency)
                if expected_version is not None and expected_version != before.version:
                    raise VersionConflict(
                        session_id,
                        expected_version,
                        before.version,
                        f"The session is at version {before.version}, not {expected_version}: "
                        "another request changed it first. Reload it and decide again.",
                    )
                new_events = decide(before)
                after = before
                for event in new_events:
                    after = domain.apply(after, event)
                result = build(before, after)
                record = self._idempotency_record(session_id, idempotency, result)
                try:
                    self.store.append(new_events, before.version, domain.summarize(after), record)
                    self.states.put(after)
                except VersionConflict:
                    log.info("version conflict on %s…, attempt %d", session_id[:8], attempt)
                    pause = min(MAX_RETRY_PAUSE, RETRY_PAUSE * 2 ** (attempt - 1))
                    time.sleep(random.uniform(0, pause))
                    continue
                return result
            current = self._load(session_id)[0].version
        raise VersionConflict(
            session_id,
            current,
            current,
            "The session kept changing while this request ran; try again.",
        )

    def _check_replay(self, session_id: str, idempotency: Idempotency) -> None:
        scope = idempotency.scope or session_id
        stored = self.store.get_idempotency(scope, idempotency.key)
        if stored is None:
            return
        window = timedelta(seconds=self.settings.idempotency_window)
        if stored.created_at < self.clock() - window:
            # past its window (the purge job had not dropped it yet): a new request
            self.store.drop_idempotency(scope, idempotency.key)
            return
        if stored.request_hash != idempotency.request_hash:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was already used for a different request. Send a new "
                "key with a new request."
            )
        raise AlreadyApplied(StoredResponse(stored.response_status, stored.response_body))

    def _idempotency_record(
        self, session_id: str, idempotency: Idempotency | None, result: object
    ) -> IdempotencyRecord | None:
        if idempotency is None:
            return None
        status, body = idempotency.render(result)
        return IdempotencyRecord(
            session_id=idempotency.scope or session_id,
            idempotency_key=idempotency.key,
            method_path=idempotency.method_path,
            request_hash=idempotency.request_hash,
            response_status=status,
            response_body=body,
            created_at=self.clock(),
        )

    def create_session(
        self,
        model_name: str | None = None,
        class_code: str | None = None,
        seed: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> SessionView:
        """A new session. With an Idempotency-Key (scoped by client), a retry returns the
        first answer and creates nothing: the key is stored in the transaction that
        stores SessionCreated, so two racing requests with one key make one session."""
        if model_name is None:
            model_name, _ = self.models.default_model()
        check_seed(seed)
        self._require_model(model_name)
        for _ in range(MAX_ATTEMPTS):
            if idempotency is not None:
                self._check_replay("", idempotency)
            now = self.clock()
            session_id = str(uuid.uuid4())
            new_events = domain.create_session(session_id, model_name, now, class_code, seed)
            state = domain.replay(new_events)
            assert state is not None
            view = self._view(state, now)
            record = self._idempotency_record(session_id, idempotency, view)
            try:
                self.store.append(new_events, 0, domain.summarize(state), record)
            except VersionConflict:
                continue  # the same key won in another request: its answer is ours
            self.states.put(state)
            log.info("created session %s… on %s", session_id[:8], model_name)
            return view
        raise VersionConflict("", 0, None, "The request kept conflicting; try again.")

    def set_prompt(
        self,
        session_id: str,
        prompt: object,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> PromptResult:
        # Checked before anything touches the model: an oversized prompt costs nothing.
        if not isinstance(prompt, str) or not prompt.strip():
            raise InvalidCommand("Prompt must be a non-empty string.")
        if len(prompt) > self.settings.max_prompt_chars:
            raise InvalidCommand(
                f"Prompt is {len(prompt)} characters long; the limit is "
                f"{self.settings.max_prompt_chars}."
            )
        token_ids: tuple[int, ...] = ()

        def decide(state: SessionState) -> list[Event]:
            nonlocal token_ids
            if not token_ids:
                token_ids = tuple(self.models.encode_prompt(state.model_name, prompt))
                limit = min(
                    self.settings.max_prompt_tokens, self.models.max_context(state.model_name) - 1
                )
                if len(token_ids) > limit:
                    raise InvalidCommand(
                        f"Prompt is {len(token_ids)} tokens long for {state.model_name}; "
                        f"the limit is {limit}."
                    )
            return domain.set_prompt(state, prompt, token_ids, self.clock())

        def build(before: SessionState, after: SessionState) -> PromptResult:
            return PromptResult(
                view=self._view(after, after.updated_at), token_count=len(token_ids)
            )

        return self._mutate(session_id, decide, build, expected_version, idempotency)

    def _check_context(self, state: SessionState) -> None:
        check_context(self.models, state)

    def next_token_probs(
        self,
        session_id: str,
        threshold: float = DEFAULT_THRESHOLD,
        temperature: float = DEFAULT_TEMPERATURE,
        other_top_k: int = DEFAULT_OTHER_TOP_K,
    ) -> DistributionResult:
        check_sampling(threshold, temperature, other_top_k)
        state, record = self._load(session_id)
        domain.require_prompt(state)
        self._check_context(state)
        distribution = self.models.distribution(
            state.model_name, state.token_ids, temperature, threshold, other_top_k
        )
        return DistributionResult(
            view=self._view(state, self._touch(record)), distribution=distribution
        )

    def _draw(self, state: SessionState, seed: int | None = None) -> float:
        """One uniform number in [0, 1) for a spin or an Other sample. With a seed (the
        request's, else the session's) it is a function of the seed and the session's
        version, so the same seed and the same actions give the same tokens anywhere."""
        seed = seed if seed is not None else state.seed
        if seed is None:
            return self.rng.random()
        # str seeds are hashed with SHA-512: stable across processes and Python builds
        return random.Random(f"{seed}:{state.version}").random()

    def _choose(self, state: SessionState, request: AppendRequest) -> TokenChoice:
        """Score the requested token at the request's settings (or sample it from the
        Other wedge): the facts the TokenAppended event records."""
        model, ids = state.model_name, state.token_ids
        selection = "explicit"
        if request.category == "other":
            token_id = self.models.other_token(
                model, ids, request.temperature, request.threshold, self._draw(state)
            )
            selection = "other"
        elif request.token_id is not None:
            token_id = request.token_id
        elif request.token_text is not None:
            token_id = self.models.token_id_for_text(model, request.token_text)
        else:
            raise InvalidCommand("Send one of token_id, token_text or category 'other'.")
        return self._token_choice(
            state,
            token_id,
            selection,
            from_other=selection == "other",
            threshold=request.threshold,
            temperature=request.temperature,
            token_text=request.token_text,
        )

    def _token_choice(
        self,
        state: SessionState,
        token_id: int,
        selection: str,
        *,
        from_other: bool,
        threshold: float,
        temperature: float,
        token_text: str | None = None,
    ) -> TokenChoice:
        scored = self.models.score(
            state.model_name, state.token_ids, token_id, temperature, threshold
        )
        if token_text is not None and scored.token_text != token_text:
            raise InvalidCommand(
                f"token_text {token_text!r} does not match token {token_id}, "
                f"whose text is {scored.token_text!r}."
            )
        in_other = scored.category == "other"
        return TokenChoice(
            token_id=scored.token_id,
            token_text=scored.token_text,
            probability=scored.probability,
            log_probability=scored.log_probability,
            category=scored.category,
            sampled_from_other=from_other,
            selection=selection,
            threshold=threshold,
            temperature=temperature,
            rank=scored.rank,
            other_total_probability=scored.other_total_probability if in_other else None,
            other_token_count=scored.other_token_count if in_other else None,
            selected_token_rank=scored.rank_in_other if in_other else None,
        )

    def append_token(
        self,
        session_id: str,
        request: AppendRequest,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> AppendResult:
        check_sampling(request.threshold, request.temperature)
        if request.category not in (None, "other"):
            raise InvalidCommand("category must be 'other' when given.")
        forms = [request.category is not None, request.token_id is not None]
        if sum(forms) > 1 or (request.category is not None and request.token_text is not None):
            raise InvalidCommand(
                "Send exactly one of: token_id (optionally with token_text), token_text, "
                "or category 'other'."
            )

        return self._append(
            session_id, lambda state: self._choose(state, request), expected_version, idempotency
        )

    def _append(
        self,
        session_id: str,
        choose: Callable[[SessionState], TokenChoice],
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
        finish: Callable[[AppendResult], R] = lambda result: result,  # type: ignore[assignment,return-value]
    ) -> R:
        """Append the token ``choose`` picks; ``finish`` shapes the result (before an
        Idempotency-Key stores it, so a replay returns exactly the first response)."""

        def decide(state: SessionState) -> list[Event]:
            domain.require_prompt(state)
            self._check_context(state)
            return domain.append_token(
                state, choose(state), self.clock(), self.settings.max_generated_tokens
            )

        def build(before: SessionState, after: SessionState) -> R:
            return finish(
                AppendResult(
                    view=self._view(after, after.updated_at),
                    previous_text=self._text(before),
                    token=after.generated[-1],
                )
            )

        return self._mutate(session_id, decide, build, expected_version, idempotency)

    def spin(
        self,
        session_id: str,
        request: SpinRequest,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> SpinResult:
        """Draw one uniform number, find where it stops the wheel, append that token."""
        check_sampling(request.threshold, request.temperature)
        check_seed(request.seed)
        landing: WheelLanding | None = None

        def choose(state: SessionState) -> TokenChoice:
            nonlocal landing
            landing = self.models.land_on_wheel(
                state.model_name,
                state.token_ids,
                request.temperature,
                request.threshold,
                self._draw(state, request.seed),
            )
            return self._token_choice(
                state,
                landing.token_id,
                "spin",
                from_other=landing.wedge == "other",
                threshold=request.threshold,
                temperature=request.temperature,
            )

        def finish(appended: AppendResult) -> SpinResult:
            assert landing is not None
            return SpinResult(appended.view, appended.previous_text, appended.token, landing)

        return self._append(session_id, choose, expected_version, idempotency, finish)

    def undo(
        self,
        session_id: str,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> UndoResult:
        def decide(state: SessionState) -> list[Event]:
            try:
                return domain.undo(state, self.clock())
            except NothingToUndo as exc:
                self.store.touch(state.session_id, self.clock())  # a refused undo is a read
                raise NothingToUndo(exc.message, self._text(state)) from None

        def build(before: SessionState, after: SessionState) -> UndoResult:
            removed = before.generated[-1]
            return UndoResult(
                view=self._view(after, after.updated_at),
                previous_text=self._text(before),
                removed=removed,
                removed_info=self.models.token_info(before.model_name, removed.token_id),
            )

        return self._mutate(session_id, decide, build, expected_version, idempotency)

    def delete_session(self, session_id: str, expected_version: int | None = None) -> DeleteResult:
        result = self._mutate(
            session_id,
            lambda s: domain.delete_session(s, self.clock()),
            lambda _, after: DeleteResult(after.session_id, after.version),
            expected_version,
        )
        log.info("deleted session %s…", result.session_id[:8])
        return result

    # ------------------------------------------------------------ maintenance

    def purge_expired(self) -> tuple[int, int]:
        """Expire idle sessions, then purge those expired longer than the retention.
        Idempotent: running it twice, or in two processes, purges each session once."""
        now = self.clock()
        expired = self.store.expire_idle(now, self.settings.session_ttl)
        purged = self.store.purge(now - timedelta(seconds=self.settings.retention))
        keys = self.store.purge_idempotency(
            now - timedelta(seconds=self.settings.idempotency_window)
        )
        if expired or purged or keys:
            log.info(
                "purge: %d sessions expired, %d purged, %d idempotency keys dropped",
                expired,
                purged,
                keys,
            )
        return expired, purged

    # ------------------------------------------------------------ health

    def readiness(self) -> Readiness:
        """Whether this process can serve students: the database answers and the
        effective default model is loaded. Never loads a model itself."""
        checks: dict[str, str] = {}
        try:
            self.store.ping()
            checks["database"] = "ok"
        except Exception:  # any driver error means the same here: not ready
            log.warning("readiness: the database did not answer", exc_info=True)
            checks["database"] = "The database did not answer."
        default_id: str | None = None
        try:
            default_id, _ = self.models.default_model()
        except ModelUnavailable as exc:
            checks["model"] = exc.message
        else:
            loaded = self.models.loaded(default_id)
            checks["model"] = "ok" if loaded else f"The default model {default_id} is loading."
        return Readiness(checks=checks, default_model=default_id)

    def warm_up(self) -> None:
        """Load the default model now. A server calls this in the background as it
        starts, so it turns ready without waiting for the first student."""
        try:
            model_id, _ = self.models.default_model()
            self.models.get(model_id)
        except (ModelUnavailable, UnknownModel) as exc:
            log.warning("warm-up: %s", exc.message)

    def rebuild_index(self) -> int:
        count = 0
        for session_id in self.store.session_ids():
            state = domain.replay(self.store.load(session_id))
            if state is None:
                continue
            record = self.store.get_record(session_id)
            last = record.last_accessed if record else state.updated_at
            self.store.rebuild_record(domain.summarize(state), last)
            count += 1
        return count
