"""Fields and schemas every part of the API shares: strict JSON numbers, the wheel's
settings, versions and their headers, the error body, how a token is shown."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from tokenwheel.domain import rules
from tokenwheel.domain.rules import (
    CLASS_CODE_PATTERN,
    CLASS_CODE_RULE,
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
        validate=validate.Range(min=rules.MIN_THRESHOLD, max=rules.MAX_THRESHOLD),
        metadata={"description": "Tokens with probability >= threshold get their own wedge."},
    )


def _temperature(*, body: bool = False) -> fields.Float:
    kind = StrictFloat if body else fields.Float
    return kind(
        load_default=DEFAULT_TEMPERATURE,
        allow_nan=False,
        validate=validate.Range(min=0.0, min_inclusive=False, max=MAX_TEMPERATURE),
        metadata={
            "description": "softmax(logits / temperature): above 0, at most "
            f"{MAX_TEMPERATURE:g}. Low values "
            "sharpen the wheel towards the most likely token, high ones flatten it."
        },
    )


def _top_k(*, body: bool = False) -> fields.Integer:
    kind = StrictInteger if body else fields.Integer
    return kind(
        load_default=rules.DEFAULT_TOP_K,
        validate=validate.Range(min=0, max=rules.MAX_TOP_K),
        metadata={
            "description": "Sampling rule (transformers' TopKLogitsWarper): only the top_k "
            "most likely tokens (every tie of the last one too) can be drawn. 0 = off."
        },
    )


def _top_p(*, body: bool = False) -> fields.Float:
    kind = StrictFloat if body else fields.Float
    return kind(
        load_default=rules.DEFAULT_TOP_P,
        allow_nan=False,
        validate=validate.Range(min=0.0, min_inclusive=False, max=1.0),
        metadata={
            "description": "Sampling rule (TopPLogitsWarper, after top_k): only the most "
            "likely tokens whose probabilities add up to top_p can be drawn. Above 0, at "
            "most 1; 1 = off."
        },
    )


def _min_p(*, body: bool = False) -> fields.Float:
    kind = StrictFloat if body else fields.Float
    return kind(
        load_default=rules.DEFAULT_MIN_P,
        allow_nan=False,
        validate=validate.Range(min=0.0, max=1.0, max_inclusive=False),
        metadata={
            "description": "Sampling rule (MinPLogitsWarper, after top_p): tokens below "
            "min_p times the most likely token's probability cannot be drawn. 0 (off) up "
            "to, not including, 1."
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
            "description": "The token as shown: whitespace made visible (· ↵ ⇥ ⇤), special "
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
        validate=validate.Range(min=1, max=rules.MAX_VERSION),
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
