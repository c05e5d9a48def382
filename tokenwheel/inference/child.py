"""The inference process itself: the weights, the model thread, and the wheels built next
to their logits (:mod:`~tokenwheel.inference.wheels`).

Started by :class:`~tokenwheel.inference.process.ProcessEngine` as
``python -m tokenwheel.inference.child FD`` and served over that socket until it closes.
Each message is ``(kind, request id, *args)``; each answer ``("ok" | "err", request id,
body)``. A wheel question waits for its logits without holding up the receive loop, and
its float64 math runs on one thread of its own (one torch thread), never the model
thread's. Prefetches are not answered: their logits stay here, in the cache the next
wheel is built from.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from multiprocessing.connection import Connection
from typing import Any

import torch

from .cpu import check_dtype
from .engine import InferenceEngine
from .model import LoadedModel
from .process import NO_ANSWER, LoadReport
from .types import ModelUnavailableError, OverloadedError
from .wheels import MOST_WEDGES_SENT, Wheels


class Child:
    """What the child holds: the engine, its wheels, the loaded models and the pipe."""

    def __init__(self, conn: Any, options: Any, engine_kwargs: Any) -> None:
        self.conn = conn
        self.options = options
        self.engine = InferenceEngine(**engine_kwargs)
        self.wheels = Wheels(self.engine, options.dtype, options.logits_cache_bytes)
        self.dtype = check_dtype(options.dtype)
        self.models: dict[str, LoadedModel] = {}
        self._send_lock = threading.Lock()
        self._math = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="tokenwheel-wheels", initializer=_one_thread
        )

    def reply(self, kind: str, request_id: int, body: Any) -> None:
        if request_id == NO_ANSWER:
            return
        try:
            with self._send_lock:
                self.conn.send((kind, request_id, body))
        except (OSError, ValueError):
            pass  # the parent is gone; the receive loop ends too

    def fail(self, request_id: int, exc: BaseException) -> None:
        self.reply("err", request_id, (type(exc).__name__, str(exc)))

    def answer_when_done(
        self, request_id: int, future: Future[Any], shape: Callable[[Any], Any] = lambda x: x
    ) -> None:
        def done(finished: Future[Any]) -> None:
            try:
                body = shape(finished.result())
            except BaseException as exc:  # the parent must always hear back
                self.fail(request_id, exc)
                return
            self.reply("ok", request_id, body)

        future.add_done_callback(done)

    def model(self, request_id: int, model_id: str) -> LoadedModel | None:
        model = self.models.get(model_id)
        if model is None:
            self.fail(request_id, ModelUnavailableError(f"{model_id} is not loaded"))
        return model

    def load(self, request_id: int, spec: Any) -> None:
        try:
            if spec.id not in self.models:
                parts = self.engine.load(spec, self.options, self.dtype)
                # the window is the server's to enforce (it refuses longer texts first)
                model = LoadedModel(
                    spec, parts.tokenizer, parts.weights, max_context=0, facts=parts.facts
                )
                model.decode_vocabulary()
                self.models[spec.id] = model
                report = LoadReport(parts.facts, parts.from_cache, parts.seconds)
            else:
                report = LoadReport(self.models[spec.id].facts, True, 0.0)
        except BaseException as exc:
            self.fail(request_id, exc)
            return
        self.reply("ok", request_id, report)

    def handle(self, kind: str, request_id: int, args: list[Any]) -> bool:
        """Serve one message; False when the parent asked the child to stop."""
        if kind in ("logits", "ask", "prefetch", "positions"):
            model = self.model(request_id, args[0])
            if model is None:
                return True
            try:
                self.serve(kind, request_id, model, args[1:])
            except OverloadedError as exc:
                self.fail(request_id, exc)
        elif kind == "load":
            # a load takes seconds: the models already loaded keep being served meanwhile
            threading.Thread(target=self.load, args=(request_id, args[0]), daemon=True).start()
        elif kind == "drop":
            self.models.pop(args[0], None)
            self.wheels.drop_model(args[0])
            self.engine.drop_model(args[0])
            self.reply("ok", request_id, None)
        elif kind == "stats":
            self.reply("ok", request_id, self.stats())
        elif kind == "stop":
            return False
        return True

    def serve(self, kind: str, request_id: int, model: LoadedModel, args: list[Any]) -> None:
        if kind == "logits":
            self.answer_when_done(request_id, self.wheels.logits_later(model, args[0]), _bytes)
        elif kind == "ask":
            ids, question = args
            asked = self.wheels.ask_later(model, ids, question, self._math.submit, MOST_WEDGES_SENT)
            self.answer_when_done(request_id, asked)
        elif kind == "prefetch":
            ids, session = args
            self.wheels.prefetch(model, ids, session)
        else:  # positions: a whole text scored in one pass
            ids, alternatives = args
            self.answer_when_done(
                request_id, self.engine.submit_positions(model, ids, alternatives)
            )

    def stats(self) -> dict[str, Any]:
        wheels = self.wheels
        return {
            **asdict(self.engine.stats),
            "kv_caches": self.engine.kv_usage(),
            "logits_asked": wheels.forward_passes,
            "logits_cache_hits": wheels.cache.hits,
            "prefetches_started": wheels.prefetches.started,
            "prefetches_landed": wheels.prefetches.landed,
        }

    def close(self) -> None:
        self._math.shutdown(wait=False, cancel_futures=True)
        self.engine.shutdown()


def _one_thread() -> None:
    """The wheels' float64 math on one torch thread: the model thread has the other."""
    torch.set_num_threads(1)


def _bytes(logits: torch.Tensor) -> tuple[bytes, int]:
    array = logits.contiguous().numpy()
    return array.tobytes(), int(array.size)


def child_main(conn: Any) -> None:
    """Serve the parent until the pipe closes or it says stop."""
    kind, request_id, options, engine_kwargs, level = conn.recv()
    assert kind == "init"
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"
    )
    child = Child(conn, options, engine_kwargs)
    child.reply("ok", request_id, None)  # ready
    while True:
        try:
            kind, request_id, *args = conn.recv()
        except (EOFError, OSError):
            break  # the parent is gone
        if not child.handle(kind, request_id, args):
            break
    child.close()


__all__ = ["Child", "child_main"]

if __name__ == "__main__":
    # Run by its import name, so what the child pickles names importable modules, not
    # "__main__", and the parent can unpickle it.
    from tokenwheel.inference import child as module

    module.child_main(Connection(int(sys.argv[1])))
