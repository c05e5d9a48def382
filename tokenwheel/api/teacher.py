"""The teacher API: find a class's sessions, step through one, statistics, downloads.

Every route needs ``Authorization: Bearer <TOKENWHEEL_TEACHER_TOKEN>``. The check runs
before anything else (so a wrong token never learns whether a session exists) and
compares in constant time. With no token configured the whole API answers 403.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any, TypeVar

from flask import Response, current_app, request
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Forbidden, Unauthorized

from tokenwheel.domain.statistics import TimelineEntry
from tokenwheel.inference.tokens import TokenInfo
from tokenwheel.services import SessionView
from tokenwheel.services.teaching import Export, SessionFilters
from tokenwheel.settings import Settings

from . import schemas as s
from . import teacher_schemas as t
from .blueprint import Blueprint
from .bodies import display, distribution_body, session_body, statistics_body
from .documentation import DocumentedOnFirstRead
from .services import teaching

SECURITY_SCHEME = "teacherToken"
REALM = "Token Wheel teacher API"

blp = Blueprint(
    "teacher",
    __name__,
    url_prefix="/api/teacher",
    description=(
        "For teachers: sessions of a class (active, expired and deleted until purged), "
        "their timelines, step by step, statistics and exports. Needs the teacher token."
    ),
)

NOT_FOUND = {"description": "No such session, or it was purged."}
CLASS_NOT_FOUND = {"description": "No session (left) with this class code."}
F = TypeVar("F", bound=Callable[..., Any])


def require_teacher_token() -> None:
    settings: Settings = current_app.extensions["tokenwheel.settings"]
    expected = settings.teacher_token
    if expected is None:
        raise Forbidden(
            "The teacher API is off. To enable it, set TOKENWHEEL_TEACHER_TOKEN to a long "
            "random secret and restart the server; then send it as "
            "'Authorization: Bearer <token>'."
        )
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), expected.encode()
    ):
        raise Unauthorized(
            "Send the teacher token as 'Authorization: Bearer <token>'.",
            www_authenticate=WWWAuthenticate("bearer", {"realm": REALM}),
        )


def guarded(blueprint: Blueprint) -> Callable[[F], F]:
    """``teacher_only`` for ``blueprint``: ask for the token before every route (call
    once per blueprint) and document it on each route decorated."""
    blueprint.before_request(require_teacher_token)

    def teacher_only(view: F) -> F:
        return _teacher_only(blueprint, view)

    return teacher_only


def _teacher_only(blp: Blueprint, view: F) -> F:
    """Document the token requirement and its two refusals on a route."""
    view = blp.alt_response(
        401,
        schema=s.ApiErrorSchema,
        description="No teacher token, or a wrong one.",
        headers={"WWW-Authenticate": {"schema": {"type": "string"}}},
    )(view)
    view = blp.alt_response(
        403, schema=s.ApiErrorSchema, description="The teacher API is off (no token configured)."
    )(view)
    return blp.doc(security=[{SECURITY_SCHEME: []}])(view)  # type: ignore[no-any-return]


teacher_only = guarded(blp)


def register(api: DocumentedOnFirstRead) -> None:
    api.document_later(
        lambda spec: spec.components.security_scheme(
            SECURITY_SCHEME,
            {
                "type": "http",
                "scheme": "bearer",
                "description": "The value of TOKENWHEEL_TEACHER_TOKEN.",
            },
        )
    )
    api.register_blueprint(blp)


# ---------------------------------------------------------------- bodies


def record_body(record: Any) -> dict[str, Any]:
    return asdict(record)  # type: ignore[no-any-return]


def state_body(view: SessionView) -> dict[str, Any]:
    """The student's session body, rebuilt: the time of the last event stands in for
    ``last_accessed`` (reads are not events)."""
    body = session_body(view)
    del body["last_accessed"]
    state = view.state
    return {
        **body,
        "class_code": state.class_code,
        "updated_at": state.updated_at,
        "version": state.version,
        "deleted": state.deleted,
    }


def timeline_body(entry: TimelineEntry, infos: Mapping[int, TokenInfo]) -> dict[str, Any]:
    """An event of the timeline; ``token_display``: how its token is shown (TokenAppended,
    Undone), as every token the student API sends."""
    body = asdict(entry)
    token_id = entry.payload.get("token_id")
    info = infos.get(token_id) if isinstance(token_id, int) else None
    body["token_display"] = display(info) if info is not None else None
    return body


def download(export: Export) -> Response:
    return Response(
        export.content,
        content_type=export.content_type,
        headers={"Content-Disposition": f'attachment; filename="{export.filename}"'},
    )


DOWNLOAD_DOC = {
    "responses": {
        "200": {
            "description": "A file: CSV with one row per event (payload fields as columns), "
            "or JSON, a list of events (`payload` as in docs/events.md). Both carry the event "
            "id, session id, class code and model; Content-Disposition names the file.",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
            },
        }
    }
}


# ---------------------------------------------------------------- routes


@blp.route("/sessions", methods=["GET"])
@teacher_only
@blp.arguments(t.SessionListQuerySchema, location="query")
@blp.response(200, t.SessionListSchema)
def list_sessions(query: dict[str, Any]) -> dict[str, Any]:
    """List sessions

    Every session not yet purged (active, expired and deleted), newest first, filtered by
    class code, model, status and creation time, one page at a time. `status` is as
    students see it: a session idle past the TTL is `expired` even before the purge job
    marks it. Each row says what the session is about: its `prompt` and `current_text`,
    cut to a preview.
    """
    result = teaching().list_sessions(
        SessionFilters(
            class_code=query.get("class_code"),
            model_name=query.get("model"),
            status=query.get("status"),
            created_after=query.get("created_after"),
            created_before=query.get("created_before"),
            page=query["page"],
            page_size=query["page_size"],
        )
    )
    return {
        "sessions": [
            {**record_body(r), **asdict(result.previews[r.session_id])} for r in result.sessions
        ],
        "total": result.total,
        "page": result.page,
        "page_size": result.page_size,
    }


@blp.route("/sessions/<session_id>", methods=["GET"])
@teacher_only
@blp.response(200, t.SessionDetailSchema)
@blp.alt_response(404, schema=s.ApiErrorSchema, **NOT_FOUND)
def get_session(session_id: str) -> dict[str, Any]:
    """A session and its whole timeline

    `state` is what the student saw last; `timeline` is every event in order, including
    tokens later undone (`undone: true`) and prompt resets (`SetPrompt` after the first),
    each with its time and, for tokens, probability, category, rank and how it was chosen
    (`selection`: `explicit` when the student picked the token, `other` when the student
    picked the Other wedge and the server sampled in it, `spin` when the server's draw on
    the whole wheel chose). Reading never changes the session.
    """
    detail = teaching().session_detail(session_id)
    return {
        "session": record_body(detail.record),
        "state": state_body(detail.view),
        "timeline": [timeline_body(e, detail.token_infos) for e in detail.timeline],
    }


@blp.route("/sessions/<session_id>/replay", methods=["GET"])
@teacher_only
@blp.arguments(t.VersionQuerySchema, location="query")
@blp.response(200, t.SessionAtSchema)
@blp.alt_response(400, schema=s.ApiErrorSchema, description="No such version in this session.")
@blp.alt_response(404, schema=s.ApiErrorSchema, **NOT_FOUND)
def session_at(query: dict[str, Any], session_id: str) -> dict[str, Any]:
    """The session as it was at one version

    The state right after event `version` (1 = created), exactly as the student's
    GET /api/sessions/{id} showed it then, and the event that led there. Step from 1 to
    `latest_version` to watch the session unfold.
    """
    result = teaching().session_at(session_id, query["version"])
    return {
        "version": result.view.state.version,
        "latest_version": result.latest_version,
        "event": timeline_body(result.event, result.token_infos),
        "state": state_body(result.view),
    }


@blp.route("/sessions/<session_id>/next-token-probs", methods=["GET"])
@teacher_only
@blp.arguments(t.WheelAtQuerySchema, location="query")
@blp.response(200, t.WheelAtSchema)
@blp.alt_response(
    400, schema=s.ApiErrorSchema, description="No such version, no prompt by then, bad settings."
)
@blp.alt_response(404, schema=s.ApiErrorSchema, **NOT_FOUND)
@blp.alt_response(503, schema=s.ApiErrorSchema, description="The model cannot load here now.")
def wheel_at(query: dict[str, Any], session_id: str) -> dict[str, Any]:
    """The wheel as it was at one version

    The next-token distribution for the text the session had right after event
    `version`, computed again by the model (events record only the chosen token), with
    the same parameters and body as the student's next-token-probs plus `version` and
    `latest_version`. For the wheel a recorded token came from, ask for the version
    before its TokenAppended, at the `threshold` and `temperature` the event recorded.
    """
    result = teaching().wheel_at(
        session_id,
        query["version"],
        query["threshold"],
        query["temperature"],
        query["other_top_k"],
    )
    return {
        **distribution_body(result.wheel),
        "version": result.session_at.view.state.version,
        "latest_version": result.session_at.latest_version,
    }


@blp.route("/sessions/<session_id>/statistics", methods=["GET"])
@teacher_only
@blp.response(200, s.SessionStatisticsSchema)
@blp.alt_response(404, schema=s.ApiErrorSchema, **NOT_FOUND)
def session_statistics(session_id: str) -> dict[str, Any]:
    """Statistics of one session

    The same numbers as the student's GET /api/sessions/{id}/statistics, for any session
    not yet purged.
    """
    return statistics_body(teaching().session_statistics(session_id))


@blp.route("/sessions/<session_id>/export", methods=["GET"])
@teacher_only
@blp.arguments(t.ExportQuerySchema, location="query")
@blp.doc(**DOWNLOAD_DOC)
@blp.alt_response(404, schema=s.ApiErrorSchema, **NOT_FOUND)
def export_session(query: dict[str, Any], session_id: str) -> Response:
    """Download a session's history

    Every event of the session, as `session-<first 8 characters of the id>.csv` or
    `.json`.
    """
    return download(teaching().export_session(session_id, query["format"]))


@blp.route("/classes/<class_code>/statistics", methods=["GET"])
@teacher_only
@blp.response(200, t.ClassStatisticsSchema)
@blp.alt_response(404, schema=s.ApiErrorSchema, **CLASS_NOT_FOUND)
def class_statistics(class_code: str) -> dict[str, Any]:
    """Statistics of a class

    The class's current texts pooled token by token (so a long text weighs more than a
    short one), and, for sessions that share a wheel (same model, prompt and first-token
    temperature), how often each first token was chosen against how often the model's
    probability expects it (`expected` = probability x sessions). `students` gives each
    session's own current text: its token count, average probability and Other rate, with
    the student's nickname (teachers only).
    """
    report = teaching().class_statistics(class_code)
    body = statistics_body(report.statistics)
    for group in body["first_tokens"]:
        infos = report.token_infos[group["model_name"]]
        for token in group["tokens"]:
            token.update(display(infos[token["token_id"]]))
    return body


@blp.route("/classes/<class_code>/export", methods=["GET"])
@teacher_only
@blp.arguments(t.ExportQuerySchema, location="query")
@blp.doc(**DOWNLOAD_DOC)
@blp.alt_response(404, schema=s.ApiErrorSchema, **CLASS_NOT_FOUND)
def export_class(query: dict[str, Any], class_code: str) -> Response:
    """Download a class's history

    Every event of every session of the class, in the order they were written, as
    `class-<code>.csv` or `.json`.
    """
    return download(teaching().export_class(class_code, query["format"]))
