"""Results of forward passes by token-id sequence, bounded in bytes, least recently used
out first: a repeated query, an undo or a new threshold costs no forward pass."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from cachetools import LRUCache

# (model id, dtype name, token ids, ...): the first three are what every key starts with
K = TypeVar("K", bound=tuple[Any, ...])
V = TypeVar("V")


class LogitsCache(Generic[K, V]):
    """Next-token logits by ``(model, dtype, token ids)``. Temperature, threshold and
    top-k are applied after the cache, so changing them never costs a forward pass. The
    registry keeps a second one for prepared distributions (one per temperature), keyed
    by ``(model, dtype, ids, T)``. An entry's size is its value's bytes plus its key's
    ids; request threads share it, hence the lock."""

    def __init__(self, max_bytes: int, value_bytes: Callable[[V], int]) -> None:
        self.max_bytes = max_bytes
        self._value_bytes = value_bytes
        # each value is stored with its size, which counts the key's ids too
        self._entries: LRUCache[K, tuple[V, int]] = LRUCache(
            maxsize=max_bytes, getsizeof=lambda item: item[1]
        )
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def _size(self, key: K, value: V) -> int:
        return self._value_bytes(value) + 8 * len(key[2]) + 64

    def get(self, key: K) -> V | None:
        with self._lock:
            item = self._entries.get(key)
            if item is None:
                self.misses += 1
                return None
            self.hits += 1
            return item[0]

    def __contains__(self, key: K) -> bool:
        """Whether ``key`` is cached, without counting a hit or refreshing it."""
        with self._lock:
            return key in self._entries

    def put(self, key: K, value: V) -> None:
        size = self._size(key, value)
        if size > self.max_bytes or self.max_bytes <= 0:
            return
        with self._lock:
            # a replaced value leaves first, so eviction makes room for the new size only
            self._entries.pop(key, None)
            self._entries[key] = (value, size)

    def drop_model(self, model_id: str) -> None:
        with self._lock:
            for key in [k for k in self._entries if k[0] == model_id]:
                del self._entries[key]
