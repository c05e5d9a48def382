"""The session aggregate: state, decisions and replay.

Decisions are plain functions ``(state, command args) -> [new events]`` that check the
rules and number the events ``state.version + 1``. :func:`apply` folds one event into
state; :func:`replay` folds a whole stream. Replay never calls a model or a random number
generator: every fact it needs is in the events.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from .errors import (
    AlreadyGuessed,
    GenerationLimitReached,
    InvalidCommand,
    NothingToUndo,
    PromptNotSet,
    SessionNotFound,
)
from .events import (
    FACT_NAMES,
    Event,
    GuessMade,
    SessionCreated,
    SessionDeleted,
    SessionForked,
    SetPrompt,
    TokenAppended,
    TokenFacts,
    Undone,
    facts_of,
)
from .rules import check_class_code, check_prompt

CATEGORIES = ("above_threshold", "other")
SELECTIONS = ("explicit", "other", "spin")


@dataclass(frozen=True, kw_only=True)
class GeneratedToken(TokenFacts):
    """A token in the current text: the facts recorded when it was chosen, and when."""

    selected_at: datetime
    version: int


@dataclass(frozen=True)
class SessionState:
    session_id: str
    version: int
    model_name: str
    created_at: datetime
    updated_at: datetime
    class_code: str | None = None
    seed: int | None = None
    prompt: str | None = None
    prompt_token_ids: tuple[int, ...] = ()
    generated: tuple[GeneratedToken, ...] = ()
    deleted: bool = False
    deleted_at: datetime | None = None
    undo_count: int = 0
    forked_from_session_id: str | None = None  # a fork's parent, and its version then
    forked_from_version: int | None = None
    nickname: str | None = None  # joined an opened class with it (teachers only see it)
    guessed_rounds: tuple[str, ...] = ()  # round ids this session guessed, in order

    @property
    def token_ids(self) -> tuple[int, ...]:
        """What the model sees: the prompt's ids, then the generated ids."""
        return self.prompt_token_ids + tuple(t.token_id for t in self.generated)

    @property
    def generated_ids(self) -> tuple[int, ...]:
        return tuple(t.token_id for t in self.generated)


# ---------------------------------------------------------------- decisions


def create_session(
    session_id: str,
    model_name: str,
    now: datetime,
    class_code: str | None = None,
    seed: int | None = None,
    nickname: str | None = None,
) -> list[Event]:
    if not model_name:
        raise InvalidCommand("A session needs a model name.")
    check_class_code(class_code)
    if nickname is not None and class_code is None:
        raise InvalidCommand("A nickname needs a class_code.")
    return [
        SessionCreated(
            session_id=session_id,
            version=1,
            occurred_at=now,
            model_name=model_name,
            class_code=class_code,
            seed=seed,
            nickname=nickname,
        )
    ]


def _require_live(state: SessionState) -> None:
    if state.deleted:
        raise SessionNotFound("Session does not exist or has been deleted.")


def set_prompt(
    state: SessionState, prompt: str, token_ids: tuple[int, ...], now: datetime
) -> list[Event]:
    _require_live(state)
    check_prompt(prompt)
    if not token_ids:
        raise InvalidCommand("Prompt produced no tokens for this model.")
    return [
        SetPrompt(
            session_id=state.session_id,
            version=state.version + 1,
            occurred_at=now,
            prompt=prompt,
            token_ids=tuple(token_ids),
        )
    ]


def require_prompt(state: SessionState) -> None:
    _require_live(state)
    if state.prompt is None:
        raise PromptNotSet("No prompt set yet. Set one with POST /set-prompt first.")


def append_token(
    state: SessionState, choice: TokenFacts, now: datetime, max_generated: int
) -> list[Event]:
    require_prompt(state)
    if len(state.generated) >= max_generated:
        raise GenerationLimitReached(
            f"This session already has {len(state.generated)} generated tokens, the most "
            "allowed. Undo or set a new prompt."
        )
    if choice.category not in CATEGORIES or choice.selection not in SELECTIONS:
        raise InvalidCommand("Unknown category or selection.")
    return [
        TokenAppended(
            session_id=state.session_id,
            version=state.version + 1,
            occurred_at=now,
            **facts_of(choice),
        )
    ]


def undo(state: SessionState, now: datetime) -> list[Event]:
    _require_live(state)
    if not state.generated:
        raise NothingToUndo("No generated tokens to remove. Only initial prompt remains.")
    last = state.generated[-1]
    return [
        Undone(
            session_id=state.session_id,
            version=state.version + 1,
            occurred_at=now,
            token_id=last.token_id,
            undone_version=last.version,
        )
    ]


def fork_session(
    parent: SessionState,
    at: SessionState,
    session_id: str,
    now: datetime,
    token_count: int | None = None,
) -> list[Event]:
    """A new session ``session_id`` that starts as ``parent`` was at ``at.version``
    (``at`` is ``parent`` replayed up to that version), keeping only the first
    ``token_count`` generated tokens when it is given (a branch at a token of the text,
    whatever version added it: a fork's own copied tokens share its version 1)."""
    _require_live(parent)
    if at.session_id != parent.session_id or not 1 <= at.version <= parent.version:
        raise InvalidCommand(f"version must be from 1 to {parent.version}, the session's version.")
    if token_count is not None and not 0 <= token_count <= len(at.generated):
        raise InvalidCommand(
            f"token_count must be from 0 to {len(at.generated)}, the generated tokens "
            "at that version."
        )
    kept = at.generated if token_count is None else at.generated[:token_count]
    return [
        SessionForked(
            session_id=session_id,
            version=1,
            occurred_at=now,
            model_name=at.model_name,
            class_code=at.class_code,
            seed=at.seed,
            prompt=at.prompt,
            token_ids=at.prompt_token_ids,
            generated=tuple(
                {**facts_of(t), "selected_at": t.selected_at.isoformat()} for t in kept
            ),
            parent_session_id=at.session_id,
            parent_version=at.version,
        )
    ]


@dataclass(frozen=True, kw_only=True)
class GuessScore:
    """What the model gave a guess, worked out before the guess is stored."""

    token_ids: tuple[int, ...]
    first_token_probability: float
    first_token_rank: int
    text_probability: float
    text_log_probability: float


def make_guess(
    state: SessionState, round_id: str, text: str, score: GuessScore, now: datetime
) -> list[Event]:
    """One guess per session and round, by a student who joined the class with a
    nickname (a fork or a session made without one watches, it does not vote)."""
    _require_live(state)
    if state.nickname is None:
        raise InvalidCommand("Only a session that joined its class with a nickname can guess.")
    if round_id in state.guessed_rounds:
        raise AlreadyGuessed("This session has already guessed in this round.")
    if not score.token_ids:
        raise InvalidCommand("The guess produced no tokens for this model.")
    return [
        GuessMade(
            session_id=state.session_id,
            version=state.version + 1,
            occurred_at=now,
            round_id=round_id,
            text=text,
            token_ids=score.token_ids,
            first_token_probability=score.first_token_probability,
            first_token_rank=score.first_token_rank,
            text_probability=score.text_probability,
            text_log_probability=score.text_log_probability,
            single_token=len(score.token_ids) == 1,
        )
    ]


def delete_session(state: SessionState, now: datetime) -> list[Event]:
    _require_live(state)
    return [SessionDeleted(session_id=state.session_id, version=state.version + 1, occurred_at=now)]


# ---------------------------------------------------------------- replay


def apply(state: SessionState | None, event: Event) -> SessionState:
    """Fold one event into state. ``state`` is None only before ``SessionCreated``."""
    if isinstance(event, SessionCreated):
        if state is not None:
            raise ValueError("SessionCreated must be the first event of a stream")
        return SessionState(
            session_id=event.session_id,
            version=event.version,
            model_name=event.model_name,
            class_code=event.class_code,
            seed=event.seed,
            nickname=event.nickname,
            created_at=event.occurred_at,
            updated_at=event.occurred_at,
        )
    if isinstance(event, SessionForked):
        if state is not None:
            raise ValueError("SessionForked must be the first event of a stream")
        return _forked(event)
    if state is None:
        raise ValueError(f"{event.type} before SessionCreated")
    if event.version != state.version + 1:
        raise ValueError(f"event version {event.version} follows {state.version}")
    state = replace(state, version=event.version, updated_at=event.occurred_at)
    match event:
        case SetPrompt():
            return replace(
                state, prompt=event.prompt, prompt_token_ids=event.token_ids, generated=()
            )
        case TokenAppended():
            token = GeneratedToken(
                **facts_of(event), selected_at=event.occurred_at, version=event.version
            )
            return replace(state, generated=state.generated + (token,))
        case Undone():
            # Undo pops generated tokens only; the prompt is never touched.
            return replace(state, generated=state.generated[:-1], undo_count=state.undo_count + 1)
        case SessionDeleted():
            return replace(state, deleted=True, deleted_at=event.occurred_at)
        case GuessMade():
            return replace(state, guessed_rounds=state.guessed_rounds + (event.round_id,))
    raise ValueError(f"unknown event {event!r}")


def _forked(event: SessionForked) -> SessionState:
    """A fork's first state: the parent's text as it was, the tokens dated when they were
    chosen and numbered as introduced by this first event."""
    names = set(FACT_NAMES)
    generated = tuple(
        GeneratedToken(
            **{k: v for k, v in token.items() if k in names},
            selected_at=datetime.fromisoformat(token["selected_at"]),
            version=event.version,
        )
        for token in event.generated
    )
    return SessionState(
        session_id=event.session_id,
        version=event.version,
        model_name=event.model_name,
        class_code=event.class_code,
        seed=event.seed,
        created_at=event.occurred_at,
        updated_at=event.occurred_at,
        prompt=event.prompt,
        prompt_token_ids=tuple(event.token_ids),
        generated=generated,
        forked_from_session_id=event.parent_session_id,
        forked_from_version=event.parent_version,
    )


def replay(events: Iterable[Event]) -> SessionState | None:
    """State after ``events`` (None for an empty stream)."""
    state: SessionState | None = None
    for event in events:
        state = apply(state, event)
    return state


@dataclass(frozen=True)
class SessionSummary:
    """One row of the session index, derived from state (so it can be rebuilt)."""

    session_id: str
    model_name: str
    class_code: str | None
    created_at: datetime
    updated_at: datetime
    version: int
    generated_count: int
    undo_count: int
    deleted_at: datetime | None


def summarize(state: SessionState) -> SessionSummary:
    return SessionSummary(
        session_id=state.session_id,
        model_name=state.model_name,
        class_code=state.class_code,
        created_at=state.created_at,
        updated_at=state.updated_at,
        version=state.version,
        generated_count=len(state.generated),
        undo_count=state.undo_count,
        deleted_at=state.deleted_at,
    )
