"""One GGUF file in llama.cpp (``llama-cpp-python``'s low-level bindings), as the
quantized engine's model thread drives it.

The context keeps up to ``slots`` sequences, each in a KV stream of its own (``SLOT_CELLS``
positions). A request reuses the slot that shares the longest prefix with its ids: it grows
that slot in place when the slot's ids are a prefix of its own (an append), else it takes
a free or least recently used slot, ``seq_cp`` copies the source's sequence into it
(across KV streams llama.cpp copies whole sequences) and ``seq_rm`` cuts it back to the
shared prefix (an undo, a classmate on the same prompt); only the tokens after the
prefix are decoded. The
rows of a round go through one ``llama_decode`` (one sequence id per row; several
decodes only when the new tokens exceed ``n_batch``). Memory is bounded: slots times
``SLOT_CELLS`` positions, allocated at load; a slot is reused least recently used first.

Sliding-window models (Gemma 3) keep every position (``swa_full``), or a prefix could
not be reused at an arbitrary point.
"""

from __future__ import annotations

import ctypes
import importlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

LLAMA_PACKAGE = "llama_cpp"
DEFAULT_SLOTS = 32  # a class of 30 steps in one decode
# KV positions of one slot: a session's whole text (512 prompt + 512 generated tokens by
# default); the served window is capped to it. In float16, allocated at load: SmolLM2
# 23 KB per position (32 x 1024 positions: 754 MB), Gemma 3 18 KB (604 MB).
SLOT_CELLS = 1024
DEFAULT_BATCH = 512  # tokens per llama_decode


class LlamaError(RuntimeError):
    """llama.cpp refused a load or a decode; the message says which and why."""


_QUIET: list[Any] = []  # the log callback, kept alive as long as llama.cpp may call it


def bindings() -> Any:
    """``llama_cpp``, imported on first use (it is an optional install), with llama.cpp's
    own log (hundreds of lines per load on stderr) silenced: a failure raises instead."""
    lib = importlib.import_module(LLAMA_PACKAGE)
    if not _QUIET:
        _QUIET.append(lib.llama_log_callback(lambda level, text, data: None))
        lib.llama_log_set(_QUIET[0], ctypes.c_void_p())
    return lib


@dataclass
class Slot:
    seq: int
    ids: tuple[int, ...] = ()
    used: int = 0  # the round that last used it (larger: more recent)


@dataclass
class Row:
    """One request of a round: decode ``ids[reuse:]`` into ``slot``, after giving it the
    first ``reuse`` positions of ``source`` (None: it holds them already)."""

    ids: tuple[int, ...]
    slot: Slot
    reuse: int
    source: Slot | None = None
    logits: np.ndarray | None = field(default=None, repr=False)


@dataclass
class LlamaStats:
    decodes: int = 0  # llama_decode calls
    rounds: int = 0
    rows: int = 0  # requests served
    tokens_evaluated: int = 0  # tokens through the network


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class LlamaContext:
    """A loaded GGUF file, its context and its slots. Used by one thread only."""

    def __init__(
        self,
        path: Path,
        *,
        threads: int,
        slots: int = DEFAULT_SLOTS,
        cells: int = SLOT_CELLS,
        batch: int = DEFAULT_BATCH,
        reuse: bool = True,
    ) -> None:
        self.lib = lib = bindings()
        lib.llama_backend_init()
        model_params = lib.llama_model_default_params()
        model_params.use_mmap = True
        self.model = lib.llama_model_load_from_file(str(path).encode(), model_params)
        if not self.model:
            raise LlamaError(f"llama.cpp could not load {path}")
        params = lib.llama_context_default_params()
        params.n_ctx = cells * slots
        params.n_batch = params.n_ubatch = batch
        params.n_seq_max = slots
        params.n_threads = params.n_threads_batch = threads
        params.swa_full = True
        # Flash attention (llama.cpp's "auto" turns it on for the CPU) rounds queries to
        # float16 and made a row's probabilities depend on the other rows of its batch:
        # measured up to 3.9e-2 apart on SmolLM2; without it (and with a KV stream per
        # slot, below), short batched rows equal the same rows alone to the last bit.
        # llama.cpp stays path-dependent past that: docs/performance.md.
        params.flash_attn_type = lib.LLAMA_FLASH_ATTN_TYPE_DISABLED
        # One KV stream per slot: a sequence's positions sit in the same cells however
        # the other slots are filled. In one shared (unified) stream they did not, and
        # since llama.cpp rounds activations to 8 bits before each quantized matrix
        # product, the different summation order moved probabilities by up to 1.6e-2
        # (short batched rows then differed from the same rows alone by 1.2e-2; with a
        # stream each they are equal to the last bit). The price: memory for every slot.
        params.kv_unified = False
        params.no_perf = True
        self.ctx = lib.llama_init_from_model(self.model, params)
        if not self.ctx:
            lib.llama_model_free(self.model)
            raise LlamaError(f"llama.cpp could not make a context for {path}")
        self.memory = lib.llama_get_memory(self.ctx)
        vocab = lib.llama_model_get_vocab(self.model)
        self.n_vocab = int(lib.llama_vocab_n_tokens(vocab))
        self.n_ctx_train = int(lib.llama_model_n_ctx_train(self.model))
        self.file_bytes = int(lib.llama_model_size(self.model))
        self.cells = cells  # per slot
        self.batch_size = batch
        self.reuse = reuse
        self._batch = lib.llama_batch_init(batch, 0, 1)
        self.slots = [Slot(seq) for seq in range(slots)]
        self._round = itertools.count(1)
        self.stats = LlamaStats()

    def close(self) -> None:
        if self.ctx:
            self.lib.llama_batch_free(self._batch)
            self.lib.llama_free(self.ctx)
            self.lib.llama_model_free(self.model)
            self.ctx = self.model = None

    # ------------------------------------------------------------ one round

    def next_logits(self, requests: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
        """Next-token logits (float32, ``n_vocab``) after each of ``requests``, as many
        as fit in rounds of at most ``slots`` rows, each round one decode where it fits."""
        results: dict[tuple[int, ...], np.ndarray] = {}
        pending = list(dict.fromkeys(requests))  # identical requests share a row
        while pending:
            rows, pending = self._plan(pending)
            self._run(rows)
            for row in rows:
                assert row.logits is not None
                results[row.ids] = row.logits
        return [results[ids] for ids in requests]

    def all_logits(self, ids: tuple[int, ...]) -> np.ndarray:
        """Logits after every position of ``ids`` (rows ``0..len-1``), for scoring a
        text: decoded from scratch into the least recently used slot, which keeps it."""
        slot = min(self.slots, key=lambda s: s.used)
        row = Row(ids, slot, 0)
        self._run([row], every=True)
        assert row.logits is not None
        return row.logits

    def _plan(self, pending: list[tuple[int, ...]]) -> tuple[list[Row], list[tuple[int, ...]]]:
        """Rows for this round; requests left for the next (no slot free of this
        round's work). Copies read slots as they stand before the round."""
        round_number = next(self._round)
        rows: list[Row] = []
        busy: set[int] = set()  # slots written or read this round
        wiped: set[int] = set()  # slots emptied this round, before the copies
        later = []
        for ids in pending:
            best, common = None, 0
            if self.reuse:
                for slot in self.slots:
                    n = common_prefix(slot.ids, ids)
                    if n > common and slot.seq not in wiped:
                        best, common = slot, n
            reuse = min(common, len(ids) - 1)
            if best is not None and best.seq not in busy and best.ids == ids[: len(best.ids)]:
                rows.append(Row(ids, best, reuse))  # an append: grow it in place
                busy.add(best.seq)
                best.used = round_number
                continue
            free = [s for s in self.slots if s.seq not in busy and s is not best]
            if not free:
                if best is None or best.seq in busy:
                    later.append(ids)
                    continue
                target, source = best, None  # the last slot: cut it back in place
            else:
                target = min(free, key=lambda s: (s.used, len(s.ids)))
                source = best
            rows.append(Row(ids, target, reuse if best is not None else 0, source))
            if source is not None or best is None:
                wiped.add(target.seq)
            for taken in (target, source):
                if taken is not None:
                    busy.add(taken.seq)
                    taken.used = round_number
        return rows, later

    def _run(self, rows: list[Row], every: bool = False) -> None:
        lib, memory = self.lib, self.memory
        for row in rows:  # copies first: they read the slots as they stand
            if row.source is not None or row.reuse == 0:
                lib.llama_memory_seq_rm(memory, row.slot.seq, -1, -1)
                if row.source is not None and row.reuse:
                    # across KV streams llama.cpp copies whole sequences only; the
                    # positions past the shared prefix are cut below
                    lib.llama_memory_seq_cp(memory, row.source.seq, row.slot.seq, -1, -1)
        for row in rows:
            in_place = row.reuse > 0
            if in_place and not lib.llama_memory_seq_rm(memory, row.slot.seq, row.reuse, -1):
                lib.llama_memory_seq_rm(memory, row.slot.seq, -1, -1)  # cannot cut: start over
                row.reuse = 0
            row.slot.ids = row.ids[: row.reuse]
        tokens = [
            (row, position, position == len(row.ids) - 1 or every)
            for row in rows
            for position in range(row.reuse, len(row.ids))
        ]
        try:
            for start in range(0, len(tokens), self.batch_size):
                self._decode(tokens[start : start + self.batch_size], every)
        except BaseException:
            for row in rows:  # what a failed decode left in these slots is unknown
                lib.llama_memory_seq_rm(memory, row.slot.seq, -1, -1)
                row.slot.ids = ()
            raise
        for row in rows:
            row.slot.ids = row.ids
        self.stats.rounds += 1
        self.stats.rows += len(rows)

    def _decode(self, tokens: list[tuple[Row, int, bool]], every: bool) -> None:
        batch = self._batch
        for i, (row, position, wanted) in enumerate(tokens):
            batch.token[i] = row.ids[position]
            batch.pos[i] = position
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = row.slot.seq
            batch.logits[i] = wanted
        batch.n_tokens = len(tokens)
        status = self.lib.llama_decode(self.ctx, batch)
        if status != 0:  # 1: no room (a text past SLOT_CELLS positions; the window is capped)
            raise LlamaError(f"llama_decode failed ({status}) on {len(tokens)} tokens")
        self.stats.decodes += 1
        self.stats.tokens_evaluated += len(tokens)
        for i, (row, position, wanted) in enumerate(tokens):
            if not wanted:
                continue
            pointer = self.lib.llama_get_logits_ith(self.ctx, i)
            values = np.ctypeslib.as_array(
                ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape=(self.n_vocab,)
            ).copy()
            if every:
                if row.logits is None:
                    row.logits = np.empty((len(row.ids), self.n_vocab), dtype=np.float32)
                row.logits[position] = values
            else:
                row.logits = values

    def forget(self) -> None:
        """Empty every slot (the prefix cache starts over)."""
        self.lib.llama_memory_clear(self.memory, True)
        for slot in self.slots:
            slot.ids = ()
