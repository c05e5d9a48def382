"""Random command sequences against the service match a simple reference model; after
every step the stored events replay to exactly the state the last answer showed, and
to the state the service serves next (from its snapshots).

Runs on the in-memory store and on SQLite, with a fixed seed (derandomize) and bounded
examples and steps, so it takes seconds and finds the same things every run.
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
)

from tests.fakes import VOCAB, FakeModels
from tokenwheel.domain import session as d
from tokenwheel.domain.errors import (
    GenerationLimitReached,
    InvalidCommand,
    NothingToUndo,
    PromptNotSet,
    SessionNotFound,
    VersionConflict,
)
from tokenwheel.services import AppendRequest, IdempotencyKey, StudentSessions
from tokenwheel.settings import Settings
from tokenwheel.store import migrate
from tokenwheel.store.database import make_engine
from tokenwheel.store.memory import InMemoryEventStore
from tokenwheel.store.sql import SqlEventStore

MAX_GENERATED = 6
OTHER_THRESHOLD = 0.2  # at most 5 of the 18 fake tokens reach it: Other is never empty
PROMPTS = ["The cat", " the dog sat", "The", " a big red hat", "The cat sat on the mat."]
SETTINGS = Settings(scheduler_enabled=False, max_generated_tokens=MAX_GENERATED)


@dataclass
class Expected:
    """The reference model of one session: what a student would expect."""

    prompt: str | None = None
    prompt_ids: tuple[int, ...] = ()
    generated: list[int] = field(default_factory=list)
    deleted: bool = False
    version: int = 1


class SessionMachine(RuleBasedStateMachine):
    sessions = Bundle("sessions")

    def make_store(self) -> Any:
        return InMemoryEventStore()

    def __init__(self) -> None:
        super().__init__()
        self.models = FakeModels()
        self.service = StudentSessions(
            self.make_store(), self.models, SETTINGS, rng=random.Random(0)
        )
        self.expected: dict[str, Expected] = {}
        self.seen: dict[str, d.SessionState] = {}  # the state each last answer showed
        self.last_keyed: tuple[str, str, int, int] | None = None  # session, key, token, version
        self.keys = 0

    def encode(self, prompt: str) -> tuple[int, ...]:
        return tuple(self.models.fakes["fake"].encode_prompt(prompt))

    def blocked(self, sid: str) -> type[Exception] | None:
        """The error the service must raise for an append, if any."""
        e = self.expected[sid]
        if e.deleted:
            return SessionNotFound
        if e.prompt is None:
            return PromptNotSet
        if len(e.prompt_ids) + len(e.generated) >= self.models.fakes["fake"].max_context:
            return InvalidCommand
        if len(e.generated) >= MAX_GENERATED:
            return GenerationLimitReached
        return None

    # ------------------------------------------------------------ rules

    @rule(target=sessions)
    def create(self) -> str:
        view = self.service.create_session()
        sid = view.session_id
        self.expected[sid] = Expected()
        self.seen[sid] = view.state
        return sid

    @rule(sid=sessions, prompt=st.sampled_from(PROMPTS))
    def set_prompt(self, sid: str, prompt: str) -> None:
        e = self.expected[sid]
        if e.deleted:
            with pytest.raises(SessionNotFound):
                self.service.set_prompt(sid, prompt)
            return
        result = self.service.set_prompt(sid, prompt)
        self.seen[sid] = result.view.state
        e.prompt, e.prompt_ids, e.generated = prompt, self.encode(prompt), []
        e.version += 1
        assert result.token_count == len(e.prompt_ids)

    @rule(sid=sessions, token_id=st.integers(0, len(VOCAB) - 1), keyed=st.booleans())
    def append(self, sid: str, token_id: int, keyed: bool) -> None:
        error = self.blocked(sid)
        key = None
        if keyed:
            self.keys += 1
            key = IdempotencyKey(f"k{self.keys}", "POST append", f"{token_id}")
        request = AppendRequest(token_id=token_id)
        if error is not None:
            with pytest.raises(error):
                self.service.append_token(sid, request, idempotency=key)
            return
        result = self.service.append_token(sid, request, idempotency=key)
        self.seen[sid] = result.view.state
        e = self.expected[sid]
        e.generated.append(token_id)
        e.version += 1
        assert result.token.token_id == token_id and result.view.state.version == e.version
        if key is not None:
            self.last_keyed = (sid, key.key, token_id, e.version)

    @rule(sid=sessions)
    def append_other(self, sid: str) -> None:
        error = self.blocked(sid)
        request = AppendRequest(category="other", threshold=OTHER_THRESHOLD)
        if error is not None:
            with pytest.raises(error):
                self.service.append_token(sid, request)
            return
        result = self.service.append_token(sid, request)
        self.seen[sid] = result.view.state
        token = result.token
        assert token.sampled_from_other and token.category == "other"
        assert token.probability < OTHER_THRESHOLD
        e = self.expected[sid]
        e.generated.append(token.token_id)
        e.version += 1

    @rule(sid=sessions)
    def undo(self, sid: str) -> None:
        e = self.expected[sid]
        if e.deleted or not e.generated:
            with pytest.raises(SessionNotFound if e.deleted else NothingToUndo):
                self.service.undo(sid)
            return
        result = self.service.undo(sid)
        self.seen[sid] = result.view.state
        assert result.removed.token_id == e.generated.pop()
        e.version += 1

    @rule(sid=sessions)
    def append_with_a_stale_version(self, sid: str) -> None:
        e = self.expected[sid]
        if e.deleted:
            return
        with pytest.raises(VersionConflict) as conflict:
            self.service.append_token(
                sid, AppendRequest(token_id=1), expected_version=e.version - 1
            )
        assert conflict.value.actual == e.version

    @precondition(lambda self: self.last_keyed is not None)
    @rule()
    def retry_the_last_keyed_append(self) -> None:
        assert self.last_keyed is not None
        sid, name, token_id, version = self.last_keyed
        key = IdempotencyKey(name, "POST append", f"{token_id}")
        if self.expected[sid].deleted:
            return
        again = self.service.append_token(sid, AppendRequest(token_id=token_id), idempotency=key)
        assert again.repeated and again.view.state.version == version

    @rule(sid=consumes(sessions))
    def delete(self, sid: str) -> None:
        e = self.expected[sid]
        if e.deleted:
            with pytest.raises(SessionNotFound):
                self.service.delete_session(sid)
            return
        assert self.service.delete_session(sid).version == e.version + 1
        e.deleted, e.version = True, e.version + 1

    # ------------------------------------------------------------ invariants

    @invariant()
    def live_state_matches_the_model_and_the_replay(self) -> None:
        for sid, e in self.expected.items():
            replayed = d.replay(self.service.store.load(sid))
            assert replayed is not None and replayed.version == e.version
            if e.deleted:
                assert replayed.deleted
                with pytest.raises(SessionNotFound):
                    self.service.get_session(sid)
                continue
            # what the last answer showed is what the stored events replay to, and what
            # the service serves now (from its snapshot) is the same again
            assert self.seen[sid] == replayed
            live = self.service.get_session(sid).state
            assert live == replayed
            assert (live.prompt, live.prompt_token_ids) == (e.prompt, e.prompt_ids)
            assert list(live.generated_ids) == e.generated
            assert self.service.store.get_record(sid).version == e.version


_SQLITE_DIR = tempfile.TemporaryDirectory(prefix="tokenwheel-sm-")
_SQLITE: dict[str, SqlEventStore] = {}


class SqliteSessionMachine(SessionMachine):
    def make_store(self) -> Any:
        # one migrated database for every run (session ids are random, runs never meet)
        if "store" not in _SQLITE:
            engine = make_engine(f"sqlite:///{Path(_SQLITE_DIR.name) / 'sm.sqlite3'}")
            migrate.upgrade(engine)
            _SQLITE["store"] = SqlEventStore(engine)
        return _SQLITE["store"]


COMMON = dict(
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestSessionMachineInMemory = SessionMachine.TestCase
TestSessionMachineInMemory.settings = settings(max_examples=60, stateful_step_count=40, **COMMON)
TestSessionMachineOnSqlite = SqliteSessionMachine.TestCase
TestSessionMachineOnSqlite.settings = settings(max_examples=15, stateful_step_count=30, **COMMON)
