"""Session ids never reach a log whole.

A session id is the only key to a session (a capability), so a log line that holds one
would hand the session to whoever reads the logs. Logs keep its first 8 characters:
enough to follow one session through a log, useless as a key. The filter below sits on
every handler of the root logger and of gunicorn's loggers, so it covers our messages,
tracebacks (an exception's text may carry an id, as may a database error's parameters),
gunicorn's "Error handling request /api/sessions/<id>/..." lines and, through
:class:`RedactingGunicornLogger`, the access log.
"""

from __future__ import annotations

import logging
import re
from typing import Any

_SESSION_ID = re.compile(
    r"\b([0-9a-fA-F]{8})-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
)
LOGGERS = ("", "gunicorn.error", "gunicorn.access")


def redact_session_ids(text: str) -> str:
    """Every UUID in ``text`` cut to its first 8 characters and an ellipsis."""
    return _SESSION_ID.sub(r"\1…", text)


class RedactSessionIds(logging.Filter):
    """Rewrites a record's message, traceback and stack so no session id is left whole."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_session_ids(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_session_ids(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_session_ids(record.stack_info)
        return True


def _redact(handlers: list[logging.Handler]) -> None:
    """The filter on each of ``handlers``, once."""
    for handler in handlers:
        if not any(isinstance(f, RedactSessionIds) for f in handler.filters):
            handler.addFilter(RedactSessionIds())


def install_redaction() -> None:
    """Put the filter on every handler of the root logger and gunicorn's loggers (once
    each). Called when the app is built and when the command line sets up logging, so a
    handler added before either is covered."""
    for name in LOGGERS:
        _redact(logging.getLogger(name).handlers)


def redacting_gunicorn_logger() -> type:
    """gunicorn's logger with session ids cut from the access log's request line, and the
    filter on its error log. Used by ``tokenwheel serve``; with gunicorn directly:
    ``gunicorn -c python:tokenwheel.gunicorn_conf wsgi:app``."""
    from gunicorn.glogging import Logger

    class RedactingGunicornLogger(Logger):  # type: ignore[misc]
        def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
            atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
            for name in ("r", "U", "q", "f"):
                if isinstance(atoms.get(name), str):
                    atoms[name] = redact_session_ids(atoms[name])
            return atoms

        def setup(self, cfg: Any) -> None:
            super().setup(cfg)
            for log in (self.error_log, self.access_log):
                _redact(log.handlers)

    return RedactingGunicornLogger
