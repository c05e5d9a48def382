"""The teacher API's schemas: session lists, timelines, a session at a version, class
statistics, exports."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from marshmallow import Schema, fields, validate

from tokenwheel.domain import rules

from .fields import BuiltList, DisplayMixin, class_code_field
from .schemas import TextStatisticsSchema, TokenHistorySchema, text_log_probability
from .wheel_schemas import NextTokenProbsSchema, NextTokenQuerySchema


class FirstTokenCountSchema(DisplayMixin):
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


class StudentStatisticsSchema(Schema):
    session_id = fields.String(required=True)
    nickname = fields.String(
        required=True,
        allow_none=True,
        metadata={
            "description": "The nickname the student joined with (teachers only); null for "
            "a session that joined without one (an old free-text class code)."
        },
    )
    tokens_generated = fields.Integer(
        required=True, metadata={"description": "Tokens in the session's current text."}
    )
    average_probability = fields.Float(
        required=True,
        allow_none=True,
        metadata={
            "description": "Mean of the probability recorded for each token of the current "
            "text when it was chosen; null without tokens."
        },
    )
    other_count = fields.Integer(
        required=True,
        metadata={"description": "Tokens of the current text taken from the Other wedge."},
    )
    other_rate = fields.Float(
        required=True,
        allow_none=True,
        metadata={
            "description": "other_count / tokens_generated: the share of the current text "
            "picked from Other; null without tokens."
        },
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
    students = fields.List(
        fields.Nested(StudentStatisticsSchema),
        required=True,
        metadata={
            "description": "One entry per session of the class, in the order they joined: "
            "its current text's token count, average probability and Other rate."
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
        validate=validate.OneOf(rules.STATUSES),
        metadata={"description": "active | expired (idle past the TTL) | deleted (by the student)"},
    )
    created_after = _aware(
        metadata={"description": "Created at or after (ISO 8601; UTC if naive)."}
    )
    created_before = _aware(metadata={"description": "Created before (ISO 8601; UTC if naive)."})
    page = fields.Integer(
        load_default=1,
        validate=validate.Range(min=1, max=rules.MAX_PAGE),
        metadata={"description": "From 1; pages past the last matching session are empty."},
    )
    page_size = fields.Integer(
        load_default=rules.DEFAULT_PAGE_SIZE,
        validate=validate.Range(min=1, max=rules.MAX_PAGE_SIZE),
    )


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


class SessionListItemSchema(SessionRecordSchema):
    prompt = fields.String(
        required=True,
        allow_none=True,
        metadata={
            "description": "The session's current prompt, verbatim, cut to its first "
            f"{rules.LIST_TEXT_CHARS} characters (the last one then '…'); null before a "
            "prompt is set."
        },
    )
    current_text = fields.String(
        required=True,
        metadata={
            "description": "What the student sees now (prompt + generated text), cut to its "
            f"last {rules.LIST_TEXT_CHARS} characters (the first one then '…'); '' before a "
            "prompt is set. Decoded as the student API does while the session's model is "
            "loaded, else the recorded token texts joined."
        },
    )


class SessionListSchema(Schema):
    sessions = fields.List(fields.Nested(SessionListItemSchema), required=True)
    total = fields.Integer(required=True, metadata={"description": "Matches on all pages."})
    page = fields.Integer(required=True)
    page_size = fields.Integer(required=True)


class TimelineEntrySchema(Schema):
    version = fields.Integer(required=True)
    type = fields.String(
        required=True,
        metadata={
            "description": "SessionCreated | SessionForked | SetPrompt | TokenAppended | "
            "Undone | SessionDeleted | GuessMade"
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
    token_display = fields.Nested(
        DisplayMixin,
        required=True,
        allow_none=True,
        metadata={
            "description": "TokenAppended and Undone: how the token is shown (as in "
            "token_history); else null."
        },
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
    log_probability = text_log_probability()
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)
    version = fields.Integer(required=True)
    deleted = fields.Boolean(required=True)


class SessionDetailSchema(Schema):
    session = fields.Nested(SessionRecordSchema, required=True)
    state = fields.Nested(ArchivedStateSchema, required=True)
    timeline = fields.List(fields.Nested(TimelineEntrySchema), required=True)


class VersionQuerySchema(Schema):
    version = fields.Integer(
        required=True,
        validate=validate.Range(min=1, max=rules.MAX_VERSION),
        metadata={"description": "Event version; 1 is SessionCreated."},
    )


class SessionAtSchema(Schema):
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


class WheelAtQuerySchema(NextTokenQuerySchema, VersionQuerySchema):
    """The student's wheel parameters at one version (which needs a prompt by then)."""


class WheelAtSchema(NextTokenProbsSchema):
    version = fields.Integer(required=True)
    latest_version = fields.Integer(required=True)


class ExportQuerySchema(Schema):
    format = fields.String(
        load_default=rules.DEFAULT_EXPORT_FORMAT,
        validate=validate.OneOf(rules.EXPORT_FORMATS),
        metadata={"description": "csv (one row per event) or json (a list of events)."},
    )
