"""The student API's request and response schemas: the seed's field names, documented for
API users. Shared fields live in :mod:`.fields`; the teacher's schemas in
:mod:`.teacher_schemas`."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from tokenwheel.domain import rules
from tokenwheel.domain.errors import InvalidCommand

from .fields import (
    ApiErrorSchema,
    BuiltList,
    DeleteHeadersSchema,
    DisplayMixin,
    IdempotencyHeadersSchema,
    MutationHeadersSchema,
    StrictInteger,
    _expected_version,
    _min_p,
    _seed,
    _temperature,
    _threshold,
    _top_k,
    _top_p,
    _version,
    class_code_field,
)

__all__ = [
    "ApiErrorSchema",
    "DeleteHeadersSchema",
    "IdempotencyHeadersSchema",
    "MutationHeadersSchema",
]


class CreateSessionSchema(Schema):
    model_name = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(min=1, max=128),
        metadata={"description": "A model id from GET /api/models; the default model if absent."},
    )
    class_code = class_code_field(
        "The class this session belongs to, as the teacher gave it out",
        load_default=None,
        allow_none=True,
    )
    seed = _seed(
        "Makes spins reproducible: with the same seed and the same actions a session draws "
        "the same tokens. 0 to 2**63 - 1; absent means fresh randomness."
    )
    nickname = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(min=1, max=4 * rules.MAX_NICKNAME_CHARS),
        metadata={
            "description": "Join the opened class `class_code` under this name: trimmed, 1 to "
            f"{rules.MAX_NICKNAME_CHARS} characters, unique in the class ignoring case. Only "
            "the teacher sees it."
        },
    )


class SessionCreatedSchema(Schema):
    session_id = fields.String(required=True)
    model_name = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    class_code = fields.String(metadata={"description": "Present when the session has one."})
    nickname = fields.String(
        metadata={"description": "Present when the session joined a class with one."}
    )
    version = _version()


class TokenHistorySchema(DisplayMixin):
    token_id = fields.Integer(required=True)
    token_text = fields.String(required=True)
    probability = fields.Float(required=True)
    log_probability = fields.Float(required=True)
    category = fields.String(required=True, metadata={"description": "above_threshold | other"})
    sampled_from_other = fields.Boolean(required=True)
    selection = fields.String(required=True, metadata={"description": "explicit | other | spin"})
    rank = fields.Integer(required=True, metadata={"description": "1 = most likely token."})
    top_k = fields.Integer(required=True, metadata={"description": "Rule when chosen; 0 = off."})
    top_p = fields.Float(required=True, metadata={"description": "Rule when chosen; 1 = off."})
    min_p = fields.Float(required=True, metadata={"description": "Rule when chosen; 0 = off."})
    sampling_probability = fields.Float(
        required=True,
        allow_none=True,
        metadata={
            "description": "Its probability renormalized over the tokens the rules kept (0 "
            "if they cut it); null for tokens chosen before the rules existed."
        },
    )
    surprisal_bits = fields.Float(
        required=True,
        metadata={
            "description": "How surprising the token was: -log2 of its recorded probability "
            "(= -log_probability / ln 2)."
        },
    )
    selected_at = fields.DateTime(required=True)


def text_log_probability() -> fields.Float:
    return fields.Float(
        required=True,
        metadata={
            "description": "Log-probability of the generated text given the prompt: the sum "
            "of token_history's log_probability (natural log, as recorded; 0 with no tokens)."
        },
    )


class SessionStateSchema(Schema):
    session_id = fields.String(required=True)
    model_name = fields.String(required=True)
    initial_prompt = fields.String(
        required=True, allow_none=True, metadata={"description": "null until a prompt is set."}
    )
    current_text = fields.String(required=True)
    token_history = BuiltList(fields.Nested(TokenHistorySchema), required=True)
    generation_count = fields.Integer(required=True)
    log_probability = text_log_probability()
    created_at = fields.DateTime(required=True)
    last_accessed = fields.DateTime(required=True)
    version = _version()


class SetPromptSchema(Schema):
    prompt = fields.String(
        required=True,
        metadata={
            "description": "The prompt; kept verbatim. Resets generated tokens. At most "
            "TOKENWHEEL_MAX_PROMPT_CHARS characters and TOKENWHEEL_MAX_PROMPT_TOKENS tokens."
        },
    )
    expected_version = _expected_version()


class SetPromptResponseSchema(Schema):
    session_id = fields.String(required=True)
    current_text = fields.String(required=True)
    token_count = fields.Integer(
        required=True, metadata={"description": "Prompt tokens the model sees (BOS included)."}
    )
    message = fields.String(required=True)
    version = _version()


class AppendTokenSchema(Schema):
    token_id = StrictInteger(metadata={"description": "The token to append."})
    token_text = fields.String(
        validate=validate.Length(max=rules.MAX_TOKEN_TEXT_CHARS),
        metadata={"description": "Exactly one token's text; alone, or agreeing with token_id."},
    )
    category = fields.String(
        validate=validate.OneOf([rules.APPEND_CATEGORY]),
        metadata={"description": "'other': the server samples from the Other wedge."},
    )
    threshold = _threshold(body=True)
    temperature = _temperature(body=True)
    top_k = _top_k(body=True)
    top_p = _top_p(body=True)
    min_p = _min_p(body=True)
    expected_version = _expected_version()

    @validates_schema
    def exactly_one_form(self, data: dict[str, Any], **kwargs: Any) -> None:
        try:
            rules.check_append_form(
                data.get("token_id"), data.get("token_text"), data.get("category")
            )
        except InvalidCommand as exc:
            raise ValidationError(exc.message) from None


class AppendedTokenSchema(DisplayMixin):
    token_id = fields.Integer(required=True)
    token_text = fields.String(required=True)
    probability = fields.Float(required=True)
    log_probability = fields.Float(required=True)
    category = fields.String(required=True)
    sampled_from_other = fields.Boolean(required=True)
    selection = fields.String(required=True)
    rank = fields.Integer(required=True)


class OtherCategoryInfoSchema(Schema):
    total_probability = fields.Float(required=True)
    token_count = fields.Integer(required=True)
    selected_token_rank = fields.Integer(
        required=True, metadata={"description": "Rank inside the Other wedge (1 = most likely)."}
    )


class AppendTokenResponseSchema(Schema):
    session_id = fields.String(required=True)
    previous_text = fields.String(required=True)
    appended_token = fields.Nested(AppendedTokenSchema, required=True)
    current_text = fields.String(required=True)
    other_category_info = fields.Nested(
        OtherCategoryInfoSchema, metadata={"description": "Present when the token was in Other."}
    )
    token_history = BuiltList(fields.Nested(TokenHistorySchema), required=True)
    version = _version()


class UndoSchema(Schema):
    expected_version = _expected_version()


class SpinSchema(Schema):
    threshold = _threshold(body=True)
    temperature = _temperature(body=True)
    top_k = _top_k(body=True)
    top_p = _top_p(body=True)
    min_p = _min_p(body=True)
    expected_version = _expected_version()
    seed = _seed(
        "Seed for this spin's draw instead of the session's seed (the draw also depends "
        "on the session's version, so repeated spins differ)."
    )


class LandedSchema(Schema):
    wedge = fields.String(
        required=True,
        validate=validate.OneOf(["token", "other"]),
        metadata={"description": "'token': an above-threshold wedge; 'other': the Other wedge."},
    )
    wedge_index = fields.Integer(
        required=True,
        metadata={
            "description": "Position on the wheel: the index in above_threshold_tokens, or "
            "len(above_threshold_tokens) for the Other wedge."
        },
    )
    start_angle = fields.Float(
        required=True, metadata={"description": "Where the landed wedge starts (degrees)."}
    )
    end_angle = fields.Float(
        required=True, metadata={"description": "Where it ends; the last wedge ends at 360."}
    )


class SpinResponseSchema(AppendTokenResponseSchema):
    draw = fields.Float(required=True, metadata={"description": "The uniform draw, in [0, 1)."})
    angle = fields.Float(
        required=True,
        metadata={
            "description": "Where the pointer stops: 360 * draw degrees clockwise from the "
            "top, inside the landed wedge."
        },
    )
    landed = fields.Nested(LandedSchema, required=True)


class UndoResponseSchema(Schema):
    session_id = fields.String(required=True)
    previous_text = fields.String(required=True)
    removed_token = fields.Nested(AppendedTokenSchema, required=True)
    current_text = fields.String(required=True)
    token_history = BuiltList(fields.Nested(TokenHistorySchema), required=True)
    message = fields.String(required=True)
    version = _version()


class DeleteResponseSchema(Schema):
    message = fields.String(required=True)
    session_id = fields.String(required=True)
    version = _version()


class ModelSchema(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    description = fields.String(required=True)
    parameters = fields.String(required=True)
    default = fields.Boolean(
        required=True, metadata={"description": "Exactly one model: what sessions get by default."}
    )
    available = fields.Boolean(required=True, metadata={"description": "Can load here now."})
    loaded = fields.Boolean(required=True)
    source = fields.String(required=True, metadata={"description": "hub | bundled | local"})
    reason = fields.String(allow_none=True, metadata={"description": "Why it is unavailable."})
    vocabulary_size = fields.Integer(
        allow_none=True, metadata={"description": "The real vocabulary (known once loaded)."}
    )
    max_context = fields.Integer(
        allow_none=True, metadata={"description": "Most tokens (prompt + generated) it sees."}
    )
    dtype = fields.String(allow_none=True, metadata={"description": "Weights dtype once loaded."})
    engine = fields.String(
        required=True, metadata={"description": "torch | llama.cpp (the GGUF file, opt-in)."}
    )
    max_abs_dp_vs_float32 = fields.Float(
        allow_none=True, metadata={"description": "Measured max |dp| from float32 (null: unknown)."}
    )


class ModelsSchema(Schema):
    models = fields.List(fields.Nested(ModelSchema), required=True)
    default_model = fields.String(required=True, metadata={"description": "Effective default."})
    configured_default_model = fields.String(required=True)
    default_reason = fields.String(
        allow_none=True,
        metadata={"description": "Why the effective default differs from the configured one."},
    )


# ---------------------------------------------------------------- statistics


class TextStatisticsSchema(Schema):
    """Over the tokens of the current text (undone tokens are counted only in
    ``tokens_appended`` and ``undo_count``)."""

    tokens_generated = fields.Integer(
        required=True, metadata={"description": "Generated tokens in the current text."}
    )
    tokens_appended = fields.Integer(
        required=True,
        metadata={"description": "Every token ever appended, including undone and reset ones."},
    )
    other_picks = fields.Integer(
        required=True,
        metadata={
            "description": "Every token taken from the Other wedge, undone and reset ones "
            "included: how often Other was chosen (`other_count` is how much of the current "
            "text came from it)."
        },
    )
    undo_count = fields.Integer(required=True)
    prompt_count = fields.Integer(
        required=True, metadata={"description": "Prompts set (1 + the number of resets)."}
    )
    average_probability = fields.Float(
        required=True, allow_none=True, metadata={"description": "null with no tokens."}
    )
    other_count = fields.Integer(
        required=True,
        metadata={"description": "Tokens from the Other wedge (spun or picked from its list)."},
    )
    other_sampled_count = fields.Integer(
        required=True, metadata={"description": "Of those, tokens the server sampled."}
    )
    other_rate = fields.Float(required=True, allow_none=True)
    log_probability = fields.Float(
        required=True,
        metadata={"description": "Sum of the chosen tokens' natural log-probabilities."},
    )
    perplexity = fields.Float(
        required=True,
        allow_none=True,
        metadata={
            "description": "exp(-mean log-probability); null with no tokens, or when it is "
            "past the largest number (a token with no chance, chosen at a low temperature)."
        },
    )
    top_choice_count = fields.Integer(
        required=True, metadata={"description": "Steps where the most likely token was chosen."}
    )
    top_choice_rate = fields.Float(required=True, allow_none=True)


class SessionStatisticsSchema(TextStatisticsSchema):
    session_id = fields.String(required=True)
    version = _version()
    model_name = fields.String(required=True)
    class_code = fields.String(required=True, allow_none=True)
    prompt = fields.String(required=True, allow_none=True)


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"description": "Always 'ok'."})


class ReadinessSchema(Schema):
    status = fields.String(required=True, metadata={"description": "'ready' or 'not ready'."})
    checks = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        required=True,
        metadata={"description": "database and model: 'ok', or what is wrong."},
    )
    default_model = fields.String(
        required=True, allow_none=True, metadata={"description": "The effective default model."}
    )


class NotReadySchema(ReadinessSchema):
    error = fields.String(required=True)
    message = fields.String(required=True)
