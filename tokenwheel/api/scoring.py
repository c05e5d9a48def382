"""Scoring a text: every token's probability under a model, from one forward pass."""

from __future__ import annotations

import math
from typing import Any

from marshmallow import Schema, fields, validate

from tokenwheel.domain import rules
from tokenwheel.inference.types import ScoredPosition, TokenProbability
from tokenwheel.services.scoring import TextScore

from . import schemas as s
from .blueprint import Blueprint
from .bodies import display
from .fields import DisplayMixin
from .services import scoring

blp = Blueprint(
    "scoring",
    __name__,
    url_prefix="/api",
    description="Score a text: how likely a model finds each of its tokens.",
    model_backed=True,
)

SCORE_ENDPOINT = "scoring.score"


class ScoreSchema(Schema):
    model_name = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(min=1, max=128),
        metadata={"description": "A model id from GET /api/models; the default model if absent."},
    )
    text = fields.String(
        required=True,
        metadata={
            "description": "The text to score, held to the prompt's limits: something "
            "visible, at most TOKENWHEEL_MAX_PROMPT_CHARS characters and "
            "TOKENWHEEL_MAX_PROMPT_TOKENS tokens."
        },
    )


class AlternativeSchema(DisplayMixin):
    token_id = fields.Integer(required=True)
    token_text = fields.String(required=True)
    probability = fields.Float(required=True)


class ScoredTokenSchema(DisplayMixin):
    token_id = fields.Integer(required=True)
    token_text = fields.String(required=True)
    probability = fields.Float(
        required=True,
        allow_none=True,
        metadata={
            "description": "Its probability after the tokens before it, at temperature 1 "
            "(the wheel's). null for the first token, which has no context."
        },
    )
    log_probability = fields.Float(required=True, allow_none=True)
    rank = fields.Integer(
        required=True,
        allow_none=True,
        metadata={"description": "1 = the most likely token there. null for the first token."},
    )
    surprisal_bits = fields.Float(
        required=True,
        allow_none=True,
        metadata={"description": "-log2 probability. null for the first token."},
    )
    alternatives = fields.List(
        fields.Nested(AlternativeSchema),
        required=True,
        metadata={
            "description": f"The {rules.SCORE_ALTERNATIVES} most likely tokens there, most "
            "likely first (ties by id); empty for the first token."
        },
    )


class ScoreResponseSchema(Schema):
    model_name = fields.String(required=True)
    text = fields.String(required=True, metadata={"description": "The text, verbatim."})
    token_count = fields.Integer(
        required=True,
        metadata={"description": "Tokens the model sees for the text (BOS included)."},
    )
    scored_token_count = fields.Integer(
        required=True, metadata={"description": "Tokens with a probability: token_count - 1."}
    )
    tokens = fields.List(fields.Nested(ScoredTokenSchema), required=True)
    log_probability = fields.Float(
        required=True,
        metadata={"description": "The sum of the scored tokens' natural-log probabilities."},
    )
    perplexity = fields.Float(
        required=True,
        allow_none=True,
        metadata={
            "description": "exp(-mean natural-log probability) over the scored tokens; null "
            "when there is none (a one-token text)."
        },
    )


def _alternative(t: TokenProbability) -> dict[str, Any]:
    return {
        "token_id": t.token_id,
        "token_text": t.token_text,
        **display(t),
        "probability": t.probability,
    }


def _position(position: ScoredPosition) -> dict[str, Any]:
    t = position.token
    scored = position.scored
    return {
        "token_id": t.token_id,
        "token_text": t.token_text,
        **display(t),
        "probability": t.probability if scored else None,
        "log_probability": t.log_probability if scored else None,
        "rank": position.rank,
        "surprisal_bits": -t.log_probability / math.log(2.0) if scored else None,
        "alternatives": [_alternative(a) for a in position.alternatives],
    }


def score_body(result: TextScore) -> dict[str, Any]:
    return {
        "model_name": result.model_name,
        "text": result.text,
        "token_count": len(result.positions),
        "scored_token_count": result.scored_count,
        "tokens": [_position(p) for p in result.positions],
        "log_probability": result.log_probability,
        "perplexity": result.perplexity,
    }


@blp.route("/score", methods=["POST"])
@blp.arguments(ScoreSchema)
@blp.response(200, ScoreResponseSchema)
@blp.alt_response(
    400,
    schema=s.ApiErrorSchema,
    description="A text that is missing, not a string, blank or too long; an unknown model.",
)
@blp.alt_response(
    429,
    schema=s.ApiErrorSchema,
    description="Too many texts scored from this address this hour "
    "(TOKENWHEEL_SESSIONS_PER_HOUR, counted apart from sessions) or too many requests; "
    "Retry-After says when.",
)
def score(body: dict[str, Any]) -> Any:
    """Score a text

    How likely the model finds each token of `text`, from one forward pass over the whole
    text at temperature 1: each token's `probability` given the tokens before it (the
    probability the wheel would show for it after those tokens), its `rank` (1 = the most
    likely token there), `surprisal_bits` (-log2 probability) and the 5 most likely
    `alternatives`. The text is tokenized as a prompt is, with the limits of a prompt.

    The first token the model sees has no context, so it gets `probability`, `rank` and
    `surprisal_bits` null and no alternatives, and is left out of `log_probability` and
    `perplexity` (exp(-mean natural-log probability) over the scored tokens). For a model
    whose tokenizer adds a BOS token (Gemma 3) that first token is the BOS, and the text's
    first token is scored after it; otherwise (SmolLM2) the text's first token is the
    unscored one. Nothing is stored.
    """
    return score_body(scoring().score(body["text"], body.get("model_name")))
