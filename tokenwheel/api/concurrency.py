"""Versions and retries on the wire: ETag, If-Match / ``expected_version``, and
Idempotency-Key.

Every session response carries the session's version, in the body (``version``) and as a
weak ETag (``W/"7"``: the version names the session's state, not the bytes of one
representation). A mutation may name the version it was decided on; the service answers
409 if the session has moved on. A POST mutation may carry an Idempotency-Key; a retry
with the same key gets the first response and stores nothing more.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from flask import abort, request

from tokenwheel.services import IdempotencyKey

ETAG_HEADER = {
    "ETag": {
        "description": 'The session\'s version as a weak ETag, W/"<version>"; send it back '
        "in If-Match to make a change only if nobody changed the session first.",
        "schema": {"type": "string"},
    }
}
_VERSION_TAG = re.compile(r'^\s*(?:W/)?(?:"([0-9]{1,9})"|([0-9]{1,9}))\s*$')


def etag(version: int) -> str:
    return f'W/"{version}"'


def versioned(
    body: dict[str, Any], repeated: bool = False
) -> tuple[dict[str, Any], dict[str, str]]:
    """A session response body with its ETag header; ``repeated``: the answer to a retry
    of a request applied before under its Idempotency-Key (``Idempotent-Replayed``)."""
    headers = {"ETag": etag(body["version"])}
    if repeated:
        headers["Idempotent-Replayed"] = "true"
    return body, headers


def if_match_version(value: str | None) -> int | None:
    """The version an If-Match header names: ``W/"5"``, ``"5"`` or ``5``; ``*`` or no
    header names none. The header schema has already refused anything else."""
    if value is None or value.strip() == "*":
        return None
    match = _VERSION_TAG.match(value)
    if match is None:
        abort(400, 'If-Match must be one session version such as W/"5", or *.')
    return int(match.group(1) or match.group(2))


def expected_version(body: Mapping[str, Any], headers: Mapping[str, Any]) -> int | None:
    """The version the client decided on, from ``expected_version`` in the body or the
    If-Match header; when both are sent they must agree."""
    from_body = body.get("expected_version")
    from_header = if_match_version(headers.get("if_match"))
    if from_body is not None and from_header is not None and from_body != from_header:
        abort(400, "expected_version and If-Match name different versions.")
    return from_body if from_body is not None else from_header


def client_scope() -> str:
    """Where the Idempotency-Keys of session creation live: per client address (the one
    the rate limits count, after any trusted proxy), hashed to fit a session id's column.
    Two clients never share a key, so nobody can replay someone else's new session."""
    address = request.remote_addr or "unknown"
    return "create:" + hashlib.sha256(address.encode()).hexdigest()[:29]


def idempotency(headers: Mapping[str, Any], scope: str | None = None) -> IdempotencyKey | None:
    """The request's Idempotency-Key, if any, with what identifies the request (method,
    path, JSON body, If-Match)."""
    key = headers.get("idempotency_key")
    if key is None:
        return None
    method_path = f"{request.method} {request.path}"
    identity = [method_path, request.get_json(silent=True), request.headers.get("If-Match")]
    request_hash = hashlib.sha256(
        json.dumps(identity, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    return IdempotencyKey(key=key, method_path=method_path, request_hash=request_hash, scope=scope)
