"""The answers' bodies, built from the services' results in the documented shapes.

Token lists (a wheel's tokens, a session's history) are built JSON-ready here and sent as
they are (the schemas' BuiltList): a hot path, measured (see ``fields.BuiltList``).
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

from tokenwheel.domain.session import GeneratedToken
from tokenwheel.domain.statistics import ClassStatistics, SessionStatistics
from tokenwheel.inference.types import TokenProbability
from tokenwheel.services import SessionView
from tokenwheel.services.results import (
    AppendResult,
    Created,
    DistributionResult,
    PromptResult,
    SpinResult,
    UndoResult,
)

from . import schemas as s

DISPLAY_FIELDS = ("display_text", "partial_utf8", "special", "end_of_sequence")


def display(info: object) -> dict[str, Any]:
    """How a token is shown: visible whitespace, partial UTF-8, special, end of text."""
    return {name: getattr(info, name) for name in DISPLAY_FIELDS}


# The history entry's fields are the schema's: a fact added to TokenFacts and named in
# TokenHistorySchema reaches every answer with no other change.
HISTORY_FACTS = tuple(
    name
    for name in s.TokenHistorySchema().fields
    if name not in DISPLAY_FIELDS and name != "selected_at"
)


SUMMARY_FACTS = tuple(name for name in s.AppendedTokenSchema().fields if name not in DISPLAY_FIELDS)


def history_entry(token: GeneratedToken, info: object) -> dict[str, Any]:
    """One token_history item, JSON-ready (the schema's BuiltList sends it as it is)."""
    entry = {name: getattr(token, name) for name in HISTORY_FACTS}
    return {**entry, **display(info), "selected_at": token.selected_at.isoformat()}


def token_summary(token: GeneratedToken, info: object) -> dict[str, Any]:
    return {**{name: getattr(token, name) for name in SUMMARY_FACTS}, **display(info)}


def history(view: SessionView) -> list[dict[str, Any]]:
    return [history_entry(t, view.token_infos[t.token_id]) for t in view.state.generated]


def statistics_body(stats: SessionStatistics | ClassStatistics) -> dict[str, Any]:
    """The text statistics side by side with the counts (one flat object)."""
    body = asdict(stats)
    return {**body.pop("text"), **body}


def session_body(view: SessionView) -> dict[str, Any]:
    state = view.state
    return {
        "session_id": state.session_id,
        "model_name": state.model_name,
        "initial_prompt": state.prompt,
        "current_text": view.current_text,
        "token_history": history(view),
        "generation_count": len(state.generated),
        "log_probability": math.fsum(t.log_probability for t in state.generated),
        "created_at": state.created_at,
        "last_accessed": view.last_accessed,
        "version": state.version,
    }


def created_body(result: Created) -> dict[str, Any]:
    view = result.view
    created = {
        "session_id": view.session_id,
        "model_name": view.state.model_name,
        "created_at": view.state.created_at,
        "version": view.state.version,
    }
    if view.state.class_code is not None:
        created["class_code"] = view.state.class_code
    if view.state.nickname is not None:  # the student's own: never another's
        created["nickname"] = view.state.nickname
    return created


def set_prompt_body(result: PromptResult) -> dict[str, Any]:
    return {
        "session_id": result.view.session_id,
        "current_text": result.view.current_text,
        "token_count": result.token_count,
        "message": "Prompt set successfully",
        "version": result.view.state.version,
    }


def wheel_token(t: TokenProbability) -> dict[str, Any]:
    """One token of a wheel as every wheel body shows it (the student's, the teacher's at
    a version, a round's revealed wheel)."""
    return {
        "token_id": t.token_id,
        "token_text": t.token_text,
        "probability": t.probability,
        "log_probability": t.log_probability,
        **display(t),
        "kept": t.kept,
        "sampling_probability": t.sampling_probability,
    }


def distribution_body(result: DistributionResult) -> dict[str, Any]:
    """The wheel's body, shared with the teacher's wheel at a past version."""
    view, d = result.view, result.distribution
    return {
        "session_id": view.session_id,
        "current_text": view.current_text,
        "threshold": d.threshold,
        "temperature": d.temperature,
        "above_threshold_tokens": [wheel_token(t) for t in d.above_threshold_tokens],
        "other_category": {
            "total_probability": d.other_category.total_probability,
            "token_count": d.other_category.token_count,
            "kept_token_count": d.other_category.kept_token_count,
            "sample_tokens": [wheel_token(t) for t in d.other_category.sample_tokens],
        },
        "total_above_threshold_probability": d.total_above_threshold_probability,
        "vocabulary_size": d.vocabulary_size,
        "entropy_bits": d.entropy_bits,
        "effective_choices": 2.0**d.entropy_bits,
        "sampling": asdict(d.sampling),
        "version": view.state.version,
    }


def append_body(result: AppendResult) -> dict[str, Any]:
    token = result.token
    body: dict[str, Any] = {
        "session_id": result.view.session_id,
        "previous_text": result.previous_text,
        "appended_token": token_summary(token, result.view.token_infos[token.token_id]),
        "current_text": result.view.current_text,
        "token_history": history(result.view),
        "version": result.view.state.version,
    }
    if token.category == "other":
        body["other_category_info"] = {
            "total_probability": token.other_total_probability,
            "token_count": token.other_token_count,
            "selected_token_rank": token.selected_token_rank,
        }
    return body


def spin_body(result: SpinResult) -> dict[str, Any]:
    landing = result.landing
    return {
        **append_body(result),
        "draw": landing.draw,
        "angle": landing.angle,
        "landed": {
            "wedge": landing.wedge,
            "wedge_index": landing.wedge_index,
            "start_angle": landing.start_angle,
            "end_angle": landing.end_angle,
        },
    }


def undo_body(result: UndoResult) -> dict[str, Any]:
    return {
        "session_id": result.view.session_id,
        "previous_text": result.previous_text,
        "removed_token": token_summary(result.removed, result.removed_info),
        "current_text": result.view.current_text,
        "token_history": history(result.view),
        "message": "Last token removed successfully",
        "version": result.view.state.version,
    }
