"""The student's use cases: create, prompt, ask the wheel, append, spin, undo, delete.

Each change reads top to bottom: take the session's lock, load, answer again if the
Idempotency-Key was applied before, check the client's expected version, decide (the
domain's functions), save, and build the result from the states before and after. A
save that loses a race to another process ends the attempt and the next one decides again
on the new state (``SessionRepository.attempts``).
"""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import asdict

from tokenwheel.domain import session as domain
from tokenwheel.domain.errors import NothingToUndo, VersionConflict
from tokenwheel.domain.rules import (
    DEFAULT_OTHER_TOP_K,
    DEFAULT_TEMPERATURE,
    DEFAULT_THRESHOLD,
    check_append_form,
    check_class_code,
    check_prompt,
    check_sampling_rules,
    check_seed,
    check_wheel_settings,
)
from tokenwheel.domain.session import SessionState
from tokenwheel.domain.statistics import SessionStatistics, session_statistics
from tokenwheel.inference.types import NO_RULES, SamplingRules, WheelLanding
from tokenwheel.settings import Settings

from .choosing import TokenChooser
from .clock import utcnow
from .gateway import ModelGateway
from .idempotency import Applied, IdempotencyKey, IdempotencyKeys
from .outcomes import Outcomes
from .ports import Clock, EventStore, LanguageModels
from .repository import SessionRepository, parse_session_id
from .results import (
    AppendRequest,
    AppendResult,
    Created,
    DeleteResult,
    DistributionResult,
    PromptResult,
    SpinRequest,
    SpinResult,
    UndoResult,
)
from .views import SessionView, SessionViews

log = logging.getLogger(__name__)


class StudentSessions:
    def __init__(
        self,
        store: EventStore,
        models: LanguageModels,
        settings: Settings,
        clock: Clock = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.models = ModelGateway(models, prefetch=settings.prefetch)
        self.views = SessionViews(self.models)
        self.repository = SessionRepository(store, clock, settings.session_ttl)
        self.keys = IdempotencyKeys(store, clock, settings.idempotency_window)
        self.chooser = TokenChooser(self.models, rng or random.SystemRandom())
        self.outcomes = Outcomes(self.views)

    # ------------------------------------------------------------ reading

    def get_session(self, session_id: str) -> SessionView:
        loaded = self.repository.load(session_id)
        return self.views.view(loaded.state, self.repository.touch(loaded.record))

    def statistics(self, session_id: str) -> SessionStatistics:
        """The student's own session only; the same numbers a teacher sees."""
        loaded = self.repository.load(session_id)
        self.repository.touch(loaded.record)
        state = loaded.state
        return session_statistics(self.store.load(state.session_id, state.version))

    def next_token_probs(
        self,
        session_id: str,
        threshold: float = DEFAULT_THRESHOLD,
        temperature: float = DEFAULT_TEMPERATURE,
        other_top_k: int = DEFAULT_OTHER_TOP_K,
        rules: SamplingRules = NO_RULES,
    ) -> DistributionResult:
        check_wheel_settings(threshold, temperature, other_top_k)
        check_sampling_rules(rules.top_k, rules.top_p, rules.min_p)
        loaded = self.repository.load(session_id)
        state = loaded.state
        domain.require_prompt(state)
        self.models.check_room(state.model_name, state.token_ids)
        distribution = self.models.distribution(
            state.model_name, state.token_ids, temperature, threshold, other_top_k, rules
        )
        view = self.views.view(state, self.repository.touch(loaded.record))
        return DistributionResult(view=view, distribution=distribution)

    # ------------------------------------------------------------ changes

    def create_session(
        self,
        model_name: str | None = None,
        class_code: str | None = None,
        seed: int | None = None,
        idempotency: IdempotencyKey | None = None,
    ) -> Created:
        """A new session. With an Idempotency-Key (scoped by client), a retry returns the
        first session and creates nothing: the key is stored in the transaction that
        stores SessionCreated, so two racing requests with one key make one session."""
        if model_name is None:
            model_name, _ = self.models.default_model()
        check_seed(seed)
        check_class_code(class_code)
        self.models.require(model_name)
        for attempt in self.repository.attempts(""):
            with attempt:
                applied = self.keys.applied(idempotency)
                if applied is not None:
                    state = self.repository.state_at(applied.session_id, applied.version)
                    return Created(self.views.view(state), repeated=True)
                session_id = str(uuid.uuid4())
                new_events = domain.create_session(
                    session_id, model_name, self.clock(), class_code, seed
                )
                record = self.keys.record(idempotency, session_id, version=1)
                state = self.repository.save(None, new_events, record)
                log.info("created session %s… on %s", session_id[:8], model_name)
                return Created(self.views.view(state))
        raise AssertionError("attempts() raises when it runs out")

    def set_prompt(
        self,
        session_id: str,
        prompt: object,
        expected_version: int | None = None,
        idempotency: IdempotencyKey | None = None,
    ) -> PromptResult:
        # Checked before anything touches the model: an oversized prompt costs nothing.
        text = check_prompt(prompt, self.settings.max_prompt_chars)
        session_id = parse_session_id(session_id)
        with self.repository.lock(session_id):
            for attempt in self.repository.attempts(session_id):
                with attempt:
                    before, applied = self._load_for_change(
                        session_id, expected_version, idempotency
                    )
                    if applied is not None:
                        return self.outcomes.prompted(*self._around(applied), repeated=True)
                    token_ids = self.models.prompt_ids(
                        before.model_name, text, self.settings.max_prompt_tokens
                    )
                    new_events = domain.set_prompt(before, text, token_ids, self.clock())
                    record = self.keys.record(idempotency, session_id, before.version + 1)
                    after = self.repository.save(before, new_events, record)
                    self.models.prefetch_next(after)
                    return self.outcomes.prompted(before, after)
        raise AssertionError("attempts() raises when it runs out")

    def append_token(
        self,
        session_id: str,
        request: AppendRequest,
        expected_version: int | None = None,
        idempotency: IdempotencyKey | None = None,
    ) -> AppendResult:
        check_wheel_settings(request.threshold, request.temperature)
        check_sampling_rules(request.rules.top_k, request.rules.top_p, request.rules.min_p)
        check_append_form(request.token_id, request.token_text, request.category)
        session_id = parse_session_id(session_id)
        with self.repository.lock(session_id):
            for attempt in self.repository.attempts(session_id):
                with attempt:
                    before, applied = self._load_for_change(
                        session_id, expected_version, idempotency
                    )
                    if applied is not None:
                        return self.outcomes.appended(*self._around(applied), repeated=True)
                    self._check_can_append(before)
                    facts = self.chooser.requested(before, request)
                    new_events = domain.append_token(
                        before, facts, self.clock(), self.settings.max_generated_tokens
                    )
                    record = self.keys.record(idempotency, session_id, before.version + 1)
                    after = self.repository.save(before, new_events, record)
                    self.models.prefetch_next(after)
                    return self.outcomes.appended(before, after)
        raise AssertionError("attempts() raises when it runs out")

    def spin(
        self,
        session_id: str,
        request: SpinRequest,
        expected_version: int | None = None,
        idempotency: IdempotencyKey | None = None,
    ) -> SpinResult:
        """Draw one uniform number, find where it stops the wheel, append that token."""
        check_wheel_settings(request.threshold, request.temperature)
        check_sampling_rules(request.rules.top_k, request.rules.top_p, request.rules.min_p)
        check_seed(request.seed)
        session_id = parse_session_id(session_id)
        with self.repository.lock(session_id):
            for attempt in self.repository.attempts(session_id):
                with attempt:
                    before, applied = self._load_for_change(
                        session_id, expected_version, idempotency
                    )
                    if applied is not None:
                        before, after = self._around(applied)
                        landing = WheelLanding(**applied.receipt)
                        return self.outcomes.spun(before, after, landing, repeated=True)
                    self._check_can_append(before)
                    facts, landing = self.chooser.spun(before, request)
                    new_events = domain.append_token(
                        before, facts, self.clock(), self.settings.max_generated_tokens
                    )
                    record = self.keys.record(
                        idempotency, session_id, before.version + 1, asdict(landing)
                    )
                    after = self.repository.save(before, new_events, record)
                    self.models.prefetch_next(after)
                    return self.outcomes.spun(before, after, landing)
        raise AssertionError("attempts() raises when it runs out")

    def undo(
        self,
        session_id: str,
        expected_version: int | None = None,
        idempotency: IdempotencyKey | None = None,
    ) -> UndoResult:
        session_id = parse_session_id(session_id)
        with self.repository.lock(session_id):
            for attempt in self.repository.attempts(session_id):
                with attempt:
                    before, applied = self._load_for_change(
                        session_id, expected_version, idempotency
                    )
                    if applied is not None:
                        return self.outcomes.undone(*self._around(applied), repeated=True)
                    try:
                        new_events = domain.undo(before, self.clock())
                    except NothingToUndo as exc:
                        self.store.touch(session_id, self.clock())  # a refused undo is a read
                        raise NothingToUndo(exc.message, self.views.text(before)) from None
                    record = self.keys.record(idempotency, session_id, before.version + 1)
                    after = self.repository.save(before, new_events, record)
                    self.models.prefetch_next(after)
                    return self.outcomes.undone(before, after)
        raise AssertionError("attempts() raises when it runs out")

    def delete_session(self, session_id: str, expected_version: int | None = None) -> DeleteResult:
        session_id = parse_session_id(session_id)
        with self.repository.lock(session_id):
            for attempt in self.repository.attempts(session_id):
                with attempt:
                    before, _ = self._load_for_change(session_id, expected_version, None)
                    new_events = domain.delete_session(before, self.clock())
                    after = self.repository.save(before, new_events)
                    log.info("deleted session %s…", session_id[:8])
                    return DeleteResult(after.session_id, after.version)
        raise AssertionError("attempts() raises when it runs out")

    # ------------------------------------------------------------ steps shared by changes

    def _load_for_change(
        self, session_id: str, expected_version: int | None, idempotency: IdempotencyKey | None
    ) -> tuple[SessionState, Applied | None]:
        """The session, and the earlier outcome of the request's Idempotency-Key if it
        was applied before. The key is looked up after loading, so a racing request with
        the same key either is seen here or moves the version and makes our save lose.
        A client that decided on another version than the current one gets a 409."""
        state = self.repository.load(session_id).state
        applied = self.keys.applied(idempotency, session_id)
        if applied is None and expected_version is not None and expected_version != state.version:
            raise VersionConflict(
                session_id,
                expected_version,
                state.version,
                f"The session is at version {state.version}, not {expected_version}: "
                "another request changed it first. Reload it and decide again.",
            )
        return state, applied

    def _around(self, applied: Applied) -> tuple[SessionState, SessionState]:
        """The session right before and right after a change applied earlier."""
        repository = self.repository
        return (
            repository.state_at(applied.session_id, applied.version - 1),
            repository.state_at(applied.session_id, applied.version),
        )

    def _check_can_append(self, state: SessionState) -> None:
        domain.require_prompt(state)
        self.models.check_room(state.model_name, state.token_ids)
