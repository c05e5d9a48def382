"""The wheel's schemas: what next-token-probs takes (the wheel's settings and the sampling
rules) and answers (the tokens, the Other wedge, the rules' effect, the entropy)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from tokenwheel.domain import rules

from .fields import (
    BuiltList,
    DisplayMixin,
    _min_p,
    _temperature,
    _threshold,
    _top_k,
    _top_p,
    _version,
)


class NextTokenQuerySchema(Schema):
    threshold = _threshold()
    other_top_k = fields.Integer(
        load_default=rules.DEFAULT_OTHER_TOP_K,
        validate=validate.Range(min=0, max=rules.MAX_OTHER_TOP_K),
        metadata={"description": "How many of the Other wedge's most likely tokens to list."},
    )
    temperature = _temperature()


class RuledNextTokenQuerySchema(NextTokenQuerySchema):
    """The student's wheel: the wheel's settings and the sampling rules."""

    top_k = _top_k()
    top_p = _top_p()
    min_p = _min_p()


class TokenProbabilitySchema(DisplayMixin):
    token_id = fields.Integer(required=True)
    token_text = fields.String(required=True)
    probability = fields.Float(required=True)
    log_probability = fields.Float(required=True)
    kept = fields.Boolean(
        required=True, metadata={"description": "true if the sampling rules keep it."}
    )
    sampling_probability = fields.Float(
        required=True,
        metadata={
            "description": "Its probability renormalized over the kept tokens (what a spin "
            "draws with); 0 if the rules cut it; = probability with every rule off."
        },
    )


class OtherCategorySchema(Schema):
    total_probability = fields.Float(
        required=True, metadata={"description": "Sum of the probabilities below the threshold."}
    )
    token_count = fields.Integer(required=True)
    kept_token_count = fields.Integer(
        required=True, metadata={"description": "How many of its tokens the rules keep."}
    )
    sample_tokens = BuiltList(fields.Nested(TokenProbabilitySchema), required=True)


class SamplingSchema(Schema):
    top_k = fields.Integer(required=True, metadata={"description": "0 = off."})
    top_p = fields.Float(required=True, metadata={"description": "1 = off."})
    min_p = fields.Float(required=True, metadata={"description": "0 = off."})
    kept_token_count = fields.Integer(
        required=True, metadata={"description": "Tokens of the whole vocabulary the rules keep."}
    )
    kept_probability = fields.Float(
        required=True,
        metadata={"description": "Their true probabilities, summed."},
    )


class NextTokenProbsSchema(Schema):
    session_id = fields.String(required=True)
    current_text = fields.String(required=True)
    threshold = fields.Float(required=True)
    temperature = fields.Float(required=True)
    above_threshold_tokens = BuiltList(
        fields.Nested(TokenProbabilitySchema),
        required=True,
        metadata={"description": "Tokens with probability >= threshold, most likely first."},
    )
    other_category = fields.Nested(OtherCategorySchema, required=True)
    total_above_threshold_probability = fields.Float(required=True)
    vocabulary_size = fields.Integer(required=True)
    entropy_bits = fields.Float(
        required=True,
        metadata={
            "description": "Shannon entropy of the whole distribution at this temperature, in "
            "bits (-sum p log2 p over the vocabulary), before any sampling rule."
        },
    )
    effective_choices = fields.Float(
        required=True,
        metadata={"description": "2 ** entropy_bits: as uncertain as this many equal choices."},
    )
    sampling = fields.Nested(
        SamplingSchema,
        required=True,
        metadata={"description": "The sampling rules asked for and what they keep."},
    )
    version = _version()
