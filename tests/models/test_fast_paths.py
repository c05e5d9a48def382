"""The correctness gate: every fast path equals a full recompute on the same ids.

KV prefixes reused across appends, undos and students, batched one-token steps of
different lengths, and Gemma's sliding window: max |dp| <= 1e-4 in float32 against the
model run from scratch on the ids (no cache)."""

from __future__ import annotations

import random
import threading
import time

import pytest
import torch
from flask.testing import FlaskClient

from tests.conftest import BUNDLED, GEMMA
from tests.threads import at_once
from tokenwheel.inference.engine import InferenceEngine
from tokenwheel.inference.kv import KVEntry, PrefixCache
from tokenwheel.inference.registry import ModelRegistry
from tokenwheel.inference.types import OverloadedError

TOLERANCE = 1e-4


def max_dp(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((torch.softmax(a.double(), -1) - torch.softmax(b.double(), -1)).abs().max())


@pytest.fixture(params=[BUNDLED, GEMMA])
def model(request: pytest.FixtureRequest, registry: ModelRegistry):  # type: ignore[no-untyped-def]
    if request.param == GEMMA:
        request.getfixturevalue("gemma")
    return registry.get(request.param)


def test_random_append_undo_walk_matches_full_recompute(model) -> None:  # type: ignore[no-untyped-def]
    engine = InferenceEngine(threads=2)
    rng = random.Random(7)
    ids = model.encode_prompt("The teacher wrote on the board that")
    worst = 0.0
    try:
        for _ in range(24):
            fast = engine.logits(model, ids)
            worst = max(worst, max_dp(fast, model.logits(ids)))
            move = rng.random()
            if move < 0.6 or len(ids) < 10:
                ids = ids + [int(torch.topk(fast, 5).indices[rng.randrange(5)])]
            elif move < 0.85:
                ids = ids[:-1]  # undo
            else:
                ids = ids[: rng.randrange(5, len(ids))]  # a set-prompt to a shorter text
        assert worst <= TOLERANCE
        assert engine.stats.prefill_tokens < 24 * len(ids) / 2  # the caches were used
    finally:
        engine.shutdown()


def test_batched_steps_of_different_lengths(model) -> None:  # type: ignore[no-untyped-def]
    engine = InferenceEngine(threads=2, batch_wait=0.05)
    prompts = [
        "Hello",
        "Once upon a time in a land",
        "The cat",
        "One two three four five six seven",
        "A",
        "Water boils at",
    ]
    sequences = [model.encode_prompt(p) for p in prompts]
    try:
        for ids in sequences:  # prefill each, so the next step is one token
            engine.logits(model, ids)
        steps = [ids + [100 + i] for i, ids in enumerate(sequences)]
        results: dict[int, torch.Tensor] = {}

        def ask(i: int) -> None:
            results[i] = engine.logits(model, steps[i])

        at_once(len(steps), ask, timeout=120)
        assert engine.stats.batched_passes >= 1 and engine.stats.batched_rows >= 2
        for i, ids in enumerate(steps):
            assert max_dp(results[i], model.logits(ids)) <= TOLERANCE, prompts[i]
    finally:
        engine.shutdown()


def test_spread_contexts_share_one_padded_pass(model) -> None:  # type: ignore[no-untyped-def]
    """A class writes at different speeds: contexts from 20 to 100 tokens take one
    batched pass (padded), and every row still equals its full recompute."""
    engine = InferenceEngine(threads=2, batch_wait=0.05, max_batch=32)
    rng = random.Random(3)
    words = [
        "the",
        "a",
        "cat",
        "dog",
        "sat",
        "ran",
        "on",
        "under",
        "moon",
        "sun",
        "river",
        "tree",
        "red",
        "big",
        "small",
    ]
    sequences = []
    for n in (20, 24, 37, 52, 66, 80, 95, 100):
        text = " ".join(rng.choice(words) for _ in range(n))
        sequences.append(model.encode_prompt(text)[:n])
    try:
        for ids in sequences:
            engine.logits(model, ids)
        steps = [ids + [300 + i] for i, ids in enumerate(sequences)]
        results: dict[int, torch.Tensor] = {}

        def ask(i: int) -> None:
            results[i] = engine.logits(model, steps[i])

        passes = engine.stats.forward_passes
        at_once(len(steps), ask, timeout=120)
        assert engine.stats.forward_passes - passes == 1  # one padded pass for all eight
        for i, ids in enumerate(steps):
            assert max_dp(results[i], model.logits(ids)) <= TOLERANCE, len(ids)
        # and each row's entry grew in place: the next step is one token again
        again = [ids + [400] for ids in steps]
        before = engine.stats.prefill_tokens
        for ids in again:
            assert max_dp(engine.logits(model, ids), model.logits(ids)) <= TOLERANCE
        assert engine.stats.prefill_tokens - before == len(again)  # one token each
    finally:
        engine.shutdown()


def test_a_class_setting_its_prompts_at_once_shares_prefill_passes(model) -> None:  # type: ignore[no-untyped-def]
    """Thirty students set prompts at the same moment: the prefills run batched (padded,
    some on top of a cached prefix of another prompt), and each equals its recompute."""
    engine = InferenceEngine(threads=2, batch_wait=0.05, max_batch=32)
    prompts = [
        "Our class is learning how a language model chooses the next word, and today",
        "Our class is learning how a language model chooses the next word, and tomorrow we",
        "Student 3 writes a story about a 3 legged",
        "Student 12 writes a story about a 12 legged dog that",
        "A",
        "The cat",
        "Once upon a time there was a small village at the edge of a very dark forest",
    ]
    sequences = [model.encode_prompt(p) for p in prompts]
    try:
        engine.logits(model, sequences[0])  # cached: the second prompt extends it
        results: dict[int, torch.Tensor] = {}

        def ask(i: int) -> None:
            results[i] = engine.logits(model, sequences[i])

        passes = engine.stats.forward_passes
        at_once(len(sequences) - 1, lambda n: ask(n + 1), timeout=120)  # all but the first
        assert engine.stats.batched_passes >= 1
        assert engine.stats.forward_passes - passes < len(sequences) - 1  # some shared a pass
        for i in range(1, len(sequences)):
            assert max_dp(results[i], model.logits(sequences[i])) <= TOLERANCE, prompts[i]
        # every prompt is cached now: the next step of each is one token
        before = engine.stats.prefill_tokens
        for ids in sequences[1:]:
            step = ids + [500]
            assert max_dp(engine.logits(model, step), model.logits(step)) <= TOLERANCE
        assert engine.stats.prefill_tokens - before == len(sequences) - 1
    finally:
        engine.shutdown()


def test_students_sharing_a_prompt_share_its_prefill(registry: ModelRegistry) -> None:
    model = registry.get(BUNDLED)
    engine = InferenceEngine(threads=2)
    prompt = model.encode_prompt("Today our class will learn how a language model picks a word")
    try:
        engine.logits(model, prompt)
        before = engine.stats.prefill_tokens
        for student in range(5):
            ids = prompt + [200 + student]
            assert max_dp(engine.logits(model, ids), model.logits(ids)) <= TOLERANCE
        assert engine.stats.prefill_tokens - before == 5  # one token each
    finally:
        engine.shutdown()


def test_gemma_past_the_sliding_window_keeps_using_its_cache(
    gemma: str, registry: ModelRegistry
) -> None:
    """Gemma 3's sliding layers see the last 512 positions. Our cache keeps every
    position and the model's sliding mask hides the old ones, so steps, undos and batched
    steps across and past the window stay one token each, and exact."""
    model = registry.get(gemma)
    engine = InferenceEngine(threads=2, batch_wait=0.05)
    text = " ".join(f"w{i}" for i in range(400))
    ids = model.encode_prompt(text)[:505]
    assert len(ids) == 505
    try:
        engine.logits(model, ids)
        before = engine.stats.prefill_tokens
        for step in range(12):  # walks from 505 to 517 tokens, across 512
            if step == 8:
                ids = ids[:-3]  # undo back across the window
            fast = engine.logits(model, ids)
            assert max_dp(fast, model.logits(ids)) <= TOLERANCE, len(ids)
            ids = ids + [int(fast.argmax())]
        assert engine.stats.recomputes == 0
        assert engine.stats.prefill_tokens - before == 12  # one token a step, undo included
        # two students far past the window step together, and a long prompt arrives with
        # a short one: the long prefill runs alone (a padded gap would shift its window)
        long_ids = model.encode_prompt(text)[:600]
        engine.logits(model, long_ids)
        rows = [ids + [7], long_ids + [7]]
        other = model.encode_prompt(" ".join(f"v{i}" for i in range(400)))
        engine.logits(model, other[:505])  # cached: the next ask adds 55 tokens to it
        short = model.encode_prompt(" ".join(f"u{i}" for i in range(60)))[:90]
        prompts = [other[:560], short]  # 55 and 90 new tokens: a gap of 35 if batched
        results: dict[int, torch.Tensor] = {}
        asks = rows + prompts

        def ask(i: int) -> None:
            results[i] = engine.logits(model, asks[i])

        at_once(len(asks), ask, timeout=300)
        for i, asked in enumerate(asks):
            assert max_dp(results[i], model.logits(asked)) <= TOLERANCE, len(asked)
        assert engine.stats.batched_passes >= 1 and engine.stats.recomputes == 0
    finally:
        engine.shutdown()


def test_prefix_cache_is_bounded_and_keeps_one_entry_per_branch() -> None:
    def entry(ids: tuple[int, ...], room: int = 10) -> KVEntry:
        return KVEntry(ids, torch.zeros(1, 2, 1, room, 4))  # 16 bytes a position

    cache = PrefixCache(max_bytes=2 * 10 * 16 * 2)  # room for two 10-position entries
    cache.put(entry((1, 2, 3)))
    cache.put(entry((1, 2, 3, 4)))
    assert list(cache.entries) == [(1, 2, 3, 4)]  # the extension replaces its prefix
    found, n = cache.longest((1, 2, 9))
    assert found is not None and n == 2
    cache.extend(found, (1, 2, 3, 4, 5))  # grown in place: one entry, new key
    assert list(cache.entries) == [(1, 2, 3, 4, 5)] and cache.bytes == found.nbytes
    cache.put(entry(tuple(range(10))))
    cache.put(entry(tuple(range(50, 60))))
    assert cache.bytes <= cache.max_bytes and (1, 2, 3, 4, 5) not in cache.entries


def test_a_full_queue_answers_503_with_retry_after(
    client: FlaskClient, registry: ModelRegistry, app
) -> None:  # type: ignore[no-untyped-def]
    from tests.api.conftest import Student

    s = Student(client)
    s.prompt("A busy classroom")
    # set-prompt prefetched this wheel: once it is served, forget it, so that asking for
    # it again below needs the (busy) model
    s.probs()
    registry.local_wheels.cache.drop_model(BUNDLED)
    registry.local_wheels.prepared_cache.drop_model(BUNDLED)
    model = registry.get(BUNDLED)
    busy, release = threading.Event(), threading.Event()

    def hold(module: object, args: object) -> None:
        """Keeps the model thread inside its forward pass until the test lets it go."""
        busy.set()
        release.wait(60)

    hook = model.model.register_forward_pre_hook(hold)
    saved = registry.engine
    engine = registry.engine = registry.local_wheels.engine = InferenceEngine(
        threads=2, max_queue=1
    )
    try:
        blocker = threading.Thread(target=engine.logits, args=(model, [1]))
        blocker.start()
        assert busy.wait(60)  # the model thread is now busy
        filler = threading.Thread(target=engine.logits, args=(model, [2]))
        filler.start()
        time.sleep(0.1)  # the queue is full
        with pytest.raises(OverloadedError):
            engine.logits(model, [1, 2, 3])
        r = client.get(f"{s.url}/next-token-probs", query_string={"temperature": 1.234})
        assert r.status_code == 503 and r.headers["Retry-After"] == "1"
        assert r.json["error"] == "Server busy"
        release.set()
        blocker.join()
        filler.join()
    finally:
        release.set()
        hook.remove()
        registry.engine = registry.local_wheels.engine = saved
        engine.shutdown()
