"""The model-owning thread, in whichever process holds the weights.

One thread per process owns every forward pass (torch's thread pools are per thread, so
one thread with a fixed ``torch.set_num_threads`` uses the cores without oversubscribing
them). Requests wait in a bounded queue; the thread takes the first, waits a few
milliseconds for more, and hands them to :class:`~tokenwheel.inference.batching.Batcher`,
which reuses KV prefixes and batches one-token steps. Prefetches (the next wheel of a
session that just moved on) wait in a second, lower lane and run only when no student
waits (:class:`~tokenwheel.inference.work_queue.WorkQueue`). KV entries are bounded by a
byte budget, least recently used out first; eviction happens only on this thread, between
passes, so an entry in use is never evicted mid-step.

The server runs this thread in a child process by default
(:class:`~tokenwheel.inference.process.ProcessEngine`); in its own process for the naive
engine, the benchmark and the tests.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Hashable, Sequence
from concurrent.futures import Future
from typing import TypedDict

import torch

from .batching import Batcher
from .catalog import ModelSpec
from .kv import PrefixCache
from .loading import load_pretrained
from .model import LoadedModel, ModelFacts
from .packed import pack_linears
from .passes import EngineStats, ForwardPasses, LogitsRequest
from .ports import ModelParts
from .scoring import PositionsRequest, score_positions
from .types import InferenceOptions, OverloadedError, PositionNumbers
from .work_queue import QueueFull, WorkQueue

log = logging.getLogger(__name__)

# Prefetches waiting at once (per inference process): a class of 30 moves on about 13
# times a second, so 64 is several seconds of a class's steps; beyond it the oldest goes.
MAX_PREFETCHES = 64
# Rows in one prefetch pass: a student who arrives meanwhile waits for at most this pass
# (a batch of 8 one-token steps took 57 ms on SmolLM2, against 38 ms for one).
PREFETCH_BATCH = 8


class EngineKwargs(TypedDict):
    """:class:`InferenceEngine`'s keyword arguments as the registry builds them (and
    sends them to the inference process)."""

    threads: int
    kv_cache_bytes: int
    max_batch: int
    batch_wait: float
    max_queue: int
    reuse_kv: bool
    pack: bool


class InferenceEngine:
    """Owns the model thread. ``logits(model, ids)`` blocks until the pass that served it
    is done; a full queue raises :class:`OverloadedError` at once. An
    :class:`~tokenwheel.inference.ports.Engine` whose weights live in this process."""

    def __init__(
        self,
        *,
        threads: int = 0,
        kv_cache_bytes: int = 1 << 30,
        max_batch: int = 32,
        batch_wait: float = 0.003,
        max_queue: int = 256,
        reuse_kv: bool = True,
        pack: bool = True,
        max_prefetches: int = MAX_PREFETCHES,
    ) -> None:
        self.threads = threads or max(1, os.cpu_count() or 1)
        self.pack = pack
        # Prefills are arithmetic (every prompt token through every layer) and come in
        # bursts when a class sets its prompts: they get every core. One-token steps are
        # bound by reading the weights and get ``threads``.
        self.prefill_threads = max(self.threads, os.cpu_count() or 1)
        self.max_batch = max_batch
        self.batch_wait = batch_wait
        self._caches: dict[str, PrefixCache] = {}
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.stats = EngineStats()
        self._work = WorkQueue(
            max_queue=max_queue,
            max_prefetches=max_prefetches,
            prefetch_batch=min(PREFETCH_BATCH, max_batch),
            stats=self.stats,
        )
        passes = ForwardPasses(
            kv_cache_bytes=kv_cache_bytes, reuse_kv=reuse_kv, caches=self._caches, stats=self.stats
        )
        self._batcher = Batcher(
            threads=self.threads,
            prefill_threads=self.prefill_threads,
            max_batch=max_batch,
            reuse_kv=reuse_kv,
            passes=passes,
        )

    # ------------------------------------------------------------ public

    def load(self, spec: ModelSpec, options: InferenceOptions, dtype: torch.dtype) -> ModelParts:
        """Tokenizer and weights, both here; linear layers on packed weights
        (:mod:`~tokenwheel.inference.packed`) unless this is the naive engine."""
        loaded = load_pretrained(spec, options, dtype)
        if self.pack:
            pack_linears(loaded.model)
        facts = ModelFacts.of(loaded.tokenizer, loaded.model)
        return ModelParts(loaded.tokenizer, loaded.model, facts, loaded.seconds, loaded.from_cache)

    def logits(self, model: LoadedModel, ids: Sequence[int]) -> torch.Tensor:
        return self.submit(model, ids).result()

    def submit(self, model: LoadedModel, ids: Sequence[int]) -> Future[torch.Tensor]:
        """Queue one request; the future holds its logits once the pass that served it
        is done. A full queue raises :class:`OverloadedError` at once."""
        request = LogitsRequest(model, tuple(ids))
        self._enqueue(request)
        return request.future

    def score_positions(
        self, model: LoadedModel, ids: Sequence[int], alternatives: int
    ) -> tuple[PositionNumbers, ...]:
        return self.submit_positions(model, ids, alternatives).result()

    def submit_positions(
        self, model: LoadedModel, ids: Sequence[int], alternatives: int
    ) -> Future[tuple[PositionNumbers, ...]]:
        """Queue a whole text for one forward pass (``scoring.score_positions``)."""
        request = PositionsRequest(model, tuple(ids), alternatives)
        self._enqueue(request)
        return request.future

    def prefetch(
        self, model: LoadedModel, ids: Sequence[int], session: Hashable
    ) -> Future[torch.Tensor]:
        """Queue ``session``'s next distribution at low priority (see
        :class:`~tokenwheel.inference.work_queue.WorkQueue`): it replaces the session's
        waiting prefetch, and its future is cancelled if it is dropped unrun."""
        request = LogitsRequest(model, tuple(ids))
        self._ensure_thread()
        self._work.put_prefetch(session, request)
        return request.future

    def _enqueue(self, request: LogitsRequest | PositionsRequest) -> None:
        self._ensure_thread()
        try:
            self._work.put(request)
        except QueueFull:
            raise OverloadedError(
                "The model is busy with other requests; try again in a moment."
            ) from None

    def kv_usage(self) -> dict[str, dict[str, int]]:
        """Entries and bytes of each model's KV prefix cache."""
        return {
            model_id: {"entries": len(cache.entries), "bytes": cache.bytes}
            for model_id, cache in self._caches.items()
        }

    def drop_model(self, model_id: str) -> None:
        cache = self._caches.pop(model_id, None)
        if cache is not None:
            cache.clear()

    def shutdown(self) -> None:
        if self._thread is not None:
            self._work.close()
            self._thread.join(timeout=30)
            self._thread = None

    # ------------------------------------------------------------ the model thread

    def _ensure_thread(self) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="tokenwheel-model", daemon=True
                    )
                    self._thread.start()

    def _run(self) -> None:
        torch.set_num_threads(self.threads)
        while True:
            taken = self._work.take(self.max_batch, self.batch_wait)
            if taken is None:
                return
            batch, prefetches = taken
            steps = [r for r in batch if isinstance(r, LogitsRequest)]
            try:
                if steps:
                    with torch.inference_mode():
                        self._batcher.serve(steps)
            except BaseException as exc:  # never leave a caller waiting
                for request in steps:
                    if not request.future.done():
                        request.future.set_exception(exc)
            if prefetches:
                self._work.finished(batch)
            for text in batch:
                if isinstance(text, PositionsRequest):
                    self._score(text)

    def _score(self, request: PositionsRequest) -> None:
        """A whole text is arithmetic, like a prefill: every core."""
        torch.set_num_threads(self.prefill_threads)
        try:
            result = score_positions(request.model, request.ids, request.alternatives)
        except BaseException as exc:  # never leave a caller waiting
            request.future.set_exception(exc)
        else:
            self.stats.forward_passes += 1
            self.stats.prefill_tokens += len(request.ids)
            request.future.set_result(result)
        finally:
            torch.set_num_threads(self.threads)
