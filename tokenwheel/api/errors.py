"""One table from domain errors to HTTP, and one JSON shape for every error.

Every 4xx/5xx body has ``error`` (short) and ``message`` (for people). Validation errors
are 400 (not webargs' default 422) and list the fields in ``errors``. A 5xx body says only
that the request failed and gives the request id, which is in the log line with the
details; no stack trace or internal detail ever reaches a client.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, current_app, jsonify
from werkzeug.exceptions import HTTPException, InternalServerError

from tokenwheel.api.documentation import DocumentedOnFirstRead
from tokenwheel.api.schemas import ApiErrorSchema
from tokenwheel.domain.errors import (
    ClassNotFound,
    Conflict,
    DomainError,
    GenerationLimitReached,
    IdempotencyKeyReused,
    InvalidCommand,
    ModelUnavailable,
    NothingToUndo,
    NotInClass,
    Overloaded,
    PromptNotSet,
    RoundNotFound,
    SessionNotFound,
    UnknownModel,
    VersionConflict,
)

from .concurrency import etag
from .requests import request_id

log = logging.getLogger(__name__)

# seconds: how soon a load balancer may ask /api/ready again (a model loads in 2-40 s)
READY_RETRY_AFTER = 5

STATUS_BY_ERROR: dict[type[DomainError], int] = {
    InvalidCommand: 400,
    PromptNotSet: 400,
    NotInClass: 400,
    NothingToUndo: 400,
    GenerationLimitReached: 400,
    UnknownModel: 400,
    SessionNotFound: 404,
    ClassNotFound: 404,
    RoundNotFound: 404,
    VersionConflict: 409,
    Conflict: 409,
    IdempotencyKeyReused: 422,
    ModelUnavailable: 503,
    Overloaded: 503,
}

SHORT_NAMES = {
    400: "Invalid request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    413: "Request too large",
    414: "URI too long",
    415: "Unsupported media type",
    417: "Expectation failed",
    429: "Too many requests",
    431: "Headers too large",
    500: "Internal error",
    501: "Not implemented",
}


def _summarize(messages: Any, prefix: str = "") -> list[str]:
    if isinstance(messages, dict):
        out: list[str] = []
        for key, value in messages.items():
            name = prefix if key == "_schema" else (f"{prefix}.{key}" if prefix else str(key))
            out.extend(_summarize(value, name))
        return out
    if isinstance(messages, list):
        return [
            f"{prefix}: {m}" if prefix and isinstance(m, str) else str(m)
            for m in messages
            if not isinstance(m, dict | list)
        ] + [line for m in messages if isinstance(m, dict | list) for line in _summarize(m, prefix)]
    return [f"{prefix}: {messages}" if prefix else str(messages)]


def failure_body(error: BaseException, status: int = 500) -> dict[str, Any]:
    """The body of a 5xx, logged with its request id and the traceback (server side)."""
    rid = request_id()
    log.error("request %s failed", rid, exc_info=error)
    return {
        "error": SHORT_NAMES.get(status, "Internal error"),
        "message": f"The request failed (request id {rid}).",
        "request_id": rid,
    }


class TokenWheelApi(DocumentedOnFirstRead):
    """flask-smorest's Api with Token Wheel's error body (also in the documented default
    error responses that flask-smorest adds, e.g. 400 for query arguments), documenting
    its views when the document is first read (api/documentation.py)."""

    # One instance for every app: apispec instantiates a class once per status code it
    # documents (57 per app), which was a tenth of the cost of creating an app.
    ERROR_SCHEMA = ApiErrorSchema()

    def handle_http_exception(self, error: HTTPException) -> Any:  # type: ignore[override]
        status = error.code or 500
        body: dict[str, Any] = {"error": SHORT_NAMES.get(status, error.name), "message": ""}
        data = getattr(error, "data", None) or {}
        messages = data.get("messages")
        if messages:
            # webargs nests messages by location ("json", "query"); people want the fields
            flat = {}
            for location_messages in messages.values():
                if isinstance(location_messages, dict):
                    flat.update(location_messages)
            body["errors"] = flat or messages
            body["message"] = "; ".join(_summarize(flat or messages)) or error.description
        elif status >= 500:
            body = failure_body(getattr(error, "original_exception", None) or error, status)
        elif status == 413:
            limit = current_app.config.get("MAX_CONTENT_LENGTH")
            body["message"] = f"The request body is larger than the limit of {limit} bytes."
        else:
            body["message"] = error.description or error.name
        # keep the exception's own headers (WWW-Authenticate on 401, Allow on 405)
        headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
        headers.update(getattr(error, "headers", None) or {})
        return jsonify(body), status, headers


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain_error(error: DomainError) -> Any:
        status = next(
            (code for cls, code in STATUS_BY_ERROR.items() if isinstance(error, cls)), 400
        )
        body: dict[str, Any] = {"error": error.error, "message": error.message}
        headers: dict[str, str] = {}
        if isinstance(error, NothingToUndo) and error.current_text is not None:
            body["current_text"] = error.current_text
        retry_after = getattr(error, "retry_after", None)  # Overloaded, ModelUnavailable
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        if isinstance(error, VersionConflict) and error.actual is not None:
            body["version"] = error.actual
            headers["ETag"] = etag(error.actual)
        return jsonify(body), status, headers

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Any:
        if isinstance(error, HTTPException):
            return error
        return jsonify(failure_body(error)), InternalServerError.code
