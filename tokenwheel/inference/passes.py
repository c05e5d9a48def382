"""The forward passes that serve the model thread's requests, on top of cached KV
prefixes: a prefill runs a sequence's new tokens after the cached prefix it shares with
a stored sequence, and a batched pass runs several rows at once with left padding, an
attention mask and explicit position ids (GPT-2 has learned absolute positions).

Every pass returns the logits a full recompute on the same ids gives (the tests hold it
to max |dp| <= 1e-4 in float32).
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import torch

from .kv import HEADROOM, KVEntry, PrefixCache, cache_kwarg, in_place_cache, kv_shape
from .model import LoadedModel


@dataclass
class LogitsRequest:
    """One caller's request; the future holds the logits once its pass is done."""

    model: LoadedModel
    ids: tuple[int, ...]
    future: Future[torch.Tensor] = field(default_factory=Future)


@dataclass
class BatchRow:
    """Identical requests served by one row of a pass, starting from the first ``reuse``
    positions of ``entry`` (None: from scratch)."""

    requests: list[LogitsRequest]
    entry: KVEntry | None
    reuse: int

    @property
    def model(self) -> LoadedModel:
        return self.requests[0].model

    @property
    def ids(self) -> tuple[int, ...]:
        return self.requests[0].ids

    @property
    def cached(self) -> KVEntry:
        """The entry a one-token step continues (a step always has one)."""
        assert self.entry is not None
        return self.entry


@dataclass
class EngineStats:
    forward_passes: int = 0
    batched_passes: int = 0
    batched_rows: int = 0
    prefill_tokens: int = 0
    recomputes: int = 0
    prefetches: int = 0  # rows taken into prefetch passes
    prefetches_dropped: int = 0  # replaced by a newer one of their session, or the oldest
    prefetches_joined: int = 0  # a student's request took a prefetch's row (or its answer)


class ForwardPasses:
    """Runs passes for :class:`~tokenwheel.inference.batching.Batcher`, keeping each
    model's KV entries in ``caches`` (shared with the engine, which drops a model's
    entries) and counting its work in ``stats``."""

    def __init__(
        self,
        *,
        kv_cache_bytes: int,
        reuse_kv: bool,
        caches: dict[str, PrefixCache],
        stats: EngineStats,
    ) -> None:
        self.kv_cache_bytes = kv_cache_bytes
        self.reuse_kv = reuse_kv
        self.caches = caches
        self.stats = stats

    def cache_for(self, model: LoadedModel) -> PrefixCache:
        key = model.spec.id
        if key not in self.caches:
            self.caches[key] = PrefixCache(self.kv_cache_bytes)
        return self.caches[key]

    @staticmethod
    def finish(requests: list[LogitsRequest], logits: torch.Tensor) -> None:
        for request in requests:
            request.future.set_result(logits)

    def full(self, model: LoadedModel, ids: tuple[int, ...], store: bool) -> torch.Tensor:
        self.stats.recomputes += 1
        return self._prefill(model, ids, None, 0, store=store)

    def _prefill(
        self,
        model: LoadedModel,
        ids: tuple[int, ...],
        entry: KVEntry | None,
        reuse: int,
        store: bool = True,
    ) -> torch.Tensor:
        """Run ``ids[reuse:]`` on top of the first ``reuse`` cached positions; the keys and
        values land in storage with HEADROOM to spare, which becomes the new entry."""
        net = model.model
        layers, heads, dim, dtype = kv_shape(net, entry)
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
            **cache_kwarg(net, in_place_cache(net, storage, reuse)),
            use_cache=True,
            logits_to_keep=1,
        )
        self.stats.forward_passes += 1
        self.stats.prefill_tokens += len(ids) - reuse
        if store and self.reuse_kv:
            self.cache_for(model).put(KVEntry(ids, storage[:, :, 0]))
        return out.logits[0, -1, : model.vocabulary_size].float().clone()

    def _alone(self, rows: list[BatchRow]) -> bool:
        """A batch of one is a plain prefill (no padding): run it and say so."""
        if len(rows) != 1:
            return False
        row = rows[0]
        self.finish(row.requests, self._prefill(row.model, row.ids, row.entry, row.reuse))
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
            **cache_kwarg(net, in_place_cache(net, storage, filled)),
            use_cache=True,
            logits_to_keep=1,
        )
        self.stats.forward_passes += 1
        self.stats.batched_passes += 1
        self.stats.batched_rows += int(input_ids.shape[0])
        return out

    def batched_prefill(self, rows: list[BatchRow]) -> None:
        """Several prefills of one model in one forward pass (a class that sets its
        prompts at once). Row ``i`` has ``r`` cached positions and ``n`` new tokens; the
        batch holds each cached prefix right-aligned before position ``P`` and each row's
        new tokens right-aligned at the end, the gaps masked out, so every row's last
        token (whose logits we keep) is at the same place. Each row then gets its own
        entry (its prefix and new keys and values, copied out once, with HEADROOM)."""
        if self._alone(rows):
            return
        model = rows[0].model
        net = model.model
        reuses = [row.reuse if row.entry is not None else 0 for row in rows]
        news = [len(row.ids) - r for row, r in zip(rows, reuses, strict=True)]
        prefix, width = max(reuses), max(news)
        count = len(rows)
        layers, heads, dim, dtype = kv_shape(net, None)
        storage = torch.zeros(layers, 2, count, heads, prefix + width, dim, dtype=dtype)
        mask = torch.zeros(count, prefix + width, dtype=torch.long)
        input_ids = torch.zeros(count, width, dtype=torch.long)
        positions = torch.zeros(count, width, dtype=torch.long)
        for i, (row, r, n) in enumerate(zip(rows, reuses, news, strict=True)):
            if row.entry is not None and r:
                storage[:, :, i, :, prefix - r : prefix] = row.entry.kv[:, :, :, :r]
                mask[i, prefix - r : prefix] = 1
            mask[i, prefix + width - n :] = 1
            input_ids[i, width - n :] = torch.tensor(row.ids[r:])
            positions[i, width - n :] = torch.arange(r, r + n)
        out = self._batched_forward(net, input_ids, mask, positions, storage, prefix)
        self.stats.prefill_tokens += sum(news)
        prefix_cache = self.cache_for(model)
        for i, (row, r, n) in enumerate(zip(rows, reuses, news, strict=True)):
            if self.reuse_kv:
                kv = torch.zeros(layers, 2, heads, len(row.ids) + HEADROOM, dim, dtype=dtype)
                kv[:, :, :, :r] = storage[:, :, i, :, prefix - r : prefix]
                kv[:, :, :, r : r + n] = storage[:, :, i, :, prefix + width - n :]
                prefix_cache.put(KVEntry(row.ids, kv))
            self.finish(row.requests, out.logits[i, -1, : model.vocabulary_size].float().clone())

    def batched_step(self, rows: list[BatchRow]) -> None:
        """One forward pass for several one-token steps of one model: each row's cached
        prefix is copied once into a left-padded batch with room for the new token (the
        only full copy), and each row's new keys and values are then written into its own
        entry in place where it owns the entry's end, else into a new entry."""
        if self._alone(rows):
            return
        model = rows[0].model
        net = model.model
        lengths = [row.reuse for row in rows]
        longest = max(lengths)
        count = len(rows)
        layers, heads, dim, dtype = kv_shape(net, rows[0].cached)
        storage = torch.empty(layers, 2, count, heads, longest + 1, dim, dtype=dtype)
        for i, row in enumerate(rows):
            pad = longest - row.reuse
            storage[:, :, i, :, :pad] = 0  # masked out; zeros keep the arithmetic finite
            storage[:, :, i, :, pad:longest] = row.cached.kv[:, :, :, : row.reuse]
        mask = torch.zeros(count, longest + 1, dtype=torch.long)
        for i, reuse in enumerate(lengths):
            mask[i, longest - reuse :] = 1
        input_ids = torch.tensor([[row.ids[-1]] for row in rows])
        positions = torch.tensor([[reuse] for reuse in lengths])
        out = self._batched_forward(net, input_ids, mask, positions, storage, longest)
        prefix_cache = self.cache_for(model)
        extended: set[int] = set()
        for i, row in enumerate(rows):
            entry, reuse = row.cached, row.reuse
            new_position = storage[:, :, i, :, longest]  # [layers, 2, heads, dim]
            if reuse == len(entry.ids) and reuse < entry.capacity and id(entry) not in extended:
                # the row continues exactly where the entry ends: grow it in place
                extended.add(id(entry))
                entry.kv[:, :, :, reuse] = new_position
                prefix_cache.extend(entry, row.ids)
            else:
                # a branch (undo, a shared prefix) or a full entry: a new one with room
                kv = torch.zeros(layers, 2, heads, reuse + 1 + HEADROOM, dim, dtype=dtype)
                kv[:, :, :, :reuse] = entry.kv[:, :, :, :reuse]
                kv[:, :, :, reuse] = new_position
                prefix_cache.put(KVEntry(row.ids, kv))
            self.finish(row.requests, out.logits[i, -1, : model.vocabulary_size].float().clone())
