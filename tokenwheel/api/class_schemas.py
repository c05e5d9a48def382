"""Schemas of classes, rounds and guesses: the teacher's (with nicknames) and the
student's (never another student's nickname)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from tokenwheel.domain import rules

from .fields import BuiltList, _temperature, _threshold, _version
from .wheel_schemas import OtherCategorySchema, TokenProbabilitySchema

ROUND_ID = validate.Length(min=1, max=36)


class OpenClassSchema(Schema):
    name = fields.String(
        required=True,
        validate=validate.Length(min=1, max=4 * rules.MAX_CLASS_NAME_CHARS),
        metadata={
            "description": "What the teacher calls the class, e.g. '7b Tuesday': trimmed, "
            f"1 to {rules.MAX_CLASS_NAME_CHARS} characters, one line."
        },
    )


class ClassSchema(Schema):
    class_code = fields.String(
        required=True,
        metadata={
            "description": f"The join code: {rules.CLASS_CODE_LENGTH} characters of "
            f"{rules.CLASS_CODE_ALPHABET} (no 0/O, 1/I/L). Students may type it in any case."
        },
    )
    name = fields.String(required=True)
    status = fields.String(required=True, metadata={"description": "open | closed"})
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True, metadata={"description": "Its last event."})
    closed_at = fields.DateTime(required=True, allow_none=True)
    version = fields.Integer(required=True, metadata={"description": "Events in its stream."})


class ClassListQuerySchema(Schema):
    status = fields.String(validate=validate.OneOf(rules.CLASS_STATUSES))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=rules.MAX_PAGE))
    page_size = fields.Integer(
        load_default=rules.DEFAULT_PAGE_SIZE,
        validate=validate.Range(min=1, max=rules.MAX_PAGE_SIZE),
    )


class ClassListSchema(Schema):
    classes = fields.List(fields.Nested(ClassSchema), required=True)
    total = fields.Integer(required=True)
    page = fields.Integer(required=True)
    page_size = fields.Integer(required=True)


class MemberSchema(Schema):
    session_id = fields.String(required=True)
    nickname = fields.String(required=True)
    joined_at = fields.DateTime(required=True)


class RoundSchema(Schema):
    round_id = fields.String(required=True)
    class_code = fields.String(required=True)
    prompt = fields.String(required=True)
    model_name = fields.String(required=True)
    temperature = fields.Float(required=True)
    threshold = fields.Float(required=True)
    status = fields.String(required=True, metadata={"description": "open | revealed"})
    started_at = fields.DateTime(required=True)
    revealed_at = fields.DateTime(required=True, allow_none=True)
    guess_count = fields.Integer(required=True, metadata={"description": "Guesses so far."})


class ClassDetailSchema(ClassSchema):
    students = fields.List(
        fields.Nested(MemberSchema),
        required=True,
        metadata={"description": "Who joined, with their nicknames, in order of joining."},
    )
    rounds = fields.List(fields.Nested(RoundSchema), required=True)


class StartRoundSchema(Schema):
    prompt = fields.String(required=True, metadata={"description": "The text to continue."})
    model_name = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(min=1, max=128),
        metadata={"description": "A model id from GET /api/models; the default if absent."},
    )
    temperature = _temperature(body=True)
    threshold = _threshold(body=True)


class RoundListSchema(Schema):
    rounds = fields.List(fields.Nested(RoundSchema), required=True)


class GuessFieldsSchema(Schema):
    text = fields.String(required=True, metadata={"description": "As the student typed it."})
    token_ids = fields.List(
        fields.Integer(),
        required=True,
        metadata={"description": "What was scored (a leading space added before a word)."},
    )
    first_token_probability = fields.Float(required=True)
    first_token_rank = fields.Integer(required=True, metadata={"description": "1 = most likely."})
    text_probability = fields.Float(
        required=True,
        metadata={"description": "The whole guess: the product of its tokens' probabilities."},
    )


class TeacherGuessSchema(GuessFieldsSchema):
    session_id = fields.String(required=True)
    nickname = fields.String(
        required=True, allow_none=True, metadata={"description": "null once purged."}
    )
    single_token = fields.Boolean(required=True)
    made_at = fields.DateTime(required=True)


class RoundDetailSchema(RoundSchema):
    guesses = fields.List(fields.Nested(TeacherGuessSchema), required=True)


class CountedTokenSchema(TokenProbabilitySchema):
    guess_count = fields.Integer(
        required=True, metadata={"description": "Students whose guess was exactly this token."}
    )


class CountedOtherSchema(OtherCategorySchema):
    sample_tokens = BuiltList(fields.Nested(CountedTokenSchema), required=True)
    guess_count = fields.Integer(
        required=True,
        metadata={"description": "One-token guesses that fell in the Other wedge."},
    )


class RevealedWheelSchema(Schema):
    threshold = fields.Float(required=True)
    temperature = fields.Float(required=True)
    above_threshold_tokens = BuiltList(fields.Nested(CountedTokenSchema), required=True)
    other_category = fields.Nested(CountedOtherSchema, required=True)
    total_above_threshold_probability = fields.Float(required=True)
    vocabulary_size = fields.Integer(required=True)
    entropy_bits = fields.Float(required=True)


class GuessGroupSchema(Schema):
    text = fields.String(
        required=True, metadata={"description": "The scored tokens, decoded together."}
    )
    token_ids = fields.List(fields.Integer(), required=True)
    count = fields.Integer(required=True)
    first_token_probability = fields.Float(required=True)
    first_token_rank = fields.Integer(required=True)
    text_probability = fields.Float(required=True)
    single_token = fields.Boolean(required=True)


class RevealedSchema(Schema):
    wheel = fields.Nested(RevealedWheelSchema, required=True)
    unlisted_guesses = fields.List(
        fields.Nested(GuessGroupSchema),
        required=True,
        metadata={
            "description": "Guesses not counted on a wedge, most frequent first: several "
            "tokens, or one token in the Other wedge."
        },
    )


class RevealedRoundSchema(RoundSchema, RevealedSchema):
    pass


# ---------------------------------------------------------------- students


class GuessSchema(Schema):
    round_id = fields.String(required=True, validate=ROUND_ID)
    text = fields.String(
        required=True,
        validate=validate.Length(min=1, max=4 * rules.MAX_GUESS_CHARS),
        metadata={
            "description": f"The next word: trimmed, 1 to {rules.MAX_GUESS_CHARS} characters, "
            f"at most {rules.MAX_GUESS_TOKENS} tokens."
        },
    )


class GuessResponseSchema(GuessFieldsSchema):
    session_id = fields.String(required=True)
    round_id = fields.String(required=True)
    text_log_probability = fields.Float(required=True)
    single_token = fields.Boolean(required=True)
    version = _version()


class StudentRoundItemSchema(Schema):
    round_id = fields.String(required=True)
    prompt = fields.String(required=True)
    model_name = fields.String(required=True)
    temperature = fields.Float(required=True)
    status = fields.String(required=True, metadata={"description": "open | revealed"})
    started_at = fields.DateTime(required=True)
    revealed_at = fields.DateTime(required=True, allow_none=True)
    guess_count = fields.Integer(required=True)
    your_guess = fields.Nested(
        GuessFieldsSchema,
        required=True,
        allow_none=True,
        metadata={"description": "This session's guess; null before it guesses."},
    )
    revealed = fields.Nested(
        RevealedSchema,
        required=True,
        allow_none=True,
        metadata={"description": "After the reveal: the wheel with the class's counts."},
    )


class StudentRoundSchema(Schema):
    session_id = fields.String(required=True)
    class_code = fields.String(required=True)
    round = fields.Nested(
        StudentRoundItemSchema,
        required=True,
        allow_none=True,
        metadata={"description": "The class's current round; null before the first."},
    )
