"""The teacher's classes and guess-first rounds: open, list, close and reopen classes;
start rounds, watch the guesses come in (with nicknames), reveal the wheel.

Behind the teacher token, as every teacher route (api/teacher.py).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from . import class_schemas as c
from . import schemas as s
from .blueprint import Blueprint
from .round_bodies import revealed_body, round_body
from .services import classroom, rounds
from .teacher import guarded

blp = Blueprint(
    "classes",
    __name__,
    url_prefix="/api/teacher/classes",
    description=(
        "For teachers: classes students join with a code and a nickname, and guess-first "
        "rounds (start, watch the guesses, reveal). Needs the teacher token."
    ),
    model_backed=True,
)
teacher_only = guarded(blp)

NO_CLASS = {"description": "No class a teacher opened has this code (or it was purged)."}
NO_ROUND = {"description": "No such class, or no such round in it."}


def class_detail_body(code: str) -> dict[str, Any]:
    detail = classroom().class_detail(code)
    return {
        **asdict(detail.record),
        "students": [asdict(m) for m in detail.members],
        "rounds": [round_body(v) for v in rounds().list_rounds(detail.record.class_code)],
    }


@blp.route("", methods=["POST"], needs_model=False)
@teacher_only
@blp.arguments(c.OpenClassSchema)
@blp.response(201, c.ClassSchema)
@blp.alt_response(400, schema=s.ApiErrorSchema, description="A blank or too long name.")
def open_class(body: dict[str, Any]) -> Any:
    """Open a class

    A new class with a short join code to read aloud or write on the board
    (`class_code`: six characters, no 0/O or 1/I/L). Students join it by creating a
    session with `{"class_code": ..., "nickname": ...}`.
    """
    return asdict(classroom().open_class(body["name"]))


@blp.route("", methods=["GET"], needs_model=False)
@teacher_only
@blp.arguments(c.ClassListQuerySchema, location="query")
@blp.response(200, c.ClassListSchema)
def list_classes(query: dict[str, Any]) -> Any:
    """List classes

    Newest first, optionally only `open` or `closed` ones, one page at a time.
    """
    result = classroom().list_classes(query.get("status"), query["page"], query["page_size"])
    return {
        "classes": [asdict(r) for r in result.classes],
        "total": result.total,
        "page": result.page,
        "page_size": result.page_size,
    }


@blp.route("/<class_code>", methods=["GET"], needs_model=False)
@teacher_only
@blp.response(200, c.ClassDetailSchema)
@blp.alt_response(404, schema=s.ApiErrorSchema, **NO_CLASS)
def get_class(class_code: str) -> Any:
    """A class, who joined it and its rounds

    `students` lists each joined session with its nickname: for the teacher only.
    """
    return class_detail_body(class_code)


@blp.route("/<class_code>/close", methods=["POST"], needs_model=False)
@teacher_only
@blp.response(200, c.ClassSchema)
@blp.alt_response(404, schema=s.ApiErrorSchema, **NO_CLASS)
def close_class(class_code: str) -> Any:
    """Close a class

    No one can join it any more and no round can start; an open round can still take
    guesses and be revealed. Closing a closed class changes nothing (safe to retry).
    """
    return asdict(classroom().close_class(class_code))


@blp.route("/<class_code>/reopen", methods=["POST"], needs_model=False)
@teacher_only
@blp.response(200, c.ClassSchema)
@blp.alt_response(404, schema=s.ApiErrorSchema, **NO_CLASS)
def reopen_class(class_code: str) -> Any:
    """Reopen a class

    Students can join again. Reopening an open class changes nothing.
    """
    return asdict(classroom().reopen_class(class_code))


@blp.route("/<class_code>/rounds", methods=["POST"])
@teacher_only
@blp.arguments(c.StartRoundSchema)
@blp.response(201, c.RoundSchema)
@blp.alt_response(400, schema=s.ApiErrorSchema, description="Bad prompt, model or settings.")
@blp.alt_response(404, schema=s.ApiErrorSchema, **NO_CLASS)
@blp.alt_response(
    409, schema=s.ApiErrorSchema, description="The class is closed, or has a round open."
)
def start_round(body: dict[str, Any], class_code: str) -> Any:
    """Start a guess-first round

    Every student of the class sees `prompt` and guesses the next word
    (POST /api/sessions/{id}/guess) before the wheel is shown. The wheel is the
    distribution of `model_name` (the default model if absent) after the prompt at
    `temperature`, with wedges at `threshold`. One round at a time: reveal the open one
    first.
    """
    view = rounds().start_round(
        class_code,
        body["prompt"],
        body.get("model_name"),
        body["temperature"],
        body["threshold"],
    )
    return round_body(view)


@blp.route("/<class_code>/rounds", methods=["GET"], needs_model=False)
@teacher_only
@blp.response(200, c.RoundListSchema)
@blp.alt_response(404, schema=s.ApiErrorSchema, **NO_CLASS)
def list_rounds(class_code: str) -> Any:
    """List a class's rounds, oldest first"""
    return {"rounds": [round_body(v) for v in rounds().list_rounds(class_code)]}


@blp.route("/<class_code>/rounds/<round_id>", methods=["GET"], needs_model=False)
@teacher_only
@blp.response(200, c.RoundDetailSchema)
@blp.alt_response(404, schema=s.ApiErrorSchema, **NO_ROUND)
def get_round(class_code: str, round_id: str) -> Any:
    """A round and its guesses, with nicknames

    Every guess so far, oldest first, with the student's nickname (for the teacher
    only), the tokens scored, the first token's probability and rank and the whole
    guess's probability.
    """
    detail = rounds().round_detail(class_code, round_id)
    return {
        **round_body(detail.view),
        "guesses": [{**asdict(g), "nickname": nickname} for g, nickname in detail.guesses],
    }


@blp.route("/<class_code>/rounds/<round_id>/reveal", methods=["POST"])
@teacher_only
@blp.response(200, c.RevealedRoundSchema)
@blp.alt_response(404, schema=s.ApiErrorSchema, **NO_ROUND)
def reveal_round(class_code: str, round_id: str) -> Any:
    """Reveal a round's wheel with the class's guesses

    Closes the round to guesses and answers its wheel: each token with `guess_count`
    (students whose guess was exactly that token), the Other wedge with the one-token
    guesses inside it, and `unlisted_guesses`: every guess not counted on a wedge (several
    tokens, or a token in the Other wedge) with its count, the first token's probability
    and the whole guess's probability. No nicknames. Revealing again answers the same
    and changes nothing.
    """
    result = rounds().reveal(class_code, round_id)
    return {**round_body(result.view), **revealed_body(result)}


@blp.route("/<class_code>/rounds/<round_id>/reveal", methods=["GET"])
@teacher_only
@blp.response(200, c.RevealedRoundSchema)
@blp.alt_response(404, schema=s.ApiErrorSchema, **NO_ROUND)
@blp.alt_response(409, schema=s.ApiErrorSchema, description="The round is not revealed yet.")
def read_reveal(class_code: str, round_id: str) -> Any:
    """Read a revealed round's wheel with the class's guesses

    The same answer as the reveal (POST), for a round already revealed, without
    changing anything: what the projector shows. 409 before the reveal.
    """
    result = rounds().revealed(class_code, round_id)
    return {**round_body(result.view), **revealed_body(result)}
