"""The model thread in a process of its own: forward passes never wait for the GIL.

A forward pass of a small model is a thousand short torch calls, and each one gives the
GIL back and must win it again. In the server's own process, 30 students' request
threads (parsing, SQL, JSON, the wheel's float64 math) hold the GIL between those calls:
measured on 2 cores, a batched step of 20 rows took 92 ms alone and 770 ms next to 30
threads each busy 3% of the time. vLLM moved its engine core out of the API server's
process for the same reason. Here one child process per server process owns the weights,
the KV prefix cache and the batching (:class:`~tokenwheel.inference.engine.InferenceEngine`,
unchanged) and builds the wheels next to their logits (:mod:`~tokenwheel.inference.wheels`):
the server keeps the tokenizers, asks a wheel question and gets back its answer, a few
hundred bytes (a whole text's scores likewise).

The child is a fresh interpreter (``python -m tokenwheel.inference.child``, talking over
a socket pair: no copied locks or torch threads) started on first use, so never before a
server forks its workers. It exits when the
pipe closes, so it never outlives its server, even one killed with SIGKILL. If it dies,
the requests waiting for it fail as ModelUnavailable (503), and the next request starts
a new one and loads its models again.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import torch

from .catalog import ModelSpec
from .distribution import Prepared
from .engine import EngineKwargs
from .loading import load_text_side
from .model import LoadedModel, ModelFacts
from .ports import ModelParts
from .types import (
    EmptyOtherError,
    InferenceOptions,
    InvalidTokenError,
    ModelUnavailableError,
    OverloadedError,
    PositionNumbers,
)
from .wheels import TOO_MANY_WEDGES, Answer, WheelQuestion, answer, one_torch_thread

log = logging.getLogger(__name__)

START_TIMEOUT = 120.0  # seconds for the child to import torch and answer
NO_ANSWER = 0  # the request id of a message the child does not answer (a prefetch)
ERRORS: dict[str, type[Exception]] = {
    e.__name__: e
    for e in (OverloadedError, ModelUnavailableError, InvalidTokenError, EmptyOtherError)
}


@dataclass(frozen=True)
class LoadReport:
    """What the inference process says after loading a model's weights."""

    facts: ModelFacts
    from_cache: bool
    seconds: float


class ProcessEngine:
    """An :class:`~tokenwheel.inference.ports.Engine` whose weights live in a child
    process: ``load`` has the child load the weights and keeps only the tokenizer here;
    ``logits`` and ``ask`` go to the child's logits cache and :class:`InferenceEngine`,
    and are answered there. It is also the registry's
    :class:`~tokenwheel.inference.wheels.WheelSide`. A full queue in the child raises
    OverloadedError here, as in-process."""

    def __init__(self, options: InferenceOptions, engine_kwargs: EngineKwargs) -> None:
        self.options = options
        # One core stays with the server's request threads: measured on 2 cores, a model
        # thread with 2 torch threads lost half its CPU time spinning at OpenMP barriers
        # whenever a request thread had the other core (47 vs 63 steps/s for a class).
        self.threads = engine_kwargs["threads"] or max(1, (os.cpu_count() or 1) - 1)
        self.engine_kwargs = engine_kwargs.copy()
        self.engine_kwargs["threads"] = self.threads
        self._process: Any = None
        self._conn: Any = None
        self._pending: dict[int, tuple[Any, Future[Any]]] = {}  # id -> (pipe, answer)
        self._ids = itertools.count(1)
        self._send_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._loaded: dict[str, ModelSpec] = {}  # to load again in a new child
        self._broken: Any = None  # the pipe of a child that is gone
        self.restarts = 0

    # ------------------------------------------------------------ the child's lifetime

    @property
    def pid(self) -> int | None:
        return int(self._process.pid) if self._process is not None else None

    def _alive(self) -> bool:
        # The pipe says it first: a killed child's pipe closes while the kernel may still
        # be tearing down its threads (waitpid cannot report it yet).
        return (
            self._process is not None
            and self._conn is not self._broken
            and self._process.poll() is None
        )

    def _ensure_process(self) -> None:
        if self._alive():
            return
        with self._start_lock:
            if self._alive():
                return
            if self._process is not None:
                self.restarts += 1
                log.warning("the inference process stopped; starting a new one")
                self._bury(self._process)
            ours, theirs = socket.socketpair()
            # A fresh interpreter, started as a module: nothing of this process is copied
            # (no locks held by other threads, no torch thread pools), and no main module
            # is imported again (multiprocessing's "spawn" would).
            process = subprocess.Popen(
                [sys.executable, "-m", "tokenwheel.inference.child", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
            )
            theirs.close()
            conn = Connection(ours.detach())
            self._conn, self._process = conn, process
            threading.Thread(
                target=self._read_replies, args=(conn,), name="tokenwheel-replies", daemon=True
            ).start()
            level = logging.getLogger().getEffectiveLevel()
            self._call(
                ("init", self.options, self.engine_kwargs, level),
                timeout=START_TIMEOUT,
                ensure=False,
            )
            for spec in list(self._loaded.values()):  # a new child: load what the old had
                self._call(("load", spec), ensure=False)

    @staticmethod
    def _bury(process: subprocess.Popen[bytes]) -> None:
        """Make sure an old child is gone, and reap it without waiting for it here."""
        if process.poll() is None:
            process.kill()
        threading.Thread(target=process.wait, name="tokenwheel-reaper", daemon=True).start()

    def _read_replies(self, conn: Any) -> None:
        while True:
            try:
                kind, request_id, body = conn.recv()
            except (EOFError, OSError):
                break
            waiting = self._pending.pop(request_id, None)
            if waiting is None:
                continue
            future = waiting[1]
            if kind == "ok":
                future.set_result(body)
            else:
                name, message = body
                future.set_exception(ERRORS.get(name, ModelUnavailableError)(message))
        # this child is gone: nobody will answer what still waits for it
        self._broken = conn
        for request_id, (pipe, future) in list(self._pending.items()):
            if pipe is not conn:
                continue
            self._pending.pop(request_id, None)
            if not future.done():
                future.set_exception(
                    ModelUnavailableError("The inference process stopped; try again.")
                )

    def _call(
        self, message: tuple[Any, ...], timeout: float | None = None, ensure: bool = True
    ) -> Any:
        if ensure:
            self._ensure_process()
        return self._send(message).result(timeout)

    def _send(self, message: tuple[Any, ...]) -> Future[Any]:
        """Send ``message`` to the child; the future holds its answer."""
        request_id = next(self._ids)
        future: Future[Any] = Future()
        conn = self._conn
        self._pending[request_id] = (conn, future)
        try:
            with self._send_lock:
                conn.send((message[0], request_id, *message[1:]))
        except (OSError, ValueError) as exc:
            self._pending.pop(request_id, None)
            self._broken = conn
            raise ModelUnavailableError(f"The inference process cannot be reached: {exc}") from exc
        return future

    # ------------------------------------------------------------ the engine's face

    def load(self, spec: ModelSpec, options: InferenceOptions, dtype: torch.dtype) -> ModelParts:
        """The weights in the child (which reports their facts), the tokenizer here."""
        report: LoadReport = self._call(("load", spec))
        self._loaded[spec.id] = spec
        text = load_text_side(spec, options, dtype)
        seconds = report.seconds + text.seconds
        return ModelParts(text.tokenizer, None, report.facts, seconds, report.from_cache)

    def logits(self, model: LoadedModel, ids: Sequence[int]) -> torch.Tensor:
        return _tensor(self._call(("logits", model.spec.id, tuple(ids))))

    def ask(self, model: LoadedModel, ids: Sequence[int], question: WheelQuestion) -> Answer:
        """A wheel question, answered in the child next to the logits (its caches); a
        wheel of thousands of wedges is built here from the logits (``MOST_WEDGES_SENT``)."""
        result: Answer = self._call(("ask", model.spec.id, tuple(ids), question))
        if result == TOO_MANY_WEDGES:
            logits = self.logits(model, ids)
            with one_torch_thread():
                return answer(Prepared(logits, question.temperature), question, model)
        return result

    def prefetch(
        self, model: LoadedModel, ids: Sequence[int], session: Hashable
    ) -> Future[torch.Tensor] | None:
        """Ask the child for ``session``'s next logits at low priority, for its logits
        cache, and return at once; nothing comes back (so None). No child running: no
        prefetch, and a prefetch never starts one."""
        if self._alive():
            try:
                with self._send_lock:
                    self._conn.send(("prefetch", NO_ANSWER, model.spec.id, tuple(ids), session))
            except (OSError, ValueError):
                self._broken = self._conn
        return None

    def score_positions(
        self, model: LoadedModel, ids: Sequence[int], alternatives: int
    ) -> tuple[PositionNumbers, ...]:
        """Computed in the child next to the logits; only the numbers come back."""
        result: tuple[PositionNumbers, ...] = self._call(
            ("positions", model.spec.id, tuple(ids), alternatives)
        )
        return result

    def drop_model(self, model_id: str) -> None:
        self._loaded.pop(model_id, None)
        if self._alive():
            self._call(("drop", model_id), ensure=False)

    def stats(self) -> dict[str, Any]:
        """The child's engine counters and KV cache use (for the benchmark and tests)."""
        return dict(self._call(("stats",)))

    def shutdown(self) -> None:
        process, conn = self._process, self._conn
        if process is None:
            return
        try:
            with self._send_lock:
                conn.send(("stop", 0))
        except (OSError, ValueError):
            pass
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        conn.close()
        self._process = None


def _tensor(reply: tuple[bytes, int]) -> torch.Tensor:
    data, size = reply
    return torch.frombuffer(bytearray(data), dtype=torch.float32, count=size)


__all__ = ["LoadReport", "ProcessEngine"]
