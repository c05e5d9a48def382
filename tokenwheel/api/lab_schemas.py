"""The exploration lab's request and response schemas: forking a session and spinning
its wheel many times."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from tokenwheel.domain import rules
from tokenwheel.services.lab import MAX_SAMPLES, MIN_SAMPLES

from .fields import (
    DisplayMixin,
    StrictInteger,
    _min_p,
    _seed,
    _temperature,
    _threshold,
    _top_k,
    _top_p,
    _version,
)
from .schemas import SessionStateSchema
from .wheel_schemas import SamplingSchema


class ForkSchema(Schema):
    version = StrictInteger(
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=1, max=rules.MAX_VERSION),
        metadata={
            "description": "Fork the session as it was right after this version (1 to the "
            "session's version); absent: as it is now."
        },
    )
    token_count = StrictInteger(
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=0, max=rules.MAX_VERSION),
        metadata={
            "description": "Keep only the first `token_count` generated tokens of the text "
            "at that version (0 to how many it has; absent: all): a branch at a token of the "
            "text, whichever version added it."
        },
    )


class ForkedFromSchema(Schema):
    session_id = fields.String(required=True, metadata={"description": "The parent session."})
    version = fields.Integer(
        required=True, metadata={"description": "The parent's version the fork copies."}
    )


class ForkedSessionSchema(SessionStateSchema):
    forked_from = fields.Nested(
        ForkedFromSchema,
        required=True,
        metadata={"description": "The session and version this session was forked from."},
    )
    class_code = fields.String(metadata={"description": "Present when the session has one."})


class SampleSchema(Schema):
    n = StrictInteger(
        required=True,
        validate=validate.Range(min=MIN_SAMPLES, max=MAX_SAMPLES),
        metadata={"description": f"How many spins to draw, {MIN_SAMPLES} to {MAX_SAMPLES}."},
    )
    seed = _seed(
        "Seed for the draws: the same seed on the same wheel gives the same counts. Absent: "
        "a fresh one, returned as `seed` so the spins can be repeated."
    )
    threshold = _threshold(body=True)
    temperature = _temperature(body=True)
    top_k = _top_k(body=True)
    top_p = _top_p(body=True)
    min_p = _min_p(body=True)


class SampledTokenSchema(DisplayMixin):
    token_id = fields.Integer(required=True)
    token_text = fields.String(required=True)
    probability = fields.Float(
        required=True, metadata={"description": "The token's probability on the wheel."}
    )
    kept = fields.Boolean(
        required=True, metadata={"description": "true if the sampling rules keep it."}
    )
    sampling_probability = fields.Float(
        required=True,
        metadata={
            "description": "Its probability renormalized over the kept tokens: the share of "
            "spins it gets. 0 if the rules cut it; = probability with every rule off."
        },
    )
    count = fields.Integer(required=True, metadata={"description": "Spins that landed here."})


class SampledOtherSchema(Schema):
    probability = fields.Float(
        required=True, metadata={"description": "The Other wedge's total probability."}
    )
    kept_token_count = fields.Integer(
        required=True, metadata={"description": "How many of its tokens the rules keep."}
    )
    sampling_probability = fields.Float(
        required=True,
        metadata={
            "description": "Its kept tokens' renormalized probabilities, summed: the share "
            "of spins it gets (= probability with every rule off)."
        },
    )
    count = fields.Integer(
        required=True, metadata={"description": "Spins that landed in the Other wedge."}
    )


class SampleResponseSchema(Schema):
    session_id = fields.String(required=True)
    version = _version()
    n = fields.Integer(
        required=True, metadata={"description": "Spins drawn; the counts add up to n."}
    )
    seed = fields.Integer(
        required=True, metadata={"description": "The seed used: send it again to repeat the spins."}
    )
    threshold = fields.Float(required=True)
    temperature = fields.Float(required=True)
    tokens = fields.List(
        fields.Nested(SampledTokenSchema),
        required=True,
        metadata={"description": "The wheel's above-threshold tokens, most likely first."},
    )
    other = fields.Nested(SampledOtherSchema, required=True)
    sampling = fields.Nested(
        SamplingSchema,
        required=True,
        metadata={"description": "The sampling rules asked for and what they keep."},
    )


class CompareSchema(Schema):
    steps = StrictInteger(
        required=True,
        validate=validate.Range(min=rules.MIN_COMPARE_STEPS, max=rules.MAX_COMPARE_STEPS),
        metadata={
            "description": f"Tokens to continue each path by, {rules.MIN_COMPARE_STEPS} to "
            f"{rules.MAX_COMPARE_STEPS}. A path stops earlier after the model's "
            "end-of-sequence token (included) or when the context window is full."
        },
    )
    seed = _seed(
        "Seed for the sampled path's draws: the same seed on the same text gives the same "
        "path. Absent: a fresh one, returned as `seed`."
    )
    temperature = _temperature(body=True)
    top_k = _top_k(body=True)
    top_p = _top_p(body=True)
    min_p = _min_p(body=True)


class PathTokenSchema(DisplayMixin):
    token_id = fields.Integer(required=True)
    token_text = fields.String(required=True)
    probability = fields.Float(
        required=True,
        metadata={
            "description": "Its probability after the path so far, at the asked temperature, "
            "before any sampling rule (the wheel's `probability`)."
        },
    )
    log_probability = fields.Float(
        required=True, metadata={"description": "Its natural-log probability."}
    )


class PathSchema(Schema):
    tokens = fields.List(fields.Nested(PathTokenSchema), required=True)
    text = fields.String(
        required=True, metadata={"description": "The path's tokens decoded together."}
    )
    log_probability = fields.Float(
        required=True,
        metadata={"description": "The sum of its tokens' natural-log probabilities."},
    )
    stopped = fields.String(
        required=True,
        validate=validate.OneOf(["steps", "end_of_sequence", "context_limit"]),
        metadata={
            "description": "Why the path ended: `steps` (it has them all), "
            "`end_of_sequence` (its last token is the model's end-of-sequence token) or "
            "`context_limit` (the context window is full)."
        },
    )


class SamplingRulesSchema(Schema):
    top_k = fields.Integer(required=True, metadata={"description": "0 = off."})
    top_p = fields.Float(required=True, metadata={"description": "1 = off."})
    min_p = fields.Float(required=True, metadata={"description": "0 = off."})


class CurrentTextSchema(Schema):
    text = fields.String(
        required=True,
        metadata={"description": "The session's generated text so far (without the prompt)."},
    )
    log_probability = fields.Float(
        required=True,
        metadata={"description": "The sum of its tokens' recorded natural-log probabilities."},
    )


class CompareResponseSchema(Schema):
    session_id = fields.String(required=True)
    version = _version()
    steps = fields.Integer(required=True, metadata={"description": "The steps asked for."})
    seed = fields.Integer(
        required=True,
        metadata={"description": "The seed used: send it again to repeat the sampled path."},
    )
    temperature = fields.Float(required=True)
    sampling = fields.Nested(
        SamplingRulesSchema,
        required=True,
        metadata={"description": "The sampling rules the sampled path drew with."},
    )
    greedy = fields.Nested(
        PathSchema,
        required=True,
        metadata={"description": "The most likely token at every step (ties by id)."},
    )
    sampled = fields.Nested(
        PathSchema,
        required=True,
        metadata={"description": "A token drawn as a spin lands at every step."},
    )
    current = fields.Nested(CurrentTextSchema, required=True)
