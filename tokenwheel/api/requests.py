"""Request ids: every response carries ``X-Request-ID``; a 5xx body and its log line
quote the same id, so an operator can find the details a client never sees. And bodies:
read once, whole, at the WSGI root (:class:`BodyReader`); the API reads JSON only, and
any other body is refused (415) rather than read as empty."""

from __future__ import annotations

import io
import logging
import re
import socket
import uuid
from collections.abc import Iterable
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge, UnsupportedMediaType

from tokenwheel.domain.rules import BODY_READ_TIMEOUT

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
# A proxy's id is kept when it looks like one (no spaces or control characters that could
# forge log lines); otherwise we make our own.
_ACCEPTABLE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
NOT_JSON = "Send the request body as JSON, with the header Content-Type: application/json."
# Where BodyReader leaves what was wrong with a body, for the app to answer (in JSON,
# with the request id and the security headers, like any other error).
BODY_PROBLEM = "tokenwheel.body_problem"
READ_STEP = 65536


class BodyReader:
    """WSGI middleware: read the request body once, whole, before the app sees it.

    Reading a body can fail in ways the app cannot tell from a bad body: gunicorn raises
    its own errors from ``wsgi.input`` on a malformed chunked body (InvalidChunkSize,
    ChunkMissingTerminator, NoMoreData), werkzeug raises ClientDisconnected, a socket
    raises OSError; and a body shorter than its Content-Length (the client closed its
    side early) comes back short without any error, so a truncated body that happened
    to be valid JSON was stored. Here every body is read to its declared end (at most
    ``max_bytes``; a chunked one up to one byte past the limit) within
    BODY_READ_TIMEOUT seconds. What arrives whole is handed on as a plain,
    Content-Length body (a chunked one de-chunked); anything else reaches the app as
    no body at all plus a problem (400, or 413 past the limit) that a before-request
    hook answers, so no view ever runs on a body that did not arrive as sent.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        problem = self._read(environ)
        if problem is not None:
            environ[BODY_PROBLEM] = problem
            environ["wsgi.input"] = io.BytesIO()
            environ["CONTENT_LENGTH"] = "0"
            environ.pop("HTTP_TRANSFER_ENCODING", None)
        return self.app(environ, start_response)  # type: ignore[no-any-return]

    def _read(self, environ: dict[str, Any]) -> tuple[int, str] | None:
        codings = [
            coding.strip().lower()
            for coding in environ.get("HTTP_TRANSFER_ENCODING", "").split(",")
            if coding.strip()
        ]
        if codings not in ([], ["chunked"]):
            # gunicorn passes "gzip, chunked" on still compressed: we would read gzip
            # bytes as the body (an empty one as no body at all)
            return 400, (
                f"Transfer-Encoding {', '.join(codings)[:60]!r} is not supported: send the "
                "body as it is, or chunked."
            )
        chunked = codings == ["chunked"]
        declared = environ.get("CONTENT_LENGTH", "").strip()
        if chunked:
            length = None  # a Content-Length beside chunked means nothing (RFC 9112)
        elif not declared:
            return None  # no body
        elif not declared.isdigit():
            return 400, f"Content-Length {declared[:20]!r} is not a number of bytes."
        else:
            length = int(declared)
            if length == 0:
                return None
            if length > self.max_bytes:
                return 413, "too large"  # refused before reading a byte of it
        wanted = self.max_bytes + 1 if length is None else length
        try:
            data = self._read_bytes(environ, wanted)
        except Exception as exc:  # whatever this WSGI server raises (see the docstring)
            log.info("request body could not be read: %s: %s", type(exc).__name__, exc)
            return 400, (
                "The request body could not be read: it was malformed, stopped early or "
                f"did not arrive within {BODY_READ_TIMEOUT:g} s."
            )
        if length is None and len(data) > self.max_bytes:
            return 413, "too large"
        if length is not None and len(data) < length:
            return 400, (
                f"The request body ended after {len(data)} of the {length} bytes its "
                "Content-Length announced; nothing was done."
            )
        environ["wsgi.input"] = io.BytesIO(data)
        environ["CONTENT_LENGTH"] = str(len(data))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        return None

    @staticmethod
    def _read_bytes(environ: dict[str, Any], wanted: int) -> bytes:
        stream = environ["wsgi.input"]
        # gunicorn hands the app its client socket: bound the wait for a stalled body
        # (the socket is blocking, with no timeout, while the app runs).
        sock = environ.get("gunicorn.socket")
        previous = sock.gettimeout() if isinstance(sock, socket.socket) else None
        if isinstance(sock, socket.socket):
            sock.settimeout(BODY_READ_TIMEOUT)
        try:
            parts: list[bytes] = []
            received = 0
            while received < wanted:
                part = stream.read(min(READ_STEP, wanted - received))
                if not part:
                    break
                parts.append(part)
                received += len(part)
            return b"".join(parts)
        finally:
            if isinstance(sock, socket.socket):
                sock.settimeout(previous)


def init_body_reading(app: Flask, max_bytes: int) -> None:
    """Install :class:`BodyReader` (innermost, so it sees the server's own stream)."""
    app.wsgi_app = BodyReader(app.wsgi_app, max_bytes)  # type: ignore[method-assign]


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
        problem = request.environ.get(BODY_PROBLEM)
        if problem is not None:
            status, message = problem
            raise RequestEntityTooLarge() if status == 413 else BadRequest(message)
        if request.method not in BODY_METHODS or request.is_json:
            return
        length = request.content_length
        has_body = length > 0 if length is not None else bool(request.get_data(cache=True))
        if has_body:
            raise UnsupportedMediaType(NOT_JSON)
