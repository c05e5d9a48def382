"""Guess-first rounds: the teacher starts one with a prompt, each student guesses the next
word before seeing the wheel, the teacher reveals the wheel with the class's guesses on it.

A round lives in its class's stream (RoundStarted, RoundRevealed); a guess is a
``GuessMade`` in the student's own session, scored by the model when it is made (the
first token's probability and rank, the whole text's probability as the product of its
tokens' probabilities in turn), so neither replay nor a reveal asks the model about a
guess again. A guess is stored only while its round is open: the store checks the
round's row in the guess's own transaction, and a reveal changes that row.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections import Counter
from dataclasses import dataclass

from tokenwheel.domain import classes as domain
from tokenwheel.domain import session as sessions_domain
from tokenwheel.domain.classes import ClassState, Round
from tokenwheel.domain.errors import (
    InvalidCommand,
    NotInClass,
    RoundNotFound,
    RoundNotOpen,
    RoundNotRevealed,
    VersionConflict,
)
from tokenwheel.domain.events import GuessMade
from tokenwheel.domain.rules import (
    DEFAULT_OTHER_TOP_K,
    DEFAULT_TEMPERATURE,
    DEFAULT_THRESHOLD,
    MAX_GUESS_TOKENS,
    ROUND_REVEALED,
    check_guess,
    check_prompt,
    check_wheel_settings,
    normalize_class_code,
)
from tokenwheel.domain.session import GuessScore
from tokenwheel.inference.types import Distribution
from tokenwheel.settings import Settings
from tokenwheel.store.class_records import GuessRecord, RoundRecord, guess_record

from .class_repository import ClassRepository
from .clock import utcnow
from .gateway import ModelGateway
from .ports import ClassStore, Clock, EventStore, LanguageModels
from .repository import MAX_ATTEMPTS, SessionRepository, parse_session_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GuessGroup:
    """Every guess of one token sequence: how many, and what the model gave it."""

    text: str  # the scored text, decoded (a leading space shows where one was added)
    token_ids: tuple[int, ...]
    count: int
    first_token_probability: float
    first_token_rank: int
    text_probability: float
    single_token: bool
    on_wheel: bool  # a single token with its own wedge (then it is counted on the wheel)


@dataclass(frozen=True)
class RoundView:
    record: RoundRecord
    guess_count: int


@dataclass(frozen=True)
class Revealed:
    """The round's wheel with the class's guesses: ``counts`` by token id for guesses
    that are one token (wedges and the Other wedge's listed tokens), ``groups`` every
    distinct guess, ``other_guess_count`` one-token guesses inside the Other wedge."""

    view: RoundView
    distribution: Distribution
    counts: dict[int, int]
    other_guess_count: int
    groups: tuple[GuessGroup, ...]


@dataclass(frozen=True)
class RoundDetail:
    view: RoundView
    guesses: list[tuple[GuessRecord, str | None]]  # with nicknames: teachers only


@dataclass(frozen=True)
class GuessResult:
    session_id: str
    version: int
    event: GuessMade
    class_code: str


@dataclass(frozen=True)
class StudentRound:
    """What a student's page shows: the class's current round (None before the first),
    the student's own guess, and after the reveal the wheel with everyone's counts."""

    session_id: str
    class_code: str
    view: RoundView | None
    own_guess: GuessRecord | None
    revealed: Revealed | None


class Rounds:
    def __init__(
        self,
        store: EventStore,
        classes: ClassStore,
        models: LanguageModels,
        settings: Settings,
        repository: SessionRepository,
        clock: Clock = utcnow,
    ) -> None:
        self.store = store
        self.classes = classes
        self.settings = settings
        self.clock = clock
        self.models = ModelGateway(models)
        self.sessions = repository
        self.class_streams = ClassRepository(store, classes, clock)

    # ------------------------------------------------------------ teachers

    def start_round(
        self,
        raw_code: str,
        prompt: object,
        model_name: str | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
        threshold: float = DEFAULT_THRESHOLD,
    ) -> RoundView:
        text = check_prompt(prompt, self.settings.max_prompt_chars)
        check_wheel_settings(threshold, temperature)
        if model_name is None:
            model_name, _ = self.models.default_model()
        token_ids = self.models.prompt_ids(model_name, text, self.settings.max_prompt_tokens)
        round_id = str(uuid.uuid4())
        for attempt in self.class_streams.attempts(raw_code):
            with attempt:
                before = self.class_streams.load(raw_code)
                new_events = domain.start_round(
                    before, round_id, text, token_ids, model_name, temperature, threshold,
                    self.clock(),
                )  # fmt: skip
                after = self.class_streams.save(before, new_events)
                return RoundView(self._round_record(after, round_id), 0)
        raise AssertionError("attempts() raises when it runs out")

    def revealed(self, raw_code: str, round_id: str) -> Revealed:
        """A revealed round's wheel with its counts, read without changing anything."""
        state = self.class_streams.load(raw_code)
        current = state.round(round_id)
        if current.status != ROUND_REVEALED:
            raise RoundNotRevealed("The teacher has not revealed this round yet.")
        return self._revealed(current, state.class_code)

    def list_rounds(self, raw_code: str) -> list[RoundView]:
        state = self.class_streams.load(raw_code)
        return [
            RoundView(r, len(self.classes.guesses(r.round_id)))
            for r in self.classes.list_rounds(state.class_code)
        ]

    def round_detail(self, raw_code: str, round_id: str) -> RoundDetail:
        state = self.class_streams.load(raw_code)
        state.round(round_id)
        guesses = self.classes.guesses(round_id)
        return RoundDetail(RoundView(self._round_record(state, round_id), len(guesses)), guesses)

    def reveal(self, raw_code: str, round_id: str) -> Revealed:
        """Reveal the round (again: nothing changes) and answer its wheel with counts."""
        for attempt in self.class_streams.attempts(raw_code):
            with attempt:
                before = self.class_streams.load(raw_code)
                new_events = domain.reveal_round(before, round_id, self.clock())
                after = self.class_streams.save(before, new_events)
                return self._revealed(after.round(round_id), after.class_code)
        raise AssertionError("attempts() raises when it runs out")

    # ------------------------------------------------------------ students

    def guess(self, session_id: str, round_id: str, text: object) -> GuessResult:
        typed = check_guess(text)
        session_id = parse_session_id(session_id)
        with self.sessions.lock(session_id):
            for _ in range(MAX_ATTEMPTS):
                before = self.sessions.load(session_id).state
                state = self._class_of(before.class_code)
                current = state.round(round_id)
                if current.status == ROUND_REVEALED:
                    raise RoundNotOpen("This round has been revealed: guesses are closed.")
                score = self._score(current, typed)
                new_events = sessions_domain.make_guess(
                    before, round_id, typed, score, self.clock()
                )
                after = sessions_domain.apply(before, new_events[0])
                event = new_events[0]
                assert isinstance(event, GuessMade)
                try:
                    self.classes.append_guess(
                        new_events,
                        before.version,
                        sessions_domain.summarize(after),
                        guess_record(event, state.class_code),
                    )
                except VersionConflict:
                    self.sessions.forget(session_id)
                    continue
                self.sessions.forget(session_id)  # the next load reads the guess
                log.info("session %s… guessed in a round", session_id[:8])
                return GuessResult(session_id, after.version, event, state.class_code)
        raise VersionConflict(session_id, 0, None, "The session kept changing; try again.")

    def student_round(self, session_id: str) -> StudentRound:
        loaded = self.sessions.load(session_id)
        self.sessions.touch(loaded.record)
        state = self._class_of(loaded.state.class_code)
        current = state.current_round
        if current is None:
            return StudentRound(loaded.state.session_id, state.class_code, None, None, None)
        guesses = self.classes.guesses(current.round_id)
        own = next((g for g, _ in guesses if g.session_id == loaded.state.session_id), None)
        revealed = (
            self._revealed(current, state.class_code, [g for g, _ in guesses])
            if current.status == ROUND_REVEALED
            else None
        )
        view = RoundView(self._round_record(state, current.round_id), len(guesses))
        return StudentRound(loaded.state.session_id, state.class_code, view, own, revealed)

    # ------------------------------------------------------------ steps

    def _class_of(self, class_code: str | None) -> ClassState:
        """The opened class a session belongs to (400 for a session of no class or of an
        old free-text code: the session exists, it has no rounds)."""
        code = normalize_class_code(class_code) if class_code is not None else None
        state = domain.replay(self.store.load(domain.class_stream(code))) if code else None
        if state is None or state.class_code != class_code:
            raise NotInClass("This session is not in a class a teacher opened.")
        return state

    def _round_record(self, state: ClassState, round_id: str) -> RoundRecord:
        record = self.classes.get_round(round_id)
        if record is None or record.class_code != state.class_code:
            raise RoundNotFound("No such round in this class.")
        return record

    def _score(self, r: Round, typed: str) -> GuessScore:
        """The guess as tokens after the round's prompt, and what the model gives them.
        A guess that starts with a letter or digit after a prompt that ends without a
        space is scored with a leading space: the next word, as the model writes it."""
        scored = typed
        if typed[0].isalnum() and r.prompt[-1:] and not r.prompt[-1].isspace():
            scored = " " + typed
        ids = self._continuation(r, scored)
        if not ids:
            raise InvalidCommand("The guess produced no tokens for this model.")
        if len(ids) > MAX_GUESS_TOKENS:
            raise InvalidCommand(
                f"The guess is {len(ids)} tokens long; the limit is {MAX_GUESS_TOKENS}."
            )
        self.models.check_room(r.model_name, r.token_ids + ids)
        steps = [
            self.models.score(
                r.model_name, r.token_ids + ids[:i], token_id, r.temperature, r.threshold
            )
            for i, token_id in enumerate(ids)
        ]
        first = steps[0]
        log_probability = math.fsum(step.log_probability for step in steps)
        return GuessScore(
            token_ids=ids,
            first_token_probability=first.probability,
            first_token_rank=first.rank,
            text_probability=math.exp(log_probability),
            text_log_probability=log_probability,
        )

    def _continuation(self, r: Round, scored: str) -> tuple[int, ...]:
        """The tokens of ``scored`` as they continue the prompt's ids: the prompt and
        guess encoded together, when that keeps the prompt's ids as they are; else the
        guess encoded alone, without the start-of-text token a tokenizer may add."""
        prompt_ids = r.token_ids
        together = self.models.encode_prompt(r.model_name, r.prompt + scored)
        if together[: len(prompt_ids)] == prompt_ids and len(together) > len(prompt_ids):
            return together[len(prompt_ids) :]
        alone = self.models.encode_prompt(r.model_name, scored)
        starts_alike = alone and prompt_ids and alone[0] == prompt_ids[0]
        if starts_alike and self.models.token_info(r.model_name, alone[0]).special:
            alone = alone[1:]
        return alone

    def _revealed(
        self, r: Round, class_code: str, guesses: list[GuessRecord] | None = None
    ) -> Revealed:
        if guesses is None:
            guesses = [g for g, _ in self.classes.guesses(r.round_id)]
        self.models.check_room(r.model_name, r.token_ids)
        wheel = self.models.distribution(
            r.model_name, r.token_ids, r.temperature, r.threshold, DEFAULT_OTHER_TOP_K
        )
        head = {t.token_id for t in wheel.above_threshold_tokens}
        by_ids = Counter(tuple(g.token_ids) for g in guesses)
        first_of = {tuple(g.token_ids): g for g in guesses}
        counts = {ids[0]: n for ids, n in by_ids.items() if len(ids) == 1}
        groups = tuple(
            GuessGroup(
                text=self.models.decode(r.model_name, ids),
                token_ids=ids,
                count=n,
                first_token_probability=first_of[ids].first_token_probability,
                first_token_rank=first_of[ids].first_token_rank,
                text_probability=first_of[ids].text_probability,
                single_token=len(ids) == 1,
                on_wheel=len(ids) == 1 and ids[0] in head,
            )
            for ids, n in by_ids.most_common()
        )
        other = sum(n for token_id, n in counts.items() if token_id not in head)
        record = self.classes.get_round(r.round_id)
        assert record is not None and record.class_code == class_code
        return Revealed(RoundView(record, len(guesses)), wheel, counts, other, groups)
