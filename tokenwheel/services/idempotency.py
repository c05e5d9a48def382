"""Idempotency-Keys: a retried request is answered again, never applied twice.

The key is stored with the events it produced, in one transaction, as the session and
version the request led to plus a small ``receipt`` of what the events do not hold (a
spin's draw). A retry finds the key and the use case rebuilds its first result from the
session at that version: the same result, so the API renders the same answer. The
service never sees an HTTP body.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from tokenwheel.domain.errors import IdempotencyKeyReused
from tokenwheel.store.records import IdempotencyRecord

from .ports import Clock, EventStore


@dataclass(frozen=True)
class IdempotencyKey:
    """A client's Idempotency-Key for one request. ``request_hash`` identifies the
    request (method, path, body); ``scope`` is where keys live: a session's keys live
    with the session (None). Creating a session has no session yet: the API scopes those
    keys by client (``create:<hash of address>``), so one client can never replay
    another's new session id."""

    key: str
    method_path: str
    request_hash: str
    scope: str | None = None

    def scope_for(self, session_id: str) -> str:
        return self.scope or session_id


@dataclass(frozen=True)
class Applied:
    """A request applied before under the same key: where it left the session."""

    session_id: str
    version: int
    receipt: dict[str, Any] = field(default_factory=dict)


class IdempotencyKeys:
    def __init__(self, store: EventStore, clock: Clock, window_seconds: float) -> None:
        self.store = store
        self.clock = clock
        self.window = timedelta(seconds=window_seconds)

    def applied(self, key: IdempotencyKey | None, session_id: str = "") -> Applied | None:
        """The earlier outcome of ``key``; None if it is new (or past its window, when
        the purge job had not dropped it yet). The same key with another request is 422."""
        if key is None:
            return None
        scope = key.scope_for(session_id)
        stored = self.store.get_idempotency(scope, key.key)
        if stored is None:
            return None
        if stored.created_at < self.clock() - self.window:
            self.store.drop_idempotency(scope, key.key)
            return None
        if stored.request_hash != key.request_hash:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was already used for a different request. Send a new "
                "key with a new request."
            )
        return Applied(stored.result_session_id, stored.result_version, dict(stored.receipt))

    def record(
        self,
        key: IdempotencyKey | None,
        session_id: str,
        version: int,
        receipt: dict[str, Any] | None = None,
    ) -> IdempotencyRecord | None:
        """What to store with the events of a request that carried ``key``."""
        if key is None:
            return None
        return IdempotencyRecord(
            session_id=key.scope_for(session_id),
            idempotency_key=key.key,
            method_path=key.method_path,
            request_hash=key.request_hash,
            result_session_id=session_id,
            result_version=version,
            receipt=receipt or {},
            created_at=self.clock(),
        )
