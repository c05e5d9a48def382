"""Request and response schemas: the seed's field names, documented for API users."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from tokenwheel.domain.session import CLASS_CODE_PATTERN, CLASS_CODE_RULE
from tokenwheel.service import (
    DEFAULT_TEMPERATURE,
    DEFAULT_THRESHOLD,
    MAX_SEED,
    MAX_TEMPERATURE,
)


class StrictInteger(fields.Integer):
    """An integer that refuses booleans and numeric strings in JSON bodies."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class StrictFloat(fields.Float):
    """A number that refuses booleans and numbers in strings: for JSON bodies (query
    strings are text and use plain ``fields.Float``)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


def _threshold(*, body: bool = False) -> fields.Float:
    kind = StrictFloat if body else fields.Float
    return kind(
        load_default=DEFAULT_THRESHOLD,
        allow_nan=False,
        validate=validate.Range(min=0.0, max=1.0),
        metadata={"description": "Tokens with probability >= threshold get their own wedge."},
    )


def _temperature(*, body: bool = False) -> fields.Float:
    kind = StrictFloat if body else fields.Float
    return kind(
        load_default=DEFAULT_TEMPERATURE,
        allow_nan=False,
        validate=validate.Range(min=0.0, min_inclusive=False, max=MAX_TEMPERATURE),
        metadata={
            "description": "softmax(logits / temperature): above 0, at most 10. Low values "
            "sharpen the wheel towards the most likely token, high ones flatten it."
        },
    )


class BuiltList(fields.List):
    """A list the view has already built in the documented shape, JSON-ready (times as
    ISO 8601 text), sent as it is: a wheel's tokens and a session's token history.
    marshmallow's field-by-field dump cost 18 us a token, 0.9 s for a whole vocabulary at
    threshold 0 and 4 ms for every append at 120 tokens of history; the OpenAPI document
    still describes every item, and the schema tests check the answers against it."""

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> Any:
        return None if value is None else list(value)


class DisplayMixin(Schema):
    display_text = fields.String(
        required=True,
        metadata={
            "description": "The token as shown: whitespace made visible (␠ ↵ ⇥), special "
            "tokens by name, a partial UTF-8 character as its bytes (⟨F0 9F⟩)."
        },
    )
    partial_utf8 = fields.Boolean(
        required=True,
        metadata={"description": "The token is only part of a UTF-8 character."},
    )
    special = fields.Boolean(required=True, metadata={"description": "A special token."})
    end_of_sequence = fields.Boolean(
        required=True, metadata={"description": "The model's end-of-sequence token."}
    )


def _seed(description: str) -> StrictInteger:
    return StrictInteger(
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=0, max=MAX_SEED),
        metadata={"description": description},
    )


def _version() -> fields.Integer:
    return fields.Integer(
        required=True,
        metadata={
            "description": "The session's version: how many events it has. Also sent as "
            'the ETag header, W/"<version>".'
        },
    )


def _expected_version() -> StrictInteger:
    return StrictInteger(
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=1, max=999_999_999),
        metadata={
            "description": "Apply only if the session is still at this version (the "
            "`version` of the response you decided on), else 409. Same as If-Match."
        },
    )


class ApiErrorSchema(Schema):
    error = fields.String(required=True, metadata={"description": "Short error name."})
    message = fields.String(required=True, metadata={"description": "What went wrong, for people."})
    errors = fields.Dict(metadata={"description": "Field-by-field validation messages."})
    current_text = fields.String(metadata={"description": "Sent with 'Cannot undo'."})
    version = fields.Integer(
        metadata={"description": "Sent with 'Version conflict': the session's current version."}
    )
    request_id = fields.String(
        metadata={"description": "Sent with 5xx errors: quote it to the operator (it is logged)."}
    )


VERSION_TAG = r'^\s*(\*|(W/)?("[0-9]{1,9}"|[0-9]{1,9}))\s*$'


def _if_match() -> fields.String:
    return fields.String(
        data_key="If-Match",
        validate=validate.Regexp(VERSION_TAG, error='Use a session version such as W/"5", or *.'),
        metadata={
            "description": "Apply only if the session is still at this version (its ETag), "
            "else 409 with the current version."
        },
    )


def _idempotency_key() -> fields.String:
    return fields.String(
        data_key="Idempotency-Key",
        validate=validate.Regexp(
            r"^[\x21-\x7e]{1,255}$", error="Use 1 to 255 visible ASCII characters."
        ),
        metadata={
            "description": "A key you choose per change (a UUID). Retrying with the same key "
            "returns the first response and changes nothing more; the same key with a "
            "different request is 422. Kept for TOKENWHEEL_IDEMPOTENCY_WINDOW (24 h)."
        },
    )


class IdempotencyHeadersSchema(Schema):
    idempotency_key = _idempotency_key()


class MutationHeadersSchema(Schema):
    if_match = _if_match()
    idempotency_key = _idempotency_key()


class DeleteHeadersSchema(Schema):
    if_match = _if_match()


def class_code_field(description: str, **kw: Any) -> fields.String:
    return fields.String(
        validate=validate.Regexp(CLASS_CODE_PATTERN, error=f"Must be {CLASS_CODE_RULE}."),
        metadata={"description": f"{description} ({CLASS_CODE_RULE}; case-sensitive)."},
        **kw,
    )


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


class SessionCreatedSchema(Schema):
    session_id = fields.String(required=True)
    model_name = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    class_code = fields.String(metadata={"description": "Present when the session has one."})
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
    selected_at = fields.DateTime(required=True)


class SessionStateSchema(Schema):
    session_id = fields.String(required=True)
    model_name = fields.String(required=True)
    initial_prompt = fields.String(
        required=True, allow_none=True, metadata={"description": "null until a prompt is set."}
    )
    current_text = fields.String(required=True)
    token_history = BuiltList(fields.Nested(TokenHistorySchema), required=True)
    generation_count = fields.Integer(required=True)
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


class NextTokenQuerySchema(Schema):
    threshold = _threshold()
    other_top_k = fields.Integer(
        load_default=10,
        validate=validate.Range(min=0, max=100),
        metadata={"description": "How many of the Other wedge's most likely tokens to list."},
    )
    temperature = _temperature()


class TokenProbabilitySchema(DisplayMixin):
    token_id = fields.Integer(required=True)
    token_text = fields.String(required=True)
    probability = fields.Float(required=True)
    log_probability = fields.Float(required=True)


class OtherCategorySchema(Schema):
    total_probability = fields.Float(
        required=True, metadata={"description": "Sum of the probabilities below the threshold."}
    )
    token_count = fields.Integer(required=True)
    sample_tokens = BuiltList(fields.Nested(TokenProbabilitySchema), required=True)


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
    version = _version()


class AppendTokenSchema(Schema):
    token_id = StrictInteger(metadata={"description": "The token to append."})
    token_text = fields.String(
        validate=validate.Length(max=1000),
        metadata={"description": "Exactly one token's text; alone, or agreeing with token_id."},
    )
    category = fields.String(
        validate=validate.OneOf(["other"]),
        metadata={"description": "'other': the server samples from the Other wedge."},
    )
    threshold = _threshold(body=True)
    temperature = _temperature(body=True)
    expected_version = _expected_version()

    @validates_schema
    def exactly_one_form(self, data: dict[str, Any], **kwargs: Any) -> None:
        has_id = data.get("token_id") is not None
        has_text = data.get("token_text") is not None
        has_category = data.get("category") is not None
        if has_category and (has_id or has_text):
            raise ValidationError("Send category 'other' alone, without token_id or token_text.")
        if not (has_id or has_text or has_category):
            raise ValidationError("Send one of token_id, token_text or category 'other'.")


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


class FirstTokenCountSchema(Schema):
    token_id = fields.Integer(required=True)
    token_text = fields.String(required=True)
    observed = fields.Integer(required=True, metadata={"description": "Sessions that chose it."})
    probability = fields.Float(
        required=True, metadata={"description": "The model's probability, as recorded."}
    )
    expected = fields.Float(required=True, metadata={"description": "probability x sessions."})


class FirstTokenGroupSchema(Schema):
    model_name = fields.String(required=True)
    prompt = fields.String(required=True)
    temperature = fields.Float(required=True)
    session_count = fields.Integer(required=True)
    tokens = fields.List(fields.Nested(FirstTokenCountSchema), required=True)
    expected_unlisted = fields.Float(
        required=True, metadata={"description": "Expected count of all tokens nobody chose."}
    )


class ClassStatisticsSchema(TextStatisticsSchema):
    class_code = fields.String(required=True)
    session_count = fields.Integer(required=True)
    first_tokens = fields.List(
        fields.Nested(FirstTokenGroupSchema),
        required=True,
        metadata={
            "description": "For each wheel two or more sessions shared (same model, prompt "
            "and first-token temperature): how often each first token was chosen, against "
            "how often the model's probability expects it."
        },
    )


# ---------------------------------------------------------------- teacher


def _aware(**kw: Any) -> fields.AwareDateTime:
    return fields.AwareDateTime(format="iso", default_timezone=UTC, **kw)


class SessionListQuerySchema(Schema):
    class_code = class_code_field("Only this class")
    model = fields.String(
        validate=validate.Length(min=1, max=128), metadata={"description": "Only this model id."}
    )
    status = fields.String(
        validate=validate.OneOf(["active", "expired", "deleted"]),
        metadata={"description": "active | expired (idle past the TTL) | deleted (by the student)"},
    )
    created_after = _aware(
        metadata={"description": "Created at or after (ISO 8601; UTC if naive)."}
    )
    created_before = _aware(metadata={"description": "Created before (ISO 8601; UTC if naive)."})
    page = fields.Integer(load_default=1, validate=validate.Range(min=1))
    page_size = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class SessionRecordSchema(Schema):
    session_id = fields.String(required=True)
    class_code = fields.String(required=True, allow_none=True)
    model_name = fields.String(required=True)
    status = fields.String(required=True, metadata={"description": "active | expired | deleted"})
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True, metadata={"description": "Time of the last event."})
    last_accessed = fields.DateTime(required=True)
    expired_at = fields.DateTime(required=True, allow_none=True)
    version = fields.Integer(required=True, metadata={"description": "Number of events."})
    generated_count = fields.Integer(required=True)
    undo_count = fields.Integer(required=True)


class SessionListSchema(Schema):
    sessions = fields.List(fields.Nested(SessionRecordSchema), required=True)
    total = fields.Integer(required=True, metadata={"description": "Matches on all pages."})
    page = fields.Integer(required=True)
    page_size = fields.Integer(required=True)


class TimelineEntrySchema(Schema):
    version = fields.Integer(required=True)
    type = fields.String(
        required=True,
        metadata={
            "description": "SessionCreated | SetPrompt | TokenAppended | Undone | SessionDeleted"
        },
    )
    occurred_at = fields.DateTime(required=True)
    payload = fields.Dict(
        required=True, metadata={"description": "The event's fields, as in docs/events.md."}
    )
    undone = fields.Boolean(
        required=True,
        allow_none=True,
        metadata={"description": "TokenAppended: a later Undone removed it; else null."},
    )
    in_final_text = fields.Boolean(
        required=True,
        allow_none=True,
        metadata={"description": "TokenAppended: still in the text the session ended with."},
    )


class ArchivedStateSchema(Schema):
    """The student's view of the session (as GET /api/sessions/{id} gave it), rebuilt
    from the events; ``updated_at`` replaces ``last_accessed``."""

    session_id = fields.String(required=True)
    model_name = fields.String(required=True)
    class_code = fields.String(required=True, allow_none=True)
    initial_prompt = fields.String(required=True, allow_none=True)
    current_text = fields.String(required=True)
    token_history = BuiltList(fields.Nested(TokenHistorySchema), required=True)
    generation_count = fields.Integer(required=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)
    version = fields.Integer(required=True)
    deleted = fields.Boolean(required=True)


class SessionDetailSchema(Schema):
    session = fields.Nested(SessionRecordSchema, required=True)
    state = fields.Nested(ArchivedStateSchema, required=True)
    timeline = fields.List(fields.Nested(TimelineEntrySchema), required=True)


class ReplayQuerySchema(Schema):
    version = fields.Integer(
        required=True,
        validate=validate.Range(min=1),
        metadata={"description": "Event version; 1 is SessionCreated."},
    )


class ReplaySchema(Schema):
    version = fields.Integer(required=True)
    latest_version = fields.Integer(required=True)
    event = fields.Nested(
        TimelineEntrySchema,
        required=True,
        metadata={
            "description": "The event at `version`. Its `undone` and `in_final_text` say "
            "what became of the token by the session's end, not what was known at `version`."
        },
    )
    state = fields.Nested(ArchivedStateSchema, required=True)


class ReplayedNextTokenQuerySchema(NextTokenQuerySchema, ReplayQuerySchema):
    """The student's wheel parameters at one version (which needs a prompt by then)."""


class ReplayedNextTokenProbsSchema(NextTokenProbsSchema):
    version = fields.Integer(required=True)
    latest_version = fields.Integer(required=True)


class ExportQuerySchema(Schema):
    format = fields.String(
        load_default="json",
        validate=validate.OneOf(["csv", "json"]),
        metadata={"description": "csv (one row per event) or json (a list of events)."},
    )


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
