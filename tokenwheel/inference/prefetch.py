"""The next wheel before it is asked for: prefetching, next to the logits cache it fills
(in the inference process with the server's default engine, :mod:`~.wheels`).

After a student's append, spin, undo or new prompt, the service asks for the session's
next distribution at once, without waiting: the page asks for that wheel next (after
watching a spin for 3.6 s, or at once after a pick). The logits are computed at low
priority on the model thread (:mod:`~tokenwheel.inference.work_queue`) and land in the
logits cache, so the wheel is a cache hit. The cache is keyed by ``(model, dtype, ids)``;
temperature, threshold and top-k are applied after it (about 0.3 ms for SmolLM2's
vocabulary), so a prefetch needs none of them. Memory stays bounded: the results go into
the LRU-bounded logits cache, and the engine keeps at most a fixed number waiting.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Hashable
from concurrent.futures import Future

import torch

from .logits_cache import LogitsCache
from .model import LoadedModel
from .ports import Engine

log = logging.getLogger(__name__)

LogitsKey = tuple[str, str, tuple[int, ...]]  # (model id, dtype, token ids)


class Prefetches:
    """Starts prefetches on an engine and puts what they compute into ``cache``."""

    def __init__(self, cache: LogitsCache[LogitsKey, torch.Tensor]) -> None:
        self.cache = cache
        self.started = 0
        self.landed = 0

    def start(self, engine: Engine, model: LoadedModel, key: LogitsKey, session: Hashable) -> None:
        """Queue the logits for ``key`` unless they are cached (an undo usually returns
        to a cached sequence) or the cache is off (the naive engine). The registry has
        already left out a model not loaded (a prefetch never loads one) and a text that
        fills the model's window (its wheel would be refused anyway)."""
        if self.cache.max_bytes <= 0 or key in self.cache:
            return
        future = engine.prefetch(model, key[2], session)
        if future is None:
            return
        self.started += 1
        future.add_done_callback(functools.partial(self._landed, key))

    def _landed(self, key: LogitsKey, future: Future[torch.Tensor]) -> None:
        if future.cancelled() or future.exception() is not None:
            return  # dropped (the session moved on, or too many waited): nothing to keep
        self.cache.put(key, future.result())
        self.landed += 1
