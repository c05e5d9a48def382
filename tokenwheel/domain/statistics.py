"""Lesson statistics and the teacher's timeline, computed from events alone.

Which tokens count: the statistics of a text (average probability, Other, log-probability,
perplexity, most-likely share) are over the tokens in the session's *current* text, the
one the student ended with. Tokens that were undone or cleared by a new prompt are counted
separately (``tokens_appended``, ``undo_count``) and shown in the timeline, but they do not
change the text's perplexity.

Log-probabilities are the ones recorded when each token was chosen, at the temperature the
student used then; perplexity = exp(-mean log-probability).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .events import Event, SetPrompt, TokenAppended, Undone, payload_of
from .session import GeneratedToken, SessionState, replay


@dataclass(frozen=True)
class TextStatistics:
    """Statistics over a set of generated tokens (one text, or a class's texts pooled)."""

    tokens_generated: int
    average_probability: float | None
    other_count: int
    other_sampled_count: int
    other_rate: float | None
    log_probability: float
    perplexity: float | None
    top_choice_count: int
    top_choice_rate: float | None


def text_statistics(tokens: Iterable[GeneratedToken]) -> TextStatistics:
    """``other_count``: tokens from the Other wedge (``category == "other"``, spun or
    picked from its list); ``other_sampled_count``: those the server sampled after a spin
    landed on Other. ``top_choice``: the most likely token was chosen (``rank == 1``)."""
    tokens = list(tokens)
    n = len(tokens)
    other = sum(1 for t in tokens if t.category == "other")
    top = sum(1 for t in tokens if t.rank == 1)
    log_probability = math.fsum(t.log_probability for t in tokens)
    return TextStatistics(
        tokens_generated=n,
        average_probability=math.fsum(t.probability for t in tokens) / n if n else None,
        other_count=other,
        other_sampled_count=sum(1 for t in tokens if t.sampled_from_other),
        other_rate=other / n if n else None,
        log_probability=log_probability,
        perplexity=_perplexity(log_probability, n),
        top_choice_count=top,
        top_choice_rate=top / n if n else None,
    )


def _perplexity(log_probability: float, n: int) -> float | None:
    """exp(-mean log-probability); None without tokens, and None when it is past the
    largest float (a token with essentially no chance, chosen at a low temperature)."""
    if not n:
        return None
    try:
        return math.exp(-log_probability / n)
    except OverflowError:
        return None


@dataclass(frozen=True)
class SessionStatistics:
    session_id: str
    version: int  # the session's version the statistics are of
    model_name: str
    class_code: str | None
    prompt: str | None
    prompt_count: int
    tokens_appended: int
    other_picks: int
    undo_count: int
    text: TextStatistics


def _other_picks(events: Iterable[Event]) -> int:
    """Every token taken from the Other wedge, undone and cleared ones included: how often
    the student chose Other, as opposed to how much of the final text came from it."""
    return sum(1 for e in events if isinstance(e, TokenAppended) and e.category == "other")


def _final_state(events: Sequence[Event]) -> SessionState:
    state = replay(events)
    if state is None:
        raise ValueError("statistics of an empty stream")
    return state


def session_statistics(events: Sequence[Event]) -> SessionStatistics:
    state = _final_state(events)
    return SessionStatistics(
        session_id=state.session_id,
        version=state.version,
        model_name=state.model_name,
        class_code=state.class_code,
        prompt=state.prompt,
        prompt_count=sum(1 for e in events if isinstance(e, SetPrompt)),
        tokens_appended=sum(1 for e in events if isinstance(e, TokenAppended)),
        other_picks=_other_picks(events),
        undo_count=state.undo_count,
        text=text_statistics(state.generated),
    )


@dataclass(frozen=True)
class FirstTokenCount:
    """How often a first token was chosen, against how often the model expects it."""

    token_id: int
    token_text: str
    observed: int
    probability: float
    expected: float


@dataclass(frozen=True)
class FirstTokenGroup:
    """Sessions with the same model, prompt and first-token temperature: the same wheel.

    ``expected`` = probability x ``session_count``; ``expected_unlisted`` is what the
    model expected for all the tokens nobody chose."""

    model_name: str
    prompt: str
    temperature: float
    session_count: int
    tokens: tuple[FirstTokenCount, ...]
    expected_unlisted: float


@dataclass(frozen=True)
class StudentStatistics:
    """One session of a class, as a teacher compares students: the tokens of its current
    text, their average recorded probability and the share of them taken from the Other
    wedge (both None before the first token). ``nickname`` is None for a session that
    joined without one (an old free-text class code)."""

    session_id: str
    nickname: str | None
    tokens_generated: int
    average_probability: float | None
    other_count: int
    other_rate: float | None


def student_statistics(states: Iterable[SessionState]) -> tuple[StudentStatistics, ...]:
    """One entry per session, in the order the students joined (then by session id)."""
    result = []
    for state in sorted(states, key=lambda s: (s.created_at, s.session_id)):
        text = text_statistics(state.generated)
        result.append(
            StudentStatistics(
                session_id=state.session_id,
                nickname=state.nickname,
                tokens_generated=text.tokens_generated,
                average_probability=text.average_probability,
                other_count=text.other_count,
                other_rate=text.other_rate,
            )
        )
    return tuple(result)


@dataclass(frozen=True)
class ClassStatistics:
    class_code: str
    session_count: int
    prompt_count: int
    tokens_appended: int
    other_picks: int
    undo_count: int
    text: TextStatistics
    first_tokens: tuple[FirstTokenGroup, ...]
    students: tuple[StudentStatistics, ...]


def class_statistics(class_code: str, streams: Iterable[Sequence[Event]]) -> ClassStatistics:
    """The class's texts pooled token by token (a long text weighs more than a short one),
    the first-token comparison for every wheel at least two sessions shared, and each
    session's own text."""
    per_session = [(session_statistics(s), _final_state(s)) for s in streams if s]
    return ClassStatistics(
        class_code=class_code,
        session_count=len(per_session),
        prompt_count=sum(stats.prompt_count for stats, _ in per_session),
        tokens_appended=sum(stats.tokens_appended for stats, _ in per_session),
        other_picks=sum(stats.other_picks for stats, _ in per_session),
        undo_count=sum(stats.undo_count for stats, _ in per_session),
        text=text_statistics(t for _, state in per_session for t in state.generated),
        first_tokens=first_token_groups([state for _, state in per_session]),
        students=student_statistics(state for _, state in per_session),
    )


def first_token_groups(states: Iterable[SessionState]) -> tuple[FirstTokenGroup, ...]:
    """Observed vs expected first tokens among sessions that share a wheel.

    A session counts with its current prompt and the first token of its current text.
    The probability of a token is the one recorded when it was chosen (the same in every
    session of a group, up to floating-point noise, so we average)."""
    groups: dict[tuple[str, str, float], list[GeneratedToken]] = defaultdict(list)
    for state in states:
        if state.prompt is not None and state.generated:
            first = state.generated[0]
            groups[(state.model_name, state.prompt, first.temperature)].append(first)
    result = []
    for (model_name, prompt, temperature), firsts in sorted(groups.items()):
        n = len(firsts)
        if n < 2:
            continue
        by_token: dict[int, list[GeneratedToken]] = defaultdict(list)
        for token in firsts:
            by_token[token.token_id].append(token)
        counts = []
        for token_id, chosen in by_token.items():
            recorded = [t.probability for t in chosen]
            probability = (
                recorded[0] if len(set(recorded)) == 1 else math.fsum(recorded) / len(recorded)
            )
            counts.append(
                FirstTokenCount(
                    token_id=token_id,
                    token_text=chosen[0].token_text,
                    observed=len(chosen),
                    probability=probability,
                    expected=probability * n,
                )
            )
        counts.sort(key=lambda c: (-c.observed, -c.probability, c.token_id))
        result.append(
            FirstTokenGroup(
                model_name=model_name,
                prompt=prompt,
                temperature=temperature,
                session_count=n,
                tokens=tuple(counts),
                expected_unlisted=max(0.0, n - math.fsum(c.expected for c in counts)),
            )
        )
    return tuple(result)


# ---------------------------------------------------------------- timeline


@dataclass(frozen=True)
class TimelineEntry:
    """One event as a teacher reads it. ``undone``: a token a later Undone removed;
    ``in_final_text``: a token still in the text the session ended with (both None for
    events that are not TokenAppended)."""

    version: int
    type: str
    occurred_at: datetime
    payload: dict[str, Any]
    undone: bool | None
    in_final_text: bool | None


def timeline(events: Sequence[Event]) -> list[TimelineEntry]:
    undone = {e.undone_version for e in events if isinstance(e, Undone)}
    final = _final_state(events)
    in_text = {t.version for t in final.generated}
    return [
        TimelineEntry(
            version=e.version,
            type=e.type,
            occurred_at=e.occurred_at,
            payload=payload_of(e),
            undone=e.version in undone if isinstance(e, TokenAppended) else None,
            in_final_text=e.version in in_text if isinstance(e, TokenAppended) else None,
        )
        for e in events
    ]
