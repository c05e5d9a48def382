"""The student's side of a guess-first round: see the class's round, guess the next word,
see the wheel with the class's guesses once the teacher reveals it."""

from __future__ import annotations

from typing import Any

from . import class_schemas as c
from . import schemas as s
from .blueprint import Blueprint
from .round_bodies import guess_body, student_round_body
from .services import rounds

blp = Blueprint(
    "rounds",
    __name__,
    url_prefix="/api/sessions",
    description="Guess-first rounds: a student guesses the next word before the wheel shows.",
    model_backed=True,
)

NOT_FOUND = {
    "description": "The session does not exist (or expired), or the round is not its class's."
}
NOT_IN_CLASS = "'Not in a class': the session is in no class a teacher opened."


@blp.route("/<session_id>/round", methods=["GET"])
@blp.response(200, c.StudentRoundSchema)
@blp.alt_response(400, schema=s.ApiErrorSchema, description=NOT_IN_CLASS)
@blp.alt_response(404, schema=s.ApiErrorSchema, **NOT_FOUND)
def get_round(session_id: str) -> Any:
    """The class's current round

    The round the teacher started last in the session's class (`round` is null before
    the first): its prompt and status, this session's own guess (`your_guess`), and once
    revealed the wheel with how many students guessed each token (`revealed`). Never
    another student's nickname.
    """
    return student_round_body(rounds().student_round(session_id))


@blp.route("/<session_id>/guess", methods=["POST"])
@blp.arguments(c.GuessSchema)
@blp.response(201, c.GuessResponseSchema)
@blp.alt_response(
    400,
    schema=s.ApiErrorSchema,
    description="A blank or too long guess, a session that joined without a nickname, or "
    + NOT_IN_CLASS,
)
@blp.alt_response(404, schema=s.ApiErrorSchema, **NOT_FOUND)
@blp.alt_response(
    409,
    schema=s.ApiErrorSchema,
    description="'Already guessed' (one guess per round) or 'Round not open' (revealed).",
)
def guess(body: dict[str, Any], session_id: str) -> Any:
    """Guess the next word

    One guess per student and round, while the round is open. The guess is scored as
    the tokens that continue the round's prompt (a word after a prompt that ends without
    a space gets a leading space): the first token's probability and rank, and the whole
    guess's probability (the product of its tokens' probabilities). A second guess is 409;
    GET .../round shows the first.
    """
    return guess_body(rounds().guess(session_id, body["round_id"], body["text"]))
