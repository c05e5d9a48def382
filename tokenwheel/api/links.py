"""OpenAPI links: what a response lets a client do next, for people reading the document
and for tools that chain requests (schemathesis's stateful tests follow them).

Every operation's id is ``<blueprint>_<view function>`` (set by ``blueprint.Blueprint``).
A response that names a session (``session_id``, and its ``version``) links to every
operation on that session, student and teacher; a new session with a class links to
the class's operations. A mutation is linked twice: as it is, and with ``If-Match`` set
to the response's ETag (the version it reported) (so a chain may also meet the 409 of a session
that moved on).
"""

from __future__ import annotations

from typing import Any

SESSION_ID = "$response.body#/session_id"
VERSION = "$response.body#/version"
ETAG = "$response.header.ETag"  # the version as a tag, W/"7": what If-Match takes
CLASS_CODE = "$response.body#/class_code"

READS = (
    "sessions_get_session",
    "sessions_statistics",
    "sessions_next_token_probs",
)
MUTATIONS = (
    "sessions_set_prompt",
    "sessions_append_token",
    "sessions_spin",
    "sessions_undo",
    "sessions_delete_session",
)
TEACHER_READS = (
    "teacher_get_session",
    "teacher_session_statistics",
    "teacher_export_session",
)
TEACHER_AT_VERSION = ("teacher_session_at", "teacher_wheel_at")
CLASS_READS = ("teacher_class_statistics", "teacher_export_class")


def _link(operation_id: str, description: str, **parameters: str) -> dict[str, Any]:
    return {"operationId": operation_id, "parameters": parameters, "description": description}


def session_links(*, with_class: bool = False) -> dict[str, Any]:
    """The links of a response that carries ``session_id`` and ``version``."""
    links: dict[str, Any] = {}
    for operation in READS + MUTATIONS + TEACHER_READS:
        links[operation] = _link(operation, "The same session.", session_id=SESSION_ID)
    for operation in MUTATIONS:
        links[f"{operation}_if_match"] = _link(
            operation,
            "The same session, only if it is still at this version.",
            session_id=SESSION_ID,
            **{"header.If-Match": ETAG},
        )
    for operation in TEACHER_AT_VERSION:
        links[operation] = _link(
            operation, "The same session at this version.", session_id=SESSION_ID, version=VERSION
        )
    if with_class:
        for operation in CLASS_READS:
            links[operation] = _link(
                operation, "The session's class (when it has one).", class_code=CLASS_CODE
            )
    return links
