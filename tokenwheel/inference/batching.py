"""The model thread's scheduler: which requests of a batch run together.

* A request reuses the cached KV sequence that shares the longest prefix with its ids
  (:class:`~tokenwheel.inference.kv.PrefixCache`), so a step after an append runs one
  token, students who share a prompt share its prefill, and an undo returns to a prefix
  of a cached sequence.
* Requests that need exactly one new token are batched into one forward pass; prefills
  of one model share passes too, where the padding stays exact. The passes themselves
  are :class:`~tokenwheel.inference.passes.ForwardPasses`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .kv import HEADROOM, sliding_window
from .passes import BatchRow, ForwardPasses, LogitsRequest

SHORT_CONTEXT = 16


class Batcher:
    """Serves batches on the model thread: sorts requests into one-token steps and
    prefills, groups them into passes and has ``passes`` run them."""

    def __init__(
        self,
        *,
        threads: int,
        prefill_threads: int,
        max_batch: int,
        reuse_kv: bool,
        passes: ForwardPasses,
    ) -> None:
        self.threads = threads
        self.prefill_threads = prefill_threads
        self.max_batch = max_batch
        self.reuse_kv = reuse_kv
        self.passes = passes

    def serve(self, batch: list[LogitsRequest]) -> None:
        # identical requests share one computation
        unique: dict[tuple[str, tuple[int, ...]], list[LogitsRequest]] = {}
        for request in batch:
            unique.setdefault((request.model.spec.id, request.ids), []).append(request)
        steps: dict[str, list[BatchRow]] = {}
        prefills: dict[str, list[BatchRow]] = {}
        for (_, ids), requests in unique.items():
            model = requests[0].model
            if not self.reuse_kv:
                self.passes.finish(requests, self.passes.full(model, ids, store=False))
                continue
            entry, common = self.passes.cache_for(model).longest(ids)
            usable = min(common, len(ids) - 1)
            row = BatchRow(requests, entry, usable)
            if entry is not None and usable == len(ids) - 1:
                steps.setdefault(model.spec.id, []).append(row)
            else:
                prefills.setdefault(model.spec.id, []).append(row)
        if prefills:
            torch.set_num_threads(self.prefill_threads)
            try:
                for rows in prefills.values():
                    for group in self._prefill_groups(rows):
                        self.passes.batched_prefill(group)
            finally:
                torch.set_num_threads(self.threads)
        for rows in steps.values():
            for group in self._groups(rows):
                self.passes.batched_step(group)

    def _groups(
        self, rows: list[BatchRow], key: Callable[[BatchRow], int] = lambda r: r.reuse
    ) -> list[list[BatchRow]]:
        """Batches of at most ``max_batch`` rows, shortest first, each padded to its
        longest row. A row joins a batch while its length is within twice the batch's
        shortest, plus HEADROOM tokens once the shortest has SHORT_CONTEXT tokens: very
        short contexts (a few tokens, whose attention is the most sensitive to rounding:
        padding one token out to eight moved a probability by 1.2e-4) stay among their
        own, and a class's contexts, which spread as students write, still share passes."""
        groups: list[list[BatchRow]] = []
        for row in sorted(rows, key=key):
            current = groups[-1] if groups else None
            shortest = key(current[0]) if current else 0
            slack = HEADROOM if shortest >= SHORT_CONTEXT else 0
            if current and len(current) < self.max_batch and key(row) <= 2 * shortest + slack:
                current.append(row)
            else:
                groups.append([row])
        return groups

    def _prefill_groups(self, rows: list[BatchRow]) -> list[list[BatchRow]]:
        """Prefills that can share a pass. A batched prefill leaves a masked gap between a
        row's cached prefix and its new tokens, which a sliding-window layer would count
        as distance: rows longer than the window run alone (no gap, exact)."""
        window = sliding_window(rows[0].model.model)
        alone = [[r] for r in rows if window is not None and len(r.ids) >= window]
        together = [r for r in rows if window is None or len(r.ids) < window]
        return self._groups(together, key=lambda r: len(r.ids)) + alone
