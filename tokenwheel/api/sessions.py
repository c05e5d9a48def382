"""The student API: sessions, prompts, distributions, appends, undo."""

from __future__ import annotations

from typing import Any

from tokenwheel.inference.types import SamplingRules
from tokenwheel.services import AppendRequest, SpinRequest

from . import schemas as s
from . import wheel_schemas as w
from .blueprint import Blueprint
from .bodies import (
    append_body,
    created_body,
    distribution_body,
    session_body,
    set_prompt_body,
    spin_body,
    statistics_body,
    undo_body,
)
from .concurrency import ETAG_HEADER, client_scope, expected_version, idempotency, versioned
from .links import session_links
from .services import classroom
from .services import student_sessions as service


def rules(data: dict[str, Any]) -> SamplingRules:
    """The sampling rules of a query or body (its schema filled in the defaults)."""
    return SamplingRules(top_k=data["top_k"], top_p=data["top_p"], min_p=data["min_p"])


blp = Blueprint(
    "sessions",
    __name__,
    url_prefix="/api/sessions",
    description="A student's session: set a prompt, see the next-token wheel, append, undo.",
    model_backed=True,
)

NOT_FOUND = {"description": "The session does not exist, was deleted, or has expired."}
CONFLICT = {
    "description": "The session is no longer at the version the request named "
    "(If-Match or expected_version); the body's `version` is the current one."
}
KEY_REUSED = {"description": "The Idempotency-Key was used before with a different request."}
LINKS = {200: session_links()}


@blp.route("", methods=["POST"], links={201: session_links(with_class=True)})
@blp.arguments(s.CreateSessionSchema, required=False)
@blp.arguments(s.IdempotencyHeadersSchema, location="headers")
@blp.response(201, s.SessionCreatedSchema, headers=ETAG_HEADER)
@blp.alt_response(
    400, schema=s.ApiErrorSchema, description="Unknown model name, bad class code or bad body."
)
@blp.alt_response(
    429,
    schema=s.ApiErrorSchema,
    description="Too many sessions from this address this hour (TOKENWHEEL_SESSIONS_PER_HOUR) "
    "or too many requests; Retry-After says when to try again.",
)
@blp.alt_response(404, schema=s.ApiErrorSchema, description="A nickname for an unknown class.")
@blp.alt_response(
    409, schema=s.ApiErrorSchema, description="'Class closed', or 'Nickname taken' in the class."
)
@blp.alt_response(422, schema=s.ApiErrorSchema, **KEY_REUSED)
@blp.alt_response(503, schema=s.ApiErrorSchema, description="The model cannot load here; says why.")
def create_session(body: dict[str, Any], headers: dict[str, Any]) -> Any:
    """Create a session

    Starts an isolated session on a model (the default model when `model_name` is
    absent). The first session on a model waits for it to load. The session id is a
    random UUID: keep it private, it is the only key to the session. `class_code`
    (optional) files the session under a class, so the teacher can find it; the answer
    repeats it. With a `seed`, the session's spins (and Other samples) are reproducible:
    the same seed and the same actions give the same tokens. With an `Idempotency-Key`
    (kept per client address), a retry answers the first 201 again and creates nothing.

    To join a class a teacher opened, send its `class_code` (any case) with a
    `nickname`: the class must be open (else 409) and the nickname free in it, ignoring
    case (else 409); an unknown code with a nickname is 404. An opened class's code
    without a nickname is 400. Any other `class_code` without a nickname files the
    session under that code, as before classes could be opened.
    """
    result = classroom().create_session(
        body.get("model_name"),
        body.get("class_code"),
        body.get("nickname"),
        seed=body.get("seed"),
        idempotency=idempotency(headers, scope=client_scope()),
    )
    return versioned(created_body(result), result.repeated)


@blp.route("/<session_id>", methods=["GET"], links=LINKS)
@blp.response(200, s.SessionStateSchema, headers=ETAG_HEADER)
@blp.alt_response(404, schema=s.ApiErrorSchema, **NOT_FOUND)
def get_session(session_id: str) -> Any:
    """Get session state

    The prompt, the text so far (prompt verbatim + the generated tokens decoded together)
    and every generated token with the facts recorded when it was chosen.
    """
    return versioned(session_body(service().get_session(session_id)))


@blp.route("/<session_id>/statistics", methods=["GET"], needs_model=False, links=LINKS)
@blp.response(200, s.SessionStatisticsSchema, headers=ETAG_HEADER)
@blp.alt_response(404, schema=s.ApiErrorSchema, **NOT_FOUND)
def statistics(session_id: str) -> Any:
    """Statistics of this session

    Over the tokens in the current text: how many, their average probability, how many
    came from the Other wedge, the text's log-probability and perplexity
    (exp(-mean log-probability), at the temperatures used), and how often the most likely
    token was chosen. `tokens_appended` and `undo_count` also count undone tokens.
    """
    return versioned(statistics_body(service().statistics(session_id)))


@blp.route("/<session_id>", methods=["DELETE"], needs_model=False, links=LINKS)
@blp.arguments(s.DeleteHeadersSchema, location="headers")
@blp.response(200, s.DeleteResponseSchema, headers=ETAG_HEADER)
@blp.alt_response(400, schema=s.ApiErrorSchema, description="A malformed If-Match header.")
@blp.alt_response(404, schema=s.ApiErrorSchema, **NOT_FOUND)
@blp.alt_response(409, schema=s.ApiErrorSchema, **CONFLICT)
def delete_session(headers: dict[str, Any], session_id: str) -> Any:
    """Delete a session

    Afterwards every student endpoint answers 404 for it. The history stays readable for
    teachers until the retention period purges it. Send If-Match to delete only the
    version you saw.
    """
    result = service().delete_session(session_id, expected_version({}, headers))
    return versioned(
        {
            "message": "Session deleted successfully",
            "session_id": result.session_id,
            "version": result.version,
        }
    )


@blp.route("/<session_id>/set-prompt", methods=["POST"], links=LINKS)
@blp.arguments(s.SetPromptSchema)
@blp.arguments(s.MutationHeadersSchema, location="headers")
@blp.response(200, s.SetPromptResponseSchema, headers=ETAG_HEADER)
@blp.alt_response(400, schema=s.ApiErrorSchema, description="Empty, blank, non-string or too long.")
@blp.alt_response(404, schema=s.ApiErrorSchema, **NOT_FOUND)
@blp.alt_response(409, schema=s.ApiErrorSchema, **CONFLICT)
@blp.alt_response(422, schema=s.ApiErrorSchema, **KEY_REUSED)
def set_prompt(body: dict[str, Any], headers: dict[str, Any], session_id: str) -> Any:
    """Set or reset the prompt

    Replaces the prompt and clears the generated tokens. `token_count` is the number of
    tokens the model sees for the prompt. A prompt over the length limits is refused
    before the model sees it.
    """
    result = service().set_prompt(
        session_id,
        body["prompt"],
        expected_version(body, headers),
        idempotency(headers),
    )
    return versioned(set_prompt_body(result), result.repeated)


@blp.route("/<session_id>/next-token-probs", methods=["GET"], links=LINKS)
@blp.arguments(w.RuledNextTokenQuerySchema, location="query")
@blp.response(200, w.NextTokenProbsSchema, headers=ETAG_HEADER)
@blp.alt_response(400, schema=s.ApiErrorSchema, description="No prompt yet, or bad parameters.")
@blp.alt_response(404, schema=s.ApiErrorSchema, **NOT_FOUND)
def next_token_probs(query: dict[str, Any], session_id: str) -> Any:
    """Get the next-token distribution (the wheel)

    One entry per token with probability >= `threshold` (most likely first) and one
    Other wedge holding the rest: its total probability, how many tokens it holds and its
    `other_top_k` most likely tokens. Head, tail and vocabulary counts always add up.
    `top_k`, `top_p` and `min_p` mark which tokens a spin could draw (`kept`) and with
    what probability (`sampling_probability`); `entropy_bits` is before the rules.
    """
    result = service().next_token_probs(
        session_id, query["threshold"], query["temperature"], query["other_top_k"], rules(query)
    )
    return versioned(distribution_body(result))


@blp.route("/<session_id>/append-token", methods=["POST"], links=LINKS)
@blp.arguments(s.AppendTokenSchema)
@blp.arguments(s.MutationHeadersSchema, location="headers")
@blp.response(200, s.AppendTokenResponseSchema, headers=ETAG_HEADER)
@blp.alt_response(400, schema=s.ApiErrorSchema, description="Bad token, ambiguous body, no prompt.")
@blp.alt_response(404, schema=s.ApiErrorSchema, **NOT_FOUND)
@blp.alt_response(409, schema=s.ApiErrorSchema, **CONFLICT)
@blp.alt_response(422, schema=s.ApiErrorSchema, **KEY_REUSED)
def append_token(body: dict[str, Any], headers: dict[str, Any], session_id: str) -> Any:
    """Append a token

    Send exactly one of `token_id` (optionally with a matching `token_text`),
    `token_text` alone (must be exactly one vocabulary token), or `category: "other"` to
    let the server sample from the Other wedge (renormalized tail). `threshold` and
    `temperature` decide the recorded probability, the category and the tail sampled
    from; they default as for next-token-probs. A retry with the same Idempotency-Key
    returns the first response, even for a sampled Other token.
    """
    result = service().append_token(
        session_id,
        AppendRequest(
            token_id=body.get("token_id"),
            token_text=body.get("token_text"),
            category=body.get("category"),
            threshold=body["threshold"],
            temperature=body["temperature"],
            rules=rules(body),
        ),
        expected_version(body, headers),
        idempotency(headers),
    )
    return versioned(append_body(result), result.repeated)


@blp.route("/<session_id>/spin", methods=["POST"], links=LINKS)
@blp.arguments(s.SpinSchema, required=False)
@blp.arguments(s.MutationHeadersSchema, location="headers")
@blp.response(200, s.SpinResponseSchema, headers=ETAG_HEADER)
@blp.alt_response(400, schema=s.ApiErrorSchema, description="Bad parameters or seed, no prompt.")
@blp.alt_response(404, schema=s.ApiErrorSchema, **NOT_FOUND)
@blp.alt_response(409, schema=s.ApiErrorSchema, **CONFLICT)
@blp.alt_response(422, schema=s.ApiErrorSchema, **KEY_REUSED)
def spin(body: dict[str, Any], headers: dict[str, Any], session_id: str) -> Any:
    """Spin the wheel

    The server draws one uniform number `draw` in [0, 1) and lays it on the wheel that
    next-token-probs shows at the same `threshold` and `temperature`: the above-threshold
    wedges, most likely first, then the Other wedge, clockwise from the top. The pointer
    stops at `angle` = 360 * `draw` degrees. If that is inside a token's wedge, that token
    is appended; if it is inside the Other wedge, the draw rescaled to the wedge picks a
    token of the renormalized tail (most likely first). So every token is drawn with
    exactly its probability. The token is recorded with `selection: "spin"` and the body
    has the append-token fields plus `draw`, `angle` and `landed`.

    With sampling rules (`top_k`, `top_p`, `min_p`), the draw is made on the same wedges
    each as wide as its kept tokens' renormalized probability: cut tokens are never drawn,
    and the angles are on that sampling wheel.

    The draw is reproducible when the session was created with a `seed`, or when this
    request sends one: it depends only on the seed and the session's event count.
    """
    result = service().spin(
        session_id,
        SpinRequest(
            threshold=body["threshold"],
            temperature=body["temperature"],
            seed=body.get("seed"),
            rules=rules(body),
        ),
        expected_version(body, headers),
        idempotency(headers),
    )
    return versioned(spin_body(result), result.repeated)


@blp.route("/<session_id>/undo", methods=["POST"], links=LINKS)
@blp.arguments(s.UndoSchema, required=False)
@blp.arguments(s.MutationHeadersSchema, location="headers")
@blp.response(200, s.UndoResponseSchema, headers=ETAG_HEADER)
@blp.alt_response(
    400, schema=s.ApiErrorSchema, description="'Cannot undo': only the prompt remains."
)
@blp.alt_response(404, schema=s.ApiErrorSchema, **NOT_FOUND)
@blp.alt_response(409, schema=s.ApiErrorSchema, **CONFLICT)
@blp.alt_response(422, schema=s.ApiErrorSchema, **KEY_REUSED)
def undo(body: dict[str, Any], headers: dict[str, Any], session_id: str) -> Any:
    """Undo the last generated token

    Removes the last generated token; repeated undos go further back but never into the
    prompt. The body is optional (`expected_version` only).
    """
    result = service().undo(
        session_id,
        expected_version(body, headers),
        idempotency(headers),
    )
    return versioned(undo_body(result), result.repeated)
