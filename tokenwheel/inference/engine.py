"""The model-owning thread: shared KV prefixes and batched single-token steps.

One thread per process owns every forward pass (torch's thread pools are per thread, so
one thread with a fixed ``torch.set_num_threads`` uses the cores without oversubscribing
them). Requests wait in a bounded queue; the thread takes the first, waits a few
milliseconds for more, and runs them together:

* KV caches are kept by token-id sequence (:class:`PrefixCache`). A request reuses the
  cached sequence that shares the longest prefix with its ids, sliced to that prefix, so
  a step after an append runs one token, students who share a prompt share its prefill,
  and an undo returns to a prefix of a cached sequence. Sequences are bounded by a byte
  budget, least recently used out first; eviction happens only on this thread, between
  passes, so an entry in use is never evicted mid-step.
* Requests that need exactly one new token are batched into one forward pass with left
  padding, an attention mask and explicit position ids (GPT-2 has learned absolute
  positions). Prefills run one by one.
* Gemma 3's sliding-window layers attend to the last 512 positions only. transformers'
  own sliding cache drops older positions, so it could not be cut back to a prefix; ours
  keeps every position and lets the sliding-window mask hide the old ones, so a step or
  an undo past the window costs what it costs below it.

Every path returns the logits a full recompute on the same ids gives (the tests hold it to
max |dp| <= 1e-4 in float32).
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import torch

from .types import OverloadedError

log = logging.getLogger(__name__)

# Room for this many more tokens is allocated with every KV entry, so the steps after it
# write their keys and values in place instead of copying the whole entry each time.
HEADROOM = 64
SHORT_CONTEXT = 16


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
    model thread touches it, so an entry is never evicted while a pass uses it."""

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
    """The class of :func:`_layer` (built on first use: transformers loads lazily)."""
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


def _in_place_cache(net: Any, storage: torch.Tensor, filled: int) -> Any:
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


@dataclass
class _Request:
    model: Any  # LoadedModel
    ids: tuple[int, ...]
    future: Future[torch.Tensor] = field(default_factory=Future)


Row = tuple[list[_Request], Any, int]  # (identical requests, KV entry or None, reused positions)


@dataclass
class EngineStats:
    forward_passes: int = 0
    batched_passes: int = 0
    batched_rows: int = 0
    prefill_tokens: int = 0
    recomputes: int = 0


class InferenceEngine:
    """Owns the model thread. ``logits(model, ids)`` blocks until the pass that served it
    is done; a full queue raises :class:`OverloadedError` at once."""

    def __init__(
        self,
        *,
        threads: int = 0,
        kv_cache_bytes: int = 1 << 30,
        max_batch: int = 32,
        batch_wait: float = 0.003,
        max_queue: int = 256,
        reuse_kv: bool = True,
    ) -> None:
        self.threads = threads or max(1, os.cpu_count() or 1)
        # Prefills are arithmetic (every prompt token through every layer) and come in
        # bursts when a class sets its prompts: they get every core. One-token steps are
        # bound by reading the weights and get ``threads``.
        self.prefill_threads = max(self.threads, os.cpu_count() or 1)
        self.kv_cache_bytes = kv_cache_bytes
        self.max_batch = max_batch
        self.batch_wait = batch_wait
        self.reuse_kv = reuse_kv
        self._queue: queue.Queue[_Request | None] = queue.Queue(maxsize=max_queue)
        self._caches: dict[str, PrefixCache] = {}
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.stats = EngineStats()

    # ------------------------------------------------------------ public

    def logits(self, model: Any, ids: Sequence[int]) -> torch.Tensor:
        return self.submit(model, ids).result()

    def submit(self, model: Any, ids: Sequence[int]) -> Future[torch.Tensor]:
        """Queue one request; the future holds its logits once the pass that served it
        is done. A full queue raises :class:`OverloadedError` at once."""
        self._ensure_thread()
        request = _Request(model, tuple(ids))
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            raise OverloadedError(
                "The model is busy with other requests; try again in a moment."
            ) from None
        return request.future

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
            self._queue.put(None)
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
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.batch_wait
            while len(batch) < self.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    item = (
                        self._queue.get(timeout=max(remaining, 0))
                        if remaining > 0
                        else (self._queue.get_nowait())
                    )
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                batch.append(item)
            try:
                with torch.inference_mode():
                    self._serve(batch)
            except BaseException as exc:  # never leave a caller waiting
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(exc)

    def _cache_for(self, model: Any) -> PrefixCache:
        key = model.spec.id
        if key not in self._caches:
            self._caches[key] = PrefixCache(self.kv_cache_bytes)
        return self._caches[key]

    def _serve(self, batch: list[_Request]) -> None:
        # identical requests share one computation
        unique: dict[tuple[str, tuple[int, ...]], list[_Request]] = {}
        for request in batch:
            unique.setdefault((request.model.spec.id, request.ids), []).append(request)
        steps: dict[str, list[Row]] = {}
        prefills: dict[str, list[Row]] = {}
        for (_, ids), requests in unique.items():
            model = requests[0].model
            if not getattr(model, "supports_kv", False):  # e.g. a test fake: logits only
                self.stats.forward_passes += 1
                self._finish(requests, model.logits(ids))
                continue
            if not self.reuse_kv:
                self._finish(requests, self._full(model, ids, store=False))
                continue
            entry, common = self._cache_for(model).longest(ids)
            usable = min(common, len(ids) - 1)
            if entry is not None and usable == len(ids) - 1:
                steps.setdefault(model.spec.id, []).append((requests, entry, usable))
            else:
                prefills.setdefault(model.spec.id, []).append((requests, entry, usable))
        if prefills:
            torch.set_num_threads(self.prefill_threads)
            try:
                for rows in prefills.values():
                    for group in self._prefill_groups(rows):
                        self._batched_prefill(group)
            finally:
                torch.set_num_threads(self.threads)
        for rows in steps.values():
            for group in self._groups(rows):
                self._batched_step(group)

    def _groups(
        self, rows: list[Row], key: Callable[[Row], int] = lambda r: r[2]
    ) -> list[list[Row]]:
        """Batches of at most ``max_batch`` rows, shortest first, each padded to its
        longest row. A row joins a batch while its length is within twice the batch's
        shortest, plus HEADROOM tokens once the shortest has SHORT_CONTEXT tokens: very
        short contexts (a few tokens, whose attention is the most sensitive to rounding:
        padding one token out to eight moved a probability by 1.2e-4) stay among their
        own, and a class's contexts, which spread as students write, still share passes."""
        groups: list[list[Row]] = []
        for row in sorted(rows, key=key):
            current = groups[-1] if groups else None
            shortest = key(current[0]) if current else 0
            slack = HEADROOM if shortest >= SHORT_CONTEXT else 0
            if current and len(current) < self.max_batch and key(row) <= 2 * shortest + slack:
                current.append(row)
            else:
                groups.append([row])
        return groups

    @staticmethod
    def _finish(requests: list[_Request], logits: torch.Tensor) -> None:
        for request in requests:
            request.future.set_result(logits)

    def _full(self, model: Any, ids: tuple[int, ...], store: bool) -> torch.Tensor:
        self.stats.recomputes += 1
        return self._prefill(model, ids, None, 0, store=store)

    def _prefill(
        self,
        model: Any,
        ids: tuple[int, ...],
        entry: KVEntry | None,
        reuse: int,
        store: bool = True,
    ) -> torch.Tensor:
        """Run ``ids[reuse:]`` on top of the first ``reuse`` cached positions; the keys and
        values land in storage with HEADROOM to spare, which becomes the new entry."""
        net = model.model
        layers, heads, dim, dtype = _kv_shape(net, entry)
        if entry is None:
            reuse = 0
        room = len(ids) + (HEADROOM if store else 0)
        storage = torch.zeros(layers, 2, 1, heads, room, dim, dtype=dtype)
        if entry is not None and reuse:
            storage[:, :, 0, :, :reuse] = entry.kv[:, :, :, :reuse]
        new = torch.tensor([ids[reuse:]], dtype=torch.long)
        positions = torch.arange(reuse, len(ids), dtype=torch.long)[None]
        out = net(
            input_ids=new,
            position_ids=positions,
            **_cache_kwarg(net, _in_place_cache(net, storage, reuse)),
            use_cache=True,
            logits_to_keep=1,
        )
        self.stats.forward_passes += 1
        self.stats.prefill_tokens += len(ids) - reuse
        if store and self.reuse_kv:
            self._cache_for(model).put(KVEntry(ids, storage[:, :, 0]))
        return out.logits[0, -1, : model.vocabulary_size].float().clone()

    def _alone(self, rows: list[Row]) -> bool:
        """A batch of one is a plain prefill (no padding): run it and say so."""
        if len(rows) != 1:
            return False
        requests, entry, reuse = rows[0]
        self._finish(requests, self._prefill(requests[0].model, requests[0].ids, entry, reuse))
        return True

    def _batched_forward(
        self,
        net: Any,
        input_ids: torch.Tensor,
        mask: torch.Tensor,
        positions: torch.Tensor,
        storage: torch.Tensor,
        filled: int,
    ) -> Any:
        """One padded forward pass over ``storage`` (its first ``filled`` positions set),
        keeping the last position's logits of every row."""
        out = net(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            **_cache_kwarg(net, _in_place_cache(net, storage, filled)),
            use_cache=True,
            logits_to_keep=1,
        )
        self.stats.forward_passes += 1
        self.stats.batched_passes += 1
        self.stats.batched_rows += int(input_ids.shape[0])
        return out

    def _prefill_groups(self, rows: list[Row]) -> list[list[Row]]:
        """Prefills that can share a pass. A batched prefill leaves a masked gap between a
        row's cached prefix and its new tokens, which a sliding-window layer would count
        as distance: rows longer than the window run alone (no gap, exact)."""
        window = _sliding_window(rows[0][0][0].model)
        alone = [[r] for r in rows if window is not None and len(r[0][0].ids) >= window]
        together = [r for r in rows if window is None or len(r[0][0].ids) < window]
        return self._groups(together, key=lambda r: len(r[0][0].ids)) + alone

    def _batched_prefill(self, rows: list[Row]) -> None:
        """Several prefills of one model in one forward pass (a class that sets its
        prompts at once). Row ``i`` has ``r`` cached positions and ``n`` new tokens; the
        batch holds each cached prefix right-aligned before position ``P`` and each row's
        new tokens right-aligned at the end, the gaps masked out, so every row's last
        token (whose logits we keep) is at the same place. Each row then gets its own
        entry (its prefix and new keys and values, copied out once, with HEADROOM)."""
        if self._alone(rows):
            return
        model = rows[0][0][0].model
        net = model.model
        reuses = [reuse if entry is not None else 0 for _, entry, reuse in rows]
        news = [len(requests[0].ids) - r for (requests, _, _), r in zip(rows, reuses, strict=True)]
        prefix, width = max(reuses), max(news)
        count = len(rows)
        layers, heads, dim, dtype = _kv_shape(net, None)
        storage = torch.zeros(layers, 2, count, heads, prefix + width, dim, dtype=dtype)
        mask = torch.zeros(count, prefix + width, dtype=torch.long)
        input_ids = torch.zeros(count, width, dtype=torch.long)
        positions = torch.zeros(count, width, dtype=torch.long)
        for row, ((requests, entry, _), r, n) in enumerate(zip(rows, reuses, news, strict=True)):
            ids = requests[0].ids
            if entry is not None and r:
                storage[:, :, row, :, prefix - r : prefix] = entry.kv[:, :, :, :r]
                mask[row, prefix - r : prefix] = 1
            mask[row, prefix + width - n :] = 1
            input_ids[row, width - n :] = torch.tensor(ids[r:])
            positions[row, width - n :] = torch.arange(r, r + n)
        out = self._batched_forward(net, input_ids, mask, positions, storage, prefix)
        self.stats.prefill_tokens += sum(news)
        prefix_cache = self._cache_for(model)
        for row, ((requests, _, _), r, n) in enumerate(zip(rows, reuses, news, strict=True)):
            ids = requests[0].ids
            if self.reuse_kv:
                kv = torch.zeros(layers, 2, heads, len(ids) + HEADROOM, dim, dtype=dtype)
                kv[:, :, :, :r] = storage[:, :, row, :, prefix - r : prefix]
                kv[:, :, :, r : r + n] = storage[:, :, row, :, prefix + width - n :]
                prefix_cache.put(KVEntry(ids, kv))
            self._finish(requests, out.logits[row, -1, : model.vocabulary_size].float().clone())

    def _batched_step(self, rows: list[Row]) -> None:
        """One forward pass for several one-token steps of one model: each row's cached
        prefix is copied once into a left-padded batch with room for the new token (the
        only full copy), and each row's new keys and values are then written into its own
        entry in place where it owns the entry's end, else into a new entry."""
        if self._alone(rows):
            return
        model = rows[0][0][0].model
        net = model.model
        lengths = [reuse for _, _, reuse in rows]
        longest = max(lengths)
        count = len(rows)
        layers, heads, dim, dtype = _kv_shape(net, rows[0][1])
        storage = torch.empty(layers, 2, count, heads, longest + 1, dim, dtype=dtype)
        for row, (_, entry, reuse) in enumerate(rows):
            pad = longest - reuse
            storage[:, :, row, :, :pad] = 0  # masked out; zeros keep the arithmetic finite
            storage[:, :, row, :, pad:longest] = entry.kv[:, :, :, :reuse]
        mask = torch.zeros(count, longest + 1, dtype=torch.long)
        for row, reuse in enumerate(lengths):
            mask[row, longest - reuse :] = 1
        input_ids = torch.tensor([[requests[0].ids[-1]] for requests, _, _ in rows])
        positions = torch.tensor([[reuse] for reuse in lengths])
        out = self._batched_forward(net, input_ids, mask, positions, storage, longest)
        prefix_cache = self._cache_for(model)
        extended: set[int] = set()
        for row, (requests, entry, reuse) in enumerate(rows):
            ids = requests[0].ids
            new_position = storage[:, :, row, :, longest]  # [layers, 2, heads, dim]
            if reuse == len(entry.ids) and reuse < entry.capacity and id(entry) not in extended:
                # the row continues exactly where the entry ends: grow it in place
                extended.add(id(entry))
                entry.kv[:, :, :, reuse] = new_position
                prefix_cache.extend(entry, ids)
            else:
                # a branch (undo, a shared prefix) or a full entry: a new one with room
                kv = torch.zeros(layers, 2, heads, reuse + 1 + HEADROOM, dim, dtype=dtype)
                kv[:, :, :, :reuse] = entry.kv[:, :, :, :reuse]
                kv[:, :, :, reuse] = new_position
                prefix_cache.put(KVEntry(ids, kv))
            self._finish(requests, out.logits[row, -1, : model.vocabulary_size].float().clone())


def _kv_shape(net: Any, entry: KVEntry | None) -> tuple[int, int, int, torch.dtype]:
    """(layers, key-value heads, head dim, dtype) of the model's KV cache."""
    if entry is not None:
        layers, _, heads, _, dim = entry.kv.shape
        return int(layers), int(heads), int(dim), entry.kv.dtype
    config = net.config.get_text_config() if hasattr(net.config, "get_text_config") else net.config
    heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    dtype = next(net.parameters()).dtype
    return int(config.num_hidden_layers), int(heads), int(dim), dtype


def _cache_kwarg(net: Any, cache: Any) -> dict[str, Any]:
    """transformers 5.24 renamed the forward's ``past_key_values`` to ``cache`` (the old
    name warns); pass whichever this version's model takes."""
    names = _forward_parameters(type(net))
    return {"cache": cache} if "cache" in names else {"past_key_values": cache}


_FORWARD_PARAMETERS: dict[Any, frozenset[str]] = {}


def _forward_parameters(cls: Any) -> frozenset[str]:
    if cls not in _FORWARD_PARAMETERS:
        _FORWARD_PARAMETERS[cls] = frozenset(inspect.signature(cls.forward).parameters)
    return _FORWARD_PARAMETERS[cls]


def _sliding_window(model: Any) -> int | None:
    config = model.model.config
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None) or ()
    if window and (not layer_types or "sliding_attention" in layer_types):
        return int(window)
    return None
