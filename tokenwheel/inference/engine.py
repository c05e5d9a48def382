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
* Gemma 3's sliding-window layers keep only the last 512 positions, so a cache past the
  window cannot be cut back to a prefix: past the window we recompute from the ids.

Every path returns the logits a full recompute on the same ids gives (the tests hold it to
max |dp| <= 1e-4 in float32).
"""

from __future__ import annotations

import inspect
import logging
import os
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import torch

from .types import OverloadedError

log = logging.getLogger(__name__)

Layers = tuple[tuple[torch.Tensor, torch.Tensor], ...]  # per layer (keys, values): [H, L, D]


@dataclass
class KVEntry:
    ids: tuple[int, ...]
    layers: Layers
    nbytes: int


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
    newly stored one is dropped: one entry per live branch, not one per step."""

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

    def put(self, ids: tuple[int, ...], layers: Layers) -> None:
        nbytes = sum(k.numel() * k.element_size() * 2 for k, _ in layers)
        if nbytes > self.max_bytes or any(k.shape[1] != len(ids) for k, _ in layers):
            return  # too big, or a layer that kept fewer positions (sliding window)
        for key in [k for k in self.entries if len(k) <= len(ids) and ids[: len(k)] == k]:
            self.bytes -= self.entries.pop(key).nbytes
        self.entries[ids] = KVEntry(ids, layers, nbytes)
        self.bytes += nbytes
        while self.bytes > self.max_bytes and self.entries:
            _, old = self.entries.popitem(last=False)
            self.bytes -= old.nbytes

    def clear(self) -> None:
        self.entries.clear()
        self.bytes = 0


@dataclass
class _Request:
    model: Any  # LoadedModel
    ids: tuple[int, ...]
    future: Future[torch.Tensor] = field(default_factory=Future)


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
        max_batch: int = 16,
        batch_wait: float = 0.003,
        max_queue: int = 256,
        reuse_kv: bool = True,
    ) -> None:
        self.threads = threads or max(1, os.cpu_count() or 1)
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
        self._ensure_thread()
        request = _Request(model, tuple(ids))
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            raise OverloadedError(
                "The model is busy with other requests; try again in a moment."
            ) from None
        return request.future.result()

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
        steps: dict[str, list[tuple[list[_Request], KVEntry, int]]] = {}
        for (_, ids), requests in unique.items():
            model = requests[0].model
            if not getattr(model, "supports_kv", False):  # e.g. a test fake: logits only
                self.stats.forward_passes += 1
                self._finish(requests, model.logits(ids))
                continue
            window = _sliding_window(model)
            if not self.reuse_kv or (window is not None and len(ids) >= window):
                self._finish(requests, self._full(model, ids, store=False))
                continue
            entry, common = self._cache_for(model).longest(ids)
            usable = min(common, len(ids) - 1)
            if entry is not None and usable == len(ids) - 1:
                steps.setdefault(model.spec.id, []).append((requests, entry, usable))
            else:
                self._finish(requests, self._prefill(model, ids, entry, usable))
        for rows in steps.values():
            for group in self._groups(rows):
                self._batched_step(group)

    def _groups(
        self, rows: list[tuple[list[_Request], KVEntry, int]]
    ) -> list[list[tuple[list[_Request], KVEntry, int]]]:
        """Batches of at most ``max_batch`` rows whose lengths are within a factor of two:
        little padding, and short sequences (whose first-token attention is the most
        sensitive to rounding) are not padded out to long ones."""
        groups: list[list[tuple[list[_Request], KVEntry, int]]] = []
        for row in sorted(rows, key=lambda r: r[2]):
            current = groups[-1] if groups else None
            if current and len(current) < self.max_batch and row[2] <= 2 * current[0][2]:
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
        """Run ``ids[reuse:]`` on top of the first ``reuse`` cached positions."""
        from transformers import DynamicCache

        net = model.model
        cache = DynamicCache(config=net.config)
        if entry is not None and reuse > 0:
            for index, (k, v) in enumerate(entry.layers):
                cache.update(k[None, :, :reuse], v[None, :, :reuse], index)
        else:
            reuse = 0
        new = torch.tensor([ids[reuse:]], dtype=torch.long)
        positions = torch.arange(reuse, len(ids), dtype=torch.long)[None]
        out = net(
            input_ids=new,
            position_ids=positions,
            **_cache_kwarg(net, cache),
            use_cache=True,
            logits_to_keep=1,
        )
        self.stats.forward_passes += 1
        self.stats.prefill_tokens += len(ids) - reuse
        if store and self.reuse_kv:
            layers = tuple((k[0], v[0]) for k, v in _kv(cache))
            self._cache_for(model).put(ids, layers)
        return out.logits[0, -1, : model.vocabulary_size].float().clone()

    def _batched_step(self, rows: list[tuple[list[_Request], KVEntry, int]]) -> None:
        """One forward pass for several one-token steps of one model."""
        from transformers import DynamicCache

        if len(rows) == 1:
            requests, entry, reuse = rows[0]
            self._finish(requests, self._prefill(requests[0].model, requests[0].ids, entry, reuse))
            return
        model = rows[0][0][0].model
        net = model.model
        lengths = [reuse for _, _, reuse in rows]
        longest = max(lengths)
        count = len(rows)
        cache = DynamicCache(config=net.config)
        for index in range(len(rows[0][1].layers)):
            k0, _ = rows[0][1].layers[index]
            heads, _, dim = k0.shape
            keys = k0.new_zeros(count, heads, longest, dim)
            values = k0.new_zeros(count, heads, longest, dim)
            for row, (_, entry, reuse) in enumerate(rows):
                k, v = entry.layers[index]
                keys[row, :, longest - reuse :] = k[:, :reuse]
                values[row, :, longest - reuse :] = v[:, :reuse]
            cache.update(keys, values, index)
        mask = torch.zeros(count, longest + 1, dtype=torch.long)
        for row, reuse in enumerate(lengths):
            mask[row, longest - reuse :] = 1
        input_ids = torch.tensor([[requests[0].ids[-1]] for requests, _, _ in rows])
        positions = torch.tensor([[reuse] for reuse in lengths])
        out = net(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            **_cache_kwarg(net, cache),
            use_cache=True,
            logits_to_keep=1,
        )
        self.stats.forward_passes += 1
        self.stats.batched_passes += 1
        self.stats.batched_rows += count
        prefix_cache = self._cache_for(model)
        for row, (requests, _, reuse) in enumerate(rows):
            start = longest - reuse
            layers = tuple(
                (k[row, :, start:].clone(), v[row, :, start:].clone()) for k, v in _kv(cache)
            )
            prefix_cache.put(requests[0].ids, layers)
            self._finish(requests, out.logits[row, -1, : model.vocabulary_size].float().clone())


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


def _kv(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer (keys, values) of a transformers ``DynamicCache``."""
    return [(layer.keys, layer.values) for layer in cache.layers]


def _sliding_window(model: Any) -> int | None:
    config = model.model.config
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None) or ()
    if window and (not layer_types or "sliding_attention" in layer_types):
        return int(window)
    return None
