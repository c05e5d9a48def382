"""Request ids: every response carries ``X-Request-ID``; a 5xx body and its log line
quote the same id, so an operator can find the details a client never sees."""

from __future__ import annotations

import re
import uuid

from flask import Flask, Response, g, request

REQUEST_ID_HEADER = "X-Request-ID"
# A proxy's id is kept when it looks like one (no spaces or control characters that could
# forge log lines); otherwise we make our own.
_ACCEPTABLE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


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
