"""The quantized engine's slot planning, without llama.cpp: a fake KV memory records
``seq_rm``/``seq_cp`` and the decoded tokens per sequence id, and a fake decode checks
that each token lands right after what its sequence already holds. Random classes of
students (appends, undos, shared prompts, more students than slots) must get the
logits of exactly their ids, with fewer tokens evaluated than from scratch."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from tokenwheel.inference.llama_runtime import LlamaContext, LlamaStats, Row, Slot


class FakeMemory:
    """What llama.cpp's KV cache holds, per sequence id: the tokens at positions 0..n-1."""

    def __init__(self) -> None:
        self.kv: dict[int, list[int]] = {}

    def llama_memory_seq_rm(self, memory: object, seq: int, p0: int, p1: int) -> bool:
        assert p1 == -1
        held = self.kv.setdefault(seq, [])
        del held[max(p0, 0) :]
        return True

    def llama_memory_seq_cp(self, memory: object, src: int, dst: int, p0: int, p1: int) -> None:
        assert (p0, p1) == (-1, -1)  # across KV streams: whole sequences only
        assert not self.kv.get(dst), "a copy lands in an emptied slot"
        self.kv[dst] = list(self.kv.get(src, []))


def fake_logits(ids: tuple[int, ...] | list[int]) -> np.ndarray:
    """Deterministic 'logits' that name the whole context."""
    rng = np.random.default_rng(abs(hash(tuple(ids))) % (1 << 32))
    return rng.standard_normal(8).astype(np.float32)


class FakeContext(LlamaContext):
    def __init__(self, slots: int, batch: int = 512, reuse: bool = True) -> None:
        self.lib = self.memory_model = FakeMemory()
        self.memory = None
        self.batch_size = batch
        self.reuse = reuse
        self.n_vocab = 8
        self.slots = [Slot(seq) for seq in range(slots)]
        self._round = itertools.count(1)
        self.stats = LlamaStats()

    def _decode(self, tokens: list[tuple[Row, int, bool]], every: bool) -> None:
        for row, position, wanted in tokens:
            held = self.memory_model.kv.setdefault(row.slot.seq, [])
            assert position == len(held), "a token goes right after what its sequence holds"
            held.append(row.ids[position])
            if wanted:
                row.logits = fake_logits(held)
        self.stats.decodes += 1
        self.stats.tokens_evaluated += len(tokens)


@pytest.mark.parametrize("seed", range(6))
def test_random_classes_get_the_logits_of_their_own_ids(seed: int) -> None:
    rng = random.Random(seed)
    context = FakeContext(slots=rng.choice([2, 4, 8]), batch=rng.choice([4, 16, 512]))
    prompts = [tuple(rng.randrange(50) for _ in range(rng.randrange(2, 9))) for _ in range(3)]
    students = [list(rng.choice(prompts)) for _ in range(rng.randrange(1, 12))]
    scratch = 0
    for _ in range(25):
        asking = rng.sample(range(len(students)), rng.randrange(1, len(students) + 1))
        for i in asking:
            move = rng.random()
            if move < 0.6:
                students[i].append(rng.randrange(50))
            elif move < 0.8 and len(students[i]) > 2:
                students[i].pop()  # undo
            elif move < 0.9:
                students[i] = list(rng.choice(prompts))  # a new prompt
        requests = [tuple(students[i]) for i in asking]
        results = context.next_logits(requests)
        scratch += sum(len(ids) for ids in dict.fromkeys(requests))
        for ids, logits in zip(requests, results, strict=True):
            np.testing.assert_array_equal(logits, fake_logits(ids))
        for slot in context.slots:  # the books match the fake KV cache
            assert list(slot.ids) == context.memory_model.kv.get(slot.seq, [])
    assert context.stats.tokens_evaluated < scratch


def test_one_decode_serves_many_students_and_a_step_evaluates_one_token() -> None:
    context = FakeContext(slots=8)
    rows = [(1, 2, 3, 10 + i) for i in range(5)]
    context.next_logits(rows)
    assert context.stats.decodes == 1
    before = context.stats.tokens_evaluated
    context.next_logits([(*r, 7) for r in rows])
    assert context.stats.decodes == 2 and context.stats.tokens_evaluated == before + 5


def test_more_requests_than_slots_take_several_rounds() -> None:
    context = FakeContext(slots=2)
    rows = [(i, i + 1) for i in range(5)]
    results = context.next_logits(rows)
    assert context.stats.rounds == 3
    for ids, logits in zip(rows, results, strict=True):
        np.testing.assert_array_equal(logits, fake_logits(ids))
