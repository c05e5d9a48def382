"""KV storage: cached keys and values by token-id sequence, and the transformers cache
layer that writes a pass's new positions into storage allocated before the pass.

Only the model thread touches any of it (see :mod:`~tokenwheel.inference.engine`), so
nothing here takes a lock, and an entry is never evicted while a pass uses it.

Gemma 3's sliding-window layers attend to the last 512 positions only. transformers' own
sliding cache drops older positions, so it could not be cut back to a prefix; ours keeps
every position and lets the sliding-window mask hide the old ones, so a step or an undo
past the window costs what it costs below it.
"""

from __future__ import annotations

import functools
import inspect
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch

# Room for this many more tokens is allocated with every KV entry, so the steps after it
# write their keys and values in place instead of copying the whole entry each time.
HEADROOM = 64


@dataclass
class KVEntry:
    """The keys and values of one token sequence in one tensor,
    ``[layers, 2 (keys, values), heads, capacity, dim]``: the first ``len(ids)`` positions
    hold the sequence, the rest is room to grow. One tensor per sequence makes copying a
    row into a batch one operation, not one per layer."""

    ids: tuple[int, ...]
    kv: torch.Tensor

    @property
    def capacity(self) -> int:
        return int(self.kv.shape[3])

    @property
    def nbytes(self) -> int:
        return int(self.kv.numel() * self.kv.element_size())


def _common_prefix(a: tuple[int, ...], b: tuple[int, ...]) -> int:
    """Length of the common prefix, by binary search on C-speed tuple slices."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


class PrefixCache:
    """KV caches of one model by token-id sequence, bounded in bytes (LRU).

    A stored sequence serves every prefix of itself, so a sequence that is a prefix of a
    newly stored one is dropped: one entry per live branch, not one per step. Only the
    model thread touches it, so an entry is never evicted while a pass uses it.
    Hand-written, not a cachetools LRU: a lookup finds the longest common prefix, not a key.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.entries: OrderedDict[tuple[int, ...], KVEntry] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def longest(self, ids: tuple[int, ...]) -> tuple[KVEntry | None, int]:
        best, best_len = None, 0
        for entry in self.entries.values():
            n = _common_prefix(entry.ids, ids)
            if n > best_len:
                best, best_len = entry, n
        if best is not None:
            self.entries.move_to_end(best.ids)
            self.hits += 1
        else:
            self.misses += 1
        return best, best_len

    def put(self, entry: KVEntry) -> None:
        if entry.nbytes > self.max_bytes:
            return
        ids = entry.ids
        for key in [k for k in self.entries if len(k) <= len(ids) and ids[: len(k)] == k]:
            self.bytes -= self.entries.pop(key).nbytes
        self.entries[ids] = entry
        self.bytes += entry.nbytes
        self._evict()

    def extend(self, entry: KVEntry, ids: tuple[int, ...]) -> None:
        """``entry`` now holds ``ids`` (one more position, written in place)."""
        if self.entries.get(entry.ids) is entry:
            del self.entries[entry.ids]
            self.bytes -= entry.nbytes
        entry.ids = ids
        self.put(entry)

    def _evict(self) -> None:
        while self.bytes > self.max_bytes and self.entries:
            _, old = self.entries.popitem(last=False)
            self.bytes -= old.nbytes

    def clear(self) -> None:
        self.entries.clear()
        self.bytes = 0


@functools.cache
def _in_place_layer() -> type:
    """The class of :func:`in_place_cache`'s layers (built on first use: transformers
    loads lazily)."""
    from transformers.cache_utils import DynamicLayer

    class InPlaceLayer(DynamicLayer):  # type: ignore[misc]
        """A KV cache layer whose storage is allocated before the pass, with room for the
        new positions: ``update`` writes them in place (``DynamicLayer`` concatenates,
        copying the whole cache every step). A sliding layer keeps every position too
        and says it is sliding, so the model masks what lies outside its window."""

        def __init__(self, keys: torch.Tensor, values: torch.Tensor, filled: int, sliding: bool):
            super().__init__()
            self.storage_keys, self.storage_values = keys, values
            self.filled = filled
            self.is_sliding = sliding
            self.is_initialized = True
            self.device = keys.device
            self.keys, self.values = keys[:, :, :filled], values[:, :, :filled]

        def update(
            self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kw: Any
        ) -> tuple[torch.Tensor, torch.Tensor]:
            end = self.filled + key_states.shape[-2]
            self.storage_keys[:, :, self.filled : end] = key_states
            self.storage_values[:, :, self.filled : end] = value_states
            self.filled = end
            self.keys = self.storage_keys[:, :, :end]
            self.values = self.storage_values[:, :, :end]
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return int(self.filled)

        def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
            return self.filled + query_length, 0

    return InPlaceLayer


def in_place_cache(net: Any, storage: torch.Tensor, filled: int) -> Any:
    """A transformers ``Cache`` over storage we allocated,
    ``[layers, 2, batch, heads, room, dim]``, whose first ``filled`` positions are set."""
    from transformers.cache_utils import Cache

    layer_class = _in_place_layer()
    sliding = _sliding_layers(net.config, int(storage.shape[0]))
    layers = [
        layer_class(storage[i, 0], storage[i, 1], filled, is_sliding)
        for i, is_sliding in enumerate(sliding)
    ]
    return Cache(layers=layers)


def _sliding_layers(config: Any, count: int) -> list[bool]:
    types = list(getattr(config, "layer_types", None) or ())
    if len(types) == count and getattr(config, "sliding_window", None):
        return [t == "sliding_attention" for t in types]
    return [False] * count


def sliding_window(net: Any) -> int | None:
    """The window of the model's sliding-attention layers, or None if it has none."""
    config = net.config
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None) or ()
    if window and (not layer_types or "sliding_attention" in layer_types):
        return int(window)
    return None


def kv_shape(net: Any, entry: KVEntry | None) -> tuple[int, int, int, torch.dtype]:
    """(layers, key-value heads, head dim, dtype) of the model's KV cache."""
    if entry is not None:
        layers, _, heads, _, dim = entry.kv.shape
        return int(layers), int(heads), int(dim), entry.kv.dtype
    config = net.config.get_text_config() if hasattr(net.config, "get_text_config") else net.config
    heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    dtype = next(net.parameters()).dtype
    return int(config.num_hidden_layers), int(heads), int(dim), dtype


def cache_kwarg(net: Any, cache: Any) -> dict[str, Any]:
    """transformers 5.24 renamed the forward's ``past_key_values`` to ``cache`` (the old
    name warns); pass whichever this version's model takes."""
    names = _forward_parameters(type(net))
    return {"cache": cache} if "cache" in names else {"past_key_values": cache}


_FORWARD_PARAMETERS: dict[Any, frozenset[str]] = {}


def _forward_parameters(cls: Any) -> frozenset[str]:
    if cls not in _FORWARD_PARAMETERS:
        _FORWARD_PARAMETERS[cls] = frozenset(inspect.signature(cls.forward).parameters)
    return _FORWARD_PARAMETERS[cls]
