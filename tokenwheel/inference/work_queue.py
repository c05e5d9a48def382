"""The model thread's queue: what a student waits for first, prefetches when nobody waits.

Two lanes under one condition variable:

* the **normal lane**: requests someone is waiting for (a wheel, the score an append
  records, the lab's passes), first come first served, bounded (a full lane is
  OverloadedError, 503 with Retry-After);
* the **prefetch lane**: the next distribution of a session that just moved on (after an
  append, a spin, an undo or a new prompt), at most one per session: a newer prefetch of
  the same session replaces the older, which is dropped unrun; at most ``max_prefetches``
  wait, the oldest dropped first. A dropped prefetch's future is cancelled.

The model thread takes normal requests whenever there are any (batched as before);
prefetches only when the normal lane is empty, at most ``prefetch_batch`` per pass, and
never in a pass with normal rows: a pass is either all normal or all prefetch, so a
prefetch never makes a student's step wider. A student who arrives while a prefetch pass
runs waits for at most that one pass.

A normal request for the ids of a waiting prefetch takes that prefetch with it into the
normal lane (one row serves both: nothing is computed twice, and the student does not
wait at low priority); for the ids of a prefetch already in a pass, it waits for that
pass's answer instead of computing again.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Hashable
from concurrent.futures import Future
from typing import Any

from .passes import EngineStats, LogitsRequest
from .scoring import PositionsRequest

Work = LogitsRequest | PositionsRequest
RowKey = tuple[str, tuple[int, ...]]  # (model id, token ids)


class QueueFull(Exception):
    """The normal lane holds ``max_queue`` requests already."""


def _row_key(request: LogitsRequest) -> RowKey:
    return request.model.spec.id, request.ids


def _follow(source: Future[Any], target: Future[Any]) -> None:
    """``target`` gets ``source``'s outcome once it has one."""

    def copy(done: Future[Any]) -> None:
        if target.done():
            return
        error = done.exception() if not done.cancelled() else None
        if done.cancelled() or error is not None:
            target.set_exception(error or RuntimeError("the pass was cancelled"))
        else:
            target.set_result(done.result())

    source.add_done_callback(copy)


class WorkQueue:
    """The two lanes; :meth:`take` is called by the model thread only."""

    def __init__(
        self, *, max_queue: int, max_prefetches: int, prefetch_batch: int, stats: EngineStats
    ) -> None:
        self.max_queue = max_queue
        self.max_prefetches = max_prefetches
        self.prefetch_batch = prefetch_batch
        self.stats = stats
        self._ready = threading.Condition()
        self._normal: deque[Work | None] = deque()  # None: stop
        self._prefetches: OrderedDict[Hashable, LogitsRequest] = OrderedDict()
        self._running: dict[RowKey, LogitsRequest] = {}  # prefetches in the current pass

    # ------------------------------------------------------------ callers

    def put(self, request: Work) -> None:
        """Queue a request someone waits for; QueueFull if the lane is full."""
        with self._ready:
            if len(self._normal) >= self.max_queue:
                raise QueueFull
            if isinstance(request, LogitsRequest):
                key = _row_key(request)
                running = self._running.get(key)
                if running is not None:  # its pass is under way: wait for that answer
                    self.stats.prefetches_joined += 1
                    _follow(running.future, request.future)
                    return
                waiting = self._waiting_prefetch(key)
                if waiting is not None:  # it rides with this request, at its priority
                    self.stats.prefetches_joined += 1
                    self._normal.append(waiting)
            self._normal.append(request)
            self._ready.notify()

    def put_prefetch(self, session: Hashable, request: LogitsRequest) -> None:
        """Queue ``session``'s prefetch, dropping the session's older one and, beyond the
        bound, the oldest of all."""
        dropped = []
        with self._ready:
            older = self._prefetches.pop(session, None)
            if older is not None:
                dropped.append(older)
            self._prefetches[session] = request
            while len(self._prefetches) > self.max_prefetches:
                dropped.append(self._prefetches.popitem(last=False)[1])
            self.stats.prefetches_dropped += len(dropped)
            self._ready.notify()
        for old in dropped:
            old.future.cancel()

    def pending_prefetches(self) -> int:
        with self._ready:
            return len(self._prefetches)

    def close(self) -> None:
        """Stop the model thread after the requests already queued; drop the prefetches."""
        with self._ready:
            dropped = list(self._prefetches.values())
            self._prefetches.clear()
            self._normal.append(None)
            self._ready.notify()
        for old in dropped:
            old.future.cancel()

    # ------------------------------------------------------------ the model thread

    def take(self, max_batch: int, batch_wait: float) -> tuple[list[Work], bool] | None:
        """The next pass's requests and whether they are prefetches; None: stop.

        Normal requests first: the first one, and more that come within ``batch_wait``
        seconds, up to ``max_batch``. Prefetches only when no normal request waits."""
        with self._ready:
            while not self._normal and not self._prefetches:
                self._ready.wait()
            if not self._normal:
                batch: list[Work] = []
                while self._prefetches and len(batch) < self.prefetch_batch:
                    request = self._prefetches.popitem(last=False)[1]
                    self._running[_row_key(request)] = request
                    batch.append(request)
                self.stats.prefetches += len(batch)
                return batch, True
            first = self._normal.popleft()
            if first is None:
                return None
            batch = [first]
            deadline = time.monotonic() + batch_wait
            while len(batch) < max_batch:
                if not self._normal:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._ready.wait(remaining)  # a prefetch's notify wakes it too
                    continue
                if self._normal[0] is None:
                    break  # stop after this pass
                item = self._normal.popleft()
                assert item is not None
                batch.append(item)
            return batch, False

    def finished(self, batch: list[Work]) -> None:
        """A prefetch pass is done (its futures are set): a later request for its ids
        finds the logits cache instead."""
        with self._ready:
            for request in batch:
                if isinstance(request, LogitsRequest):
                    self._running.pop(_row_key(request), None)

    def _waiting_prefetch(self, key: RowKey) -> LogitsRequest | None:
        for session, request in self._prefetches.items():
            if _row_key(request) == key:
                del self._prefetches[session]
                return request
        return None
