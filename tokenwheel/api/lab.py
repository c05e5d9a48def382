"""The exploration lab's student API: fork a session, spin its wheel many times."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from tokenwheel.services.continuations import Continuation
from tokenwheel.services.lab import CompareResult, SampleResult
from tokenwheel.services.results import Created

from . import lab_schemas as ls
from . import schemas as s
from .blueprint import Blueprint
from .bodies import display, session_body
from .concurrency import ETAG_HEADER, client_scope, idempotency, versioned
from .links import session_links
from .services import lab
from .sessions import rules

blp = Blueprint(
    "lab",
    __name__,
    url_prefix="/api/sessions",
    description="The exploration lab: fork a session, spin its wheel many times.",
    model_backed=True,
)

NOT_FOUND = {"description": "The session does not exist, was deleted, or has expired."}
FORK_ENDPOINT = "lab.fork"


def forked_body(result: Created) -> dict[str, Any]:
    state = result.view.state
    body = session_body(result.view)
    body["forked_from"] = {
        "session_id": state.forked_from_session_id,
        "version": state.forked_from_version,
    }
    if state.class_code is not None:
        body["class_code"] = state.class_code
    return body


def sample_body(result: SampleResult) -> dict[str, Any]:
    return {
        "session_id": result.session_id,
        "version": result.version,
        "n": result.n,
        "seed": result.seed,
        "threshold": result.threshold,
        "temperature": result.temperature,
        "tokens": [
            {
                "token_id": t.token.token_id,
                "token_text": t.token.token_text,
                **display(t.token),
                "probability": t.token.probability,
                "kept": t.token.kept,
                "sampling_probability": t.token.sampling_probability,
                "count": t.count,
            }
            for t in result.tokens
        ],
        "other": {
            "probability": result.other_probability,
            "kept_token_count": result.other_kept_token_count,
            "sampling_probability": result.other_sampling_probability,
            "count": result.other_count,
        },
        "sampling": asdict(result.sampling),
    }


def path_body(path: Continuation) -> dict[str, Any]:
    return {
        "tokens": [
            {
                "token_id": t.token_id,
                "token_text": t.token_text,
                **display(t),
                "probability": t.probability,
                "log_probability": t.log_probability,
            }
            for t in path.tokens
        ],
        "text": path.text,
        "log_probability": path.log_probability,
        "stopped": path.stopped,
    }


def compare_body(result: CompareResult) -> dict[str, Any]:
    return {
        "session_id": result.session_id,
        "version": result.version,
        "steps": result.steps,
        "seed": result.seed,
        "temperature": result.temperature,
        "sampling": asdict(result.rules),
        "greedy": path_body(result.greedy),
        "sampled": path_body(result.sampled),
        "current": {"text": result.current_text, "log_probability": result.current_log_probability},
    }


@blp.route("/<session_id>/fork", methods=["POST"], links={201: session_links(with_class=True)})
@blp.arguments(ls.ForkSchema, required=False)
@blp.arguments(s.IdempotencyHeadersSchema, location="headers")
@blp.response(201, ls.ForkedSessionSchema, headers=ETAG_HEADER)
@blp.alt_response(
    400,
    schema=s.ApiErrorSchema,
    description="A version outside 1..the session's, or a token_count over the text's tokens.",
)
@blp.alt_response(404, schema=s.ApiErrorSchema, **NOT_FOUND)
@blp.alt_response(
    429,
    schema=s.ApiErrorSchema,
    description="Too many forks from this address this hour (TOKENWHEEL_SESSIONS_PER_HOUR, "
    "counted apart from created sessions) or too many requests; Retry-After says when.",
)
@blp.alt_response(
    422, schema=s.ApiErrorSchema, description="The Idempotency-Key was used for another request."
)
def fork(body: dict[str, Any], headers: dict[str, Any], session_id: str) -> Any:
    """Fork a session

    A new session (a new `session_id`) with the same model, class, seed, prompt and
    generated tokens as this one, now or as it was at `version`; with `token_count`, only
    the first that many generated tokens (the page's "Branch here" sends the position of
    the chosen token, so a branch needs no version per token). The new session
    continues on its own; the original is unchanged. `forked_from` names the original and
    the version copied. The fork keeps its text even when the original is deleted or
    purged. With an `Idempotency-Key` (kept per client address), a retry answers the
    first 201 again and creates nothing.
    """
    result = lab().fork(
        session_id,
        body.get("version"),
        idempotency=idempotency(headers, scope=client_scope()),
        token_count=body.get("token_count"),
    )
    return versioned(forked_body(result), result.repeated)


@blp.route("/<session_id>/sample", methods=["POST"], links={200: session_links()})
@blp.arguments(ls.SampleSchema)
@blp.response(200, ls.SampleResponseSchema, headers=ETAG_HEADER)
@blp.alt_response(400, schema=s.ApiErrorSchema, description="Bad n, seed or settings; no prompt.")
@blp.alt_response(404, schema=s.ApiErrorSchema, **NOT_FOUND)
def sample(body: dict[str, Any], session_id: str) -> Any:
    """Spin the wheel many times

    Draws `n` uniform numbers and lays each on the wheel next-token-probs shows at the
    same `threshold` and `temperature`, exactly as a spin does, and counts where they
    stop: one count per above-threshold token (most likely first) and one for the Other
    wedge. The counts add up to `n`. Nothing is appended and the session does not change.
    The same `seed` gives the same counts; without one the server picks a seed and
    returns it.

    With sampling rules (`top_k`, `top_p`, `min_p`, as for next-token-probs) the spins
    land as a spin with those rules does: each wedge as wide as its kept tokens'
    renormalized probability (`sampling_probability`), so a cut token (`kept: false`)
    counts 0 and the others are drawn in proportion to their `sampling_probability`.
    """
    result = lab().sample(
        session_id,
        body["n"],
        seed=body.get("seed"),
        threshold=body["threshold"],
        temperature=body["temperature"],
        rules=rules(body),
    )
    return versioned(sample_body(result))


@blp.route("/<session_id>/compare", methods=["POST"], links={200: session_links()})
@blp.arguments(ls.CompareSchema)
@blp.response(200, ls.CompareResponseSchema, headers=ETAG_HEADER)
@blp.alt_response(
    400, schema=s.ApiErrorSchema, description="Bad steps, seed, temperature or rules; no prompt."
)
@blp.alt_response(404, schema=s.ApiErrorSchema, **NOT_FOUND)
def compare(body: dict[str, Any], session_id: str) -> Any:
    """Compare greedy decoding with sampling

    Continues the session's text (prompt and generated tokens, as the model sees them)
    twice, up to `steps` tokens each: `greedy` takes the most likely token at every step
    (ties by the lower id); `sampled` draws each token as a spin lands, on the wheel at
    the default threshold with `temperature` and the sampling rules (`top_k`, `top_p`,
    `min_p`), with the draws of `random.Random(seed)`. The same `seed` on the same text
    gives the same sampled path; without one the server picks a seed and returns it.

    Each token's `probability` is the wheel's at `temperature`, before any rule; a path's
    `log_probability` is the sum of its tokens' natural-log probabilities and `text` its
    tokens decoded together. `current` is the session's generated text so far and its
    recorded log-probability. A path stops early after the model's end-of-sequence token
    (included) or when the context window is full; `stopped` says why. Nothing is
    appended and the session does not change.
    """
    result = lab().compare(
        session_id,
        body["steps"],
        seed=body.get("seed"),
        temperature=body["temperature"],
        rules=rules(body),
    )
    return versioned(compare_body(result))
