"""The bodies of classes, rounds and guesses. A revealed wheel's token lists are built
JSON-ready here (the schemas' BuiltList), as the student's wheel is (``bodies.py``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from tokenwheel.inference.types import TokenProbability
from tokenwheel.services.rounds import GuessResult, Revealed, RoundView, StudentRound

from .bodies import wheel_token

GUESS_FIELDS = (
    "text",
    "token_ids",
    "first_token_probability",
    "first_token_rank",
    "text_probability",
)


def round_body(view: RoundView) -> dict[str, Any]:
    return {**asdict(view.record), "guess_count": view.guess_count}


def guess_fields(guess: Any) -> dict[str, Any]:
    """A stored guess's or a GuessMade's fields a student may see."""
    return {name: getattr(guess, name) for name in GUESS_FIELDS}


def revealed_body(result: Revealed) -> dict[str, Any]:
    """The round's wheel, each token with how many students guessed exactly it, and the
    guesses that are not one wedge's token. Counts only: never who guessed."""
    d, counts = result.distribution, result.counts

    def token(t: TokenProbability) -> dict[str, Any]:
        return {**wheel_token(t), "guess_count": counts.get(t.token_id, 0)}

    return {
        "wheel": {
            "threshold": d.threshold,
            "temperature": d.temperature,
            "above_threshold_tokens": [token(t) for t in d.above_threshold_tokens],
            "other_category": {
                "total_probability": d.other_category.total_probability,
                "token_count": d.other_category.token_count,
                "kept_token_count": d.other_category.kept_token_count,
                "sample_tokens": [token(t) for t in d.other_category.sample_tokens],
                "guess_count": result.other_guess_count,
            },
            "total_above_threshold_probability": d.total_above_threshold_probability,
            "vocabulary_size": d.vocabulary_size,
            "entropy_bits": d.entropy_bits,
        },
        "unlisted_guesses": [
            {k: v for k, v in asdict(g).items() if k != "on_wheel"}
            for g in result.groups
            if not g.on_wheel
        ],
    }


def guess_body(result: GuessResult) -> dict[str, Any]:
    e = result.event
    return {
        "session_id": result.session_id,
        "round_id": e.round_id,
        **guess_fields(e),
        "text_log_probability": e.text_log_probability,
        "single_token": e.single_token,
        "version": result.version,
    }


def student_round_body(result: StudentRound) -> dict[str, Any]:
    """No nickname anywhere: other students' guesses reach a student only as counts."""
    body: dict[str, Any] = {
        "session_id": result.session_id,
        "class_code": result.class_code,
        "round": None,
    }
    if result.view is not None:
        r = result.view.record
        body["round"] = {
            "round_id": r.round_id,
            "prompt": r.prompt,
            "model_name": r.model_name,
            "temperature": r.temperature,
            "status": r.status,
            "started_at": r.started_at,
            "revealed_at": r.revealed_at,
            "guess_count": result.view.guess_count,
            "your_guess": None if result.own_guess is None else guess_fields(result.own_guess),
            "revealed": None if result.revealed is None else revealed_body(result.revealed),
        }
    return body
