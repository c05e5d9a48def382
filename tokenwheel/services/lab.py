"""The exploration lab's use cases: fork a session, spin a wheel many times, and
compare greedy decoding with sampling.

A fork is a new session whose first event, ``SessionForked``, carries the parent's text
as it was at a version, so it replays without the parent. Sampling lays ``n`` uniform
draws on one wheel (one distribution, the same landing rule as a spin) and counts where
they stop; a comparison continues the session's text twice (``continuations``). Neither
changes nor stores anything.
"""

from __future__ import annotations

import logging
import math
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from tokenwheel.domain import session as domain
from tokenwheel.domain.errors import InvalidCommand
from tokenwheel.domain.rules import (
    DEFAULT_TEMPERATURE,
    DEFAULT_THRESHOLD,
    MAX_SEED,
    check_compare_steps,
    check_sampling_rules,
    check_seed,
    check_wheel_settings,
)
from tokenwheel.inference.types import NO_RULES, SamplingRules, SamplingSummary, TokenProbability
from tokenwheel.inference.wheel import wedge_for_draw
from tokenwheel.settings import Settings

from .clock import utcnow
from .continuations import Continuation, Continuations
from .gateway import ModelGateway
from .idempotency import IdempotencyKey, IdempotencyKeys
from .ports import Clock, EventStore, LanguageModels
from .repository import Loaded, SessionRepository
from .results import Created
from .views import SessionViews

log = logging.getLogger(__name__)

MIN_SAMPLES = 1
MAX_SAMPLES = 1000


def wheel_counts(head: Sequence[float], other_total: float, n: int, seed: int) -> list[int]:
    """Where ``n`` uniform draws from ``random.Random(seed)`` stop a wheel with ``head``
    probabilities (most likely first) and an Other wedge of ``other_total``: one count
    per head token, then the Other wedge's. Each draw lands as a spin's does
    (``wedge_for_draw``), so the counts follow the wheel's probabilities exactly. With
    sampling rules the widths are the sampling probabilities (the kept tokens
    renormalized), as on the wheel a spin draws on: a cut token has no width."""
    rng = random.Random(seed)
    counts = [0] * (len(head) + 1)
    for _ in range(n):
        counts[wedge_for_draw(head, other_total, rng.random()).index] += 1
    return counts


@dataclass(frozen=True)
class SampledToken:
    token: TokenProbability
    count: int


@dataclass(frozen=True)
class SampleResult:
    session_id: str
    version: int
    n: int
    seed: int
    threshold: float
    temperature: float
    tokens: tuple[SampledToken, ...]
    other_probability: float
    other_count: int
    other_kept_token_count: int
    other_sampling_probability: float
    sampling: SamplingSummary


@dataclass(frozen=True)
class CompareResult:
    session_id: str
    version: int
    steps: int
    seed: int
    temperature: float
    rules: SamplingRules
    greedy: Continuation
    sampled: Continuation
    current_text: str  # the session's generated text (the prompt left out)
    current_log_probability: float


class Lab:
    def __init__(
        self,
        store: EventStore,
        models: LanguageModels,
        settings: Settings,
        clock: Clock = utcnow,
        rng: random.Random | None = None,
        repository: SessionRepository | None = None,
    ) -> None:
        """``repository``: share the student sessions' (one snapshot cache and one table
        of per-session locks for both services in a process)."""
        self.store = store
        self.settings = settings
        self.clock = clock
        self.models = ModelGateway(models)
        self.views = SessionViews(self.models)
        self.repository = repository or SessionRepository(store, clock, settings.session_ttl)
        self.keys = IdempotencyKeys(store, clock, settings.idempotency_window)
        self.rng = rng or random.SystemRandom()
        self.continuations = Continuations(self.models)

    def fork(
        self,
        session_id: str,
        version: int | None = None,
        idempotency: IdempotencyKey | None = None,
        token_count: int | None = None,
    ) -> Created:
        """A new session as ``session_id`` was at ``version`` (its latest by default),
        with only its first ``token_count`` generated tokens when that is given.
        With an Idempotency-Key (scoped by client, as for creating a session) a retry
        returns the first fork and stores nothing."""
        for name, value in (("version", version), ("token_count", token_count)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise InvalidCommand(f"{name} must be a whole number.")
        for attempt in self.repository.attempts(""):
            with attempt:
                applied = self.keys.applied(idempotency)
                if applied is not None:
                    state = self.repository.state_at(applied.session_id, applied.version)
                    return Created(self.views.view(state), repeated=True)
                parent = self.repository.load(session_id).state
                at_version = parent.version if version is None else version
                if not 1 <= at_version <= parent.version:
                    raise InvalidCommand(
                        f"version must be from 1 to {parent.version}, the session's version."
                    )
                at = (
                    parent
                    if at_version == parent.version
                    else self.repository.state_at(parent.session_id, at_version)
                )
                new_id = str(uuid.uuid4())
                new_events = domain.fork_session(parent, at, new_id, self.clock(), token_count)
                record = self.keys.record(idempotency, new_id, version=1)
                state = self.repository.save(None, new_events, record)
                log.info("forked session %s… from %s…", new_id[:8], parent.session_id[:8])
                return Created(self.views.view(state))
        raise AssertionError("attempts() raises when it runs out")

    def sample(
        self,
        session_id: str,
        n: int,
        seed: int | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        temperature: float = DEFAULT_TEMPERATURE,
        rules: SamplingRules = NO_RULES,
    ) -> SampleResult:
        """``n`` spins of the session's wheel, counted, without appending any token.
        The seed used is returned (a fresh one when none is given) so it can be repeated.
        With sampling rules the spins land as a spin with those rules does: only on kept
        tokens, each as often as its renormalized probability."""
        check_wheel_settings(threshold, temperature)
        check_sampling_rules(rules.top_k, rules.top_p, rules.min_p)
        check_seed(seed)
        if isinstance(n, bool) or not isinstance(n, int) or not MIN_SAMPLES <= n <= MAX_SAMPLES:
            raise InvalidCommand(f"n must be a whole number from {MIN_SAMPLES} to {MAX_SAMPLES}.")
        loaded = self._with_prompt(session_id)
        state = loaded.state
        wheel = self.models.distribution(
            state.model_name, state.token_ids, temperature, threshold, 0, rules
        )
        used = self._seed(seed)
        head, other = wheel.above_threshold_tokens, wheel.other_category
        widths = [t.sampling_probability for t in head]
        counts = wheel_counts(widths, other.sampling_probability, n, used)
        self.repository.touch(loaded.record)
        return SampleResult(
            session_id=state.session_id,
            version=state.version,
            n=n,
            seed=used,
            threshold=threshold,
            temperature=temperature,
            tokens=tuple(SampledToken(t, c) for t, c in zip(head, counts, strict=False)),
            other_probability=other.total_probability,
            other_count=counts[-1],
            other_kept_token_count=other.kept_token_count,
            other_sampling_probability=other.sampling_probability,
            sampling=wheel.sampling,
        )

    def compare(
        self,
        session_id: str,
        steps: int,
        seed: int | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
        rules: SamplingRules = NO_RULES,
    ) -> CompareResult:
        """The session's text continued ``steps`` tokens twice: greedily, and by draws
        from ``random.Random(seed)`` landing as spins with ``rules`` land. Nothing is
        appended or stored; the seed used is returned (a fresh one when none is given)."""
        check_compare_steps(steps)
        check_wheel_settings(DEFAULT_THRESHOLD, temperature)
        check_sampling_rules(rules.top_k, rules.top_p, rules.min_p)
        check_seed(seed)
        loaded = self._with_prompt(session_id)
        state = loaded.state
        used = self._seed(seed)
        greedy, sampled = self.continuations.compare(
            state.model_name, state.token_ids, steps, temperature, used, rules
        )
        current = self.models.decode(state.model_name, state.generated_ids)
        self.repository.touch(loaded.record)
        return CompareResult(
            session_id=state.session_id,
            version=state.version,
            steps=steps,
            seed=used,
            temperature=temperature,
            rules=rules,
            greedy=greedy,
            sampled=sampled,
            current_text=current,
            current_log_probability=math.fsum(t.log_probability for t in state.generated),
        )

    def _with_prompt(self, session_id: str) -> Loaded:
        """The session, which must have a prompt and room for one more token."""
        loaded = self.repository.load(session_id)
        domain.require_prompt(loaded.state)
        self.models.check_room(loaded.state.model_name, loaded.state.token_ids)
        return loaded

    def _seed(self, seed: int | None) -> int:
        """The seed asked for, or a fresh one (returned so a run can be repeated)."""
        return seed if seed is not None else self.rng.randint(0, MAX_SEED)
