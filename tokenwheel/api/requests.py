"""Request ids: every response carries ``X-Request-ID``; a 5xx body and its log line
quote the same id, so an operator can find the details a client never sees. And bodies:
the API reads JSON only; any other body is refused (415) rather than read as empty."""

from __future__ import annotations

import re
import uuid

from flask import Flask, Response, g, request
from werkzeug.exceptions import UnsupportedMediaType

REQUEST_ID_HEADER = "X-Request-ID"
# A proxy's id is kept when it looks like one (no spaces or control characters that could
# forge log lines); otherwise we make our own.
_ACCEPTABLE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
NOT_JSON = "Send the request body as JSON, with the header Content-Type: application/json."


def request_id() -> str:
    rid: str | None = g.get("request_id")
    if rid is None:
        rid = g.request_id = uuid.uuid4().hex[:16]
    return rid


def init_request_ids(app: Flask) -> None:
    @app.before_request
    def _take_request_id() -> None:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = incoming if _ACCEPTABLE.match(incoming) else uuid.uuid4().hex[:16]

    @app.after_request
    def _send_request_id(response: Response) -> Response:
        response.headers[REQUEST_ID_HEADER] = request_id()
        return response


def init_json_bodies(app: Flask) -> None:
    """webargs reads a body only when its Content-Type says JSON and otherwise sees no
    fields at all: a form post, or a page's fetch() of a JSON string without the header
    (sent as text/plain), would create a default session and ignore the model it asked
    for. A body of any other type is 415; no body at all needs no Content-Type. Call
    after the rate limiter is installed, so these requests count too."""

    @app.before_request
    def _json_bodies_only() -> None:
        if request.method not in BODY_METHODS or request.is_json:
            return
        length = request.content_length
        has_body = length > 0 if length is not None else bool(request.get_data(cache=True))
        if has_body:
            raise UnsupportedMediaType(NOT_JSON)
