"""What keeps the service healthy: the purge, the index rebuild, readiness, warm-up, and
the models this server can serve."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta

from tokenwheel.domain import classes as class_domain
from tokenwheel.domain import session as domain
from tokenwheel.domain.errors import ModelUnavailable, UnknownModel
from tokenwheel.domain.events import Event, GuessMade
from tokenwheel.domain.rules import check_nickname
from tokenwheel.settings import Settings
from tokenwheel.store.class_records import (
    NicknameClaim,
    class_record,
    guess_record,
    round_record,
)

from .clock import utcnow
from .gateway import ModelGateway
from .ports import ClassRebuild, ClassStore, Clock, EventStore, LanguageModels
from .results import ModelsResult, Readiness

log = logging.getLogger(__name__)


class Maintenance:
    def __init__(
        self,
        store: EventStore,
        models: LanguageModels,
        settings: Settings,
        clock: Clock = utcnow,
        classes: ClassStore | None = None,
        class_rebuild: ClassRebuild | None = None,
    ) -> None:
        self.store = store
        self.classes = classes
        self.class_rebuild = class_rebuild
        self.models = ModelGateway(models)
        self.settings = settings
        self.clock = clock

    def list_models(self) -> ModelsResult:
        default_id, reason = self.models.default_model()
        return ModelsResult(
            models=self.models.describe(),
            default_model=default_id,
            configured_default_model=self.settings.default_model,
            default_reason=reason,
        )

    def purge_expired(self) -> tuple[int, int]:
        """Expire idle sessions, then purge those expired longer than the retention.
        Idempotent: running it twice, or in two processes, purges each session once."""
        now = self.clock()
        expired = self.store.expire_idle(now, self.settings.session_ttl)
        purged = self.store.purge(now - timedelta(seconds=self.settings.retention))
        classes = 0
        if self.classes is not None:
            # a closed class goes after the retention, an open one left alone after the
            # session TTL and the retention, as an idle session does (docs/operations.md)
            closed_before = now - timedelta(seconds=self.settings.retention)
            idle_before = closed_before - timedelta(seconds=self.settings.session_ttl)
            classes = self.classes.purge_classes(closed_before, idle_before)
        keys = self.store.purge_idempotency(
            now - timedelta(seconds=self.settings.idempotency_window)
        )
        if expired or purged or keys or classes:
            log.info(
                "purge: %d sessions expired, %d purged, %d classes purged, "
                "%d idempotency keys dropped",
                expired,
                purged,
                classes,
                keys,
            )
        return expired, purged

    def rebuild_index(self) -> int:
        """Write every session's index row again from its events, then every class's
        rows: the class, its rounds, its nicknames and its guesses. Answers the number
        of sessions."""
        count = 0
        joined: dict[str, list[tuple[domain.SessionState, list[Event]]]] = defaultdict(list)
        for session_id in self.store.session_ids():
            stored = self.store.load(session_id)
            state = domain.replay(stored)
            if state is None:
                continue
            record = self.store.get_record(session_id)
            last = record.last_accessed if record else state.updated_at
            self.store.rebuild_record(domain.summarize(state), last)
            count += 1
            if state.class_code is not None and state.nickname is not None:
                joined[state.class_code].append((state, stored))
        if self.class_rebuild is not None:
            for code in self.class_rebuild.class_codes():
                self._rebuild_class(code, joined.get(code, []))
        return count

    def _rebuild_class(
        self, code: str, joined: Sequence[tuple[domain.SessionState, list[Event]]]
    ) -> None:
        assert self.class_rebuild is not None
        state = class_domain.replay(self.store.load(class_domain.class_stream(code)))
        if state is None:
            return
        claims = [
            NicknameClaim(
                code, check_nickname(s.nickname)[1], s.nickname, s.session_id, s.created_at
            )
            for s, _ in joined
            if s.nickname is not None
        ]
        guesses = [
            guess_record(event, code)
            for _, stored in joined
            for event in stored
            if isinstance(event, GuessMade)
        ]
        last_activity = max([state.updated_at, *(s.created_at for s, _ in joined)])
        self.class_rebuild.rebuild_class(
            class_record(state, last_activity),
            [round_record(code, r) for r in state.rounds],
            claims,
            guesses,
        )

    def readiness(self) -> Readiness:
        """Whether this process can serve students: the database answers and the
        effective default model is loaded. Never loads a model itself."""
        checks: dict[str, str] = {}
        try:
            self.store.ping()
            checks["database"] = "ok"
        except Exception:  # any driver error means the same here: not ready
            log.warning("readiness: the database did not answer", exc_info=True)
            checks["database"] = "The database did not answer."
        default_id: str | None = None
        try:
            default_id, _ = self.models.default_model()
        except ModelUnavailable as exc:
            checks["model"] = exc.message
        else:
            loaded = self.models.loaded(default_id)
            checks["model"] = "ok" if loaded else f"The default model {default_id} is loading."
        return Readiness(checks=checks, default_model=default_id)

    def warm_up(self) -> None:
        """Load the default model now. A server calls this in the background as it
        starts, so it turns ready without waiting for the first student."""
        try:
            model_id, _ = self.models.default_model()
            self.models.require(model_id)
        except (ModelUnavailable, UnknownModel) as exc:
            log.warning("warm-up: %s", exc.message)
