"""gunicorn's threaded worker, answering what it refuses itself in JSON.

gunicorn answers a request it cannot parse (a malformed request line or header, a URI or
header section past its limits, an unsupported Transfer-Encoding) before the app sees
it, with a small ``text/html`` page and none of the app's headers. A browser would
render that page from our origin, without ``X-Content-Type-Options: nosniff`` or a
Content-Security-Policy. This worker lets gunicorn decide the status and log the refusal
as always, then sends the answer the app would have sent: a JSON error body with the
app's security headers, and the connection closed (gunicorn cannot tell where the next
request would start).
"""

from __future__ import annotations

import json
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

from tokenwheel.api.errors import SHORT_NAMES
from tokenwheel.api.headers import CONTENT_SECURITY_POLICY

MESSAGES = {
    400: "The server could not read the request line or its headers",
    403: "The request was refused",
    414: "The request line is longer than the server accepts",
    417: "The server cannot meet the request's Expect header",
    431: "The request's headers are more or larger than the server accepts",
    501: "The request's Transfer-Encoding is not supported",
}
MAX_DETAIL = 200


class _Captured:
    """Stands in for the client socket while gunicorn writes its HTML page, so that we
    learn the status it chose and send our own answer instead."""

    def __init__(self) -> None:
        self.data = b""

    def gettimeout(self) -> float:
        return 0.0

    def setblocking(self, flag: bool) -> None:
        pass

    def sendall(self, data: bytes) -> None:
        self.data += data


def error_response(status: int, reason: str, detail: str = "") -> bytes:
    """The raw HTTP answer for a request gunicorn refused: JSON, the app's headers."""
    message = MESSAGES.get(status, "The request failed")
    if detail and status < 500:  # the client's own input, cut short; never a 5xx's
        message += f": {detail[:MAX_DETAIL]}"
    body = json.dumps(
        {"error": SHORT_NAMES.get(status, reason or "Internal error"), "message": message + "."},
        sort_keys=True,
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        f"Content-Security-Policy: {CONTENT_SECURITY_POLICY}\r\n"
        "Referrer-Policy: no-referrer\r\n"
        "X-Frame-Options: DENY\r\n"
        "\r\n"
    )
    return head.encode("latin-1") + body


def _status_of(page: bytes) -> tuple[int, str] | None:
    """The status gunicorn's page carries: ``HTTP/1.1 400 Bad Request``."""
    line = page.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return None
    return int(parts[1]), parts[2] if len(parts) > 2 else ""


class JsonErrorThreadWorker(ThreadWorker):  # type: ignore[misc]
    """``gthread`` with JSON error answers (``worker_class`` in gunicorn_conf)."""

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        captured = _Captured()
        super().handle_error(req, captured, addr, exc)
        status = _status_of(captured.data)
        if status is None:
            return  # gunicorn wrote nothing (it could not): neither do we
        code, reason = status
        try:
            util.write_nonblock(client, error_response(code, reason, str(exc)))
        except Exception:  # the client is gone; gunicorn too only logs this at debug
            self.log.debug("Failed to send error message.")
